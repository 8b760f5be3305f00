"""What a rollout is: its definition as frozen msgspec structs, validated once, errors naming the key path.

A rollout moves a model group's traffic from its `stable` version to a `candidate`:

```yaml
rollouts:
  - model: chat
    stable: v1
    candidate: v2
    strategy: canary            # or bluegreen
    sticky: key_id              # key_id | user | header:<name>: the same caller stays on one version
    templates:
      gate:
        interval_s: 60          # one measurement per metric per interval
        count: 3                # measurements each metric must pass
        failure_limit: 0        # a metric fails when its failures exceed this
        inconclusive_limit: 0   # inconclusive results beyond this pause the rollout
        min_requests: 50        # fewer candidate requests in an interval: inconclusive, not success
        metrics:
          - {condition: "error_rate < 0.05"}
          - {condition: "p95_latency_ms < stable * 1.2"}
          - {condition: "drift_breaches == 0"}
    steps:
      - set_weight: 10
      - pause: {duration_s: 300}
      - analysis: gate          # a template's name, or a template written inline
      - set_weight: 50
      - pause: {}               # until resumed by hand
```

Blue/green has no `steps`; it is written as `shadow`, an optional `analysis`, and `switch`:

```yaml
  - {model: chat, stable: v1, candidate: v2, strategy: bluegreen,
     shadow: {percent: 20, duration_s: 600}, analysis: gate,
     switch: {weights: [50, 100], interval_s: 120}, keep_previous_s: 1800}
```

and `RolloutSpec.plan()` turns it into the same steps a canary has (shadow on, wait, analysis,
shadow off, set_weight for each switch weight with a pause between), so the controller runs one
kind of plan. `keep_previous_s` keeps the previous version ready after promotion (any strategy):
an abort within that time switches back at once.

Conditions are `<signal> <op> <value>` where the value is a number or relative to the stable
version: `stable`, `stable * 1.2`, `stable + 100`, `stable * 1.5 + 50`. Signals: see `SIGNALS`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from ..errors import ConfigError

# The signals a condition may name. `requests` and `shadow_requests` are also what `min_requests`
# counts: shadow signals are judged on the shadow comparisons, the rest on candidate requests.
SIGNALS = (
    "error_rate",
    "p95_latency_ms",
    "ttft_p95_ms",
    "confidence_mean",
    "requests",
    "drift_breaches",
    "drift_share",
    "shadow_similarity",
    "shadow_error_rate",
    "shadow_latency_ratio",
    "shadow_length_ratio",
    "shadow_refusal_rate",
    "shadow_unfinished_rate",
    "shadow_json_invalid_rate",
)
SHADOW_SIGNALS = frozenset(s for s in SIGNALS if s.startswith("shadow_"))
# Signals that are rates, with the count they are a share of: the sequential test (`sequential.py`)
# can fail these before `min_requests` answers have arrived.
RATE_DENOMINATORS = {
    "error_rate": "requests",
    "shadow_error_rate": "shadow_requests",
    "shadow_refusal_rate": "shadow_answered",
    "shadow_unfinished_rate": "shadow_answered",
    "shadow_json_invalid_rate": "shadow_json_requests",
}
# Signals that need no traffic to be judged: a breach count is meaningful even when quiet.
UNCOUNTED_SIGNALS = frozenset({"drift_breaches", "requests"})
OPS = ("<=", ">=", "==", "!=", "<", ">")
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?P<signal>[a-z_0-9]+)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    rf"(?:(?P<number>{_NUMBER})|stable(?:\s*\*\s*(?P<factor>{_NUMBER}))?(?:\s*(?P<sign>[+-])\s*(?P<offset>{_NUMBER}))?)\s*$"
)


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Condition(msgspec.Struct, frozen=True):
    """A parsed condition: `signal op threshold`, the threshold absolute or `stable * factor + offset`."""

    signal: str
    op: str
    value: float = 0.0  # the absolute threshold
    relative: bool = False
    factor: float = 1.0
    offset: float = 0.0

    def threshold(self, stable: float | None) -> float | None:
        if not self.relative:
            return self.value
        return None if stable is None else stable * self.factor + self.offset

    def holds(self, value: float, threshold: float) -> bool:
        op = self.op
        if op == "<":
            return value < threshold
        if op == "<=":
            return value <= threshold
        if op == ">":
            return value > threshold
        if op == ">=":
            return value >= threshold
        if op == "==":
            return value == threshold
        return value != threshold


def parse_condition(text: str) -> Condition:
    """`error_rate < 0.05`, `p95_latency_ms < stable * 1.2`, `p95_latency_ms < stable * 1.5 + 50`;
    ValueError says what is wrong."""
    m = _CONDITION.match(text)
    if m is None:
        raise ValueError(f"expected `<signal> <op> <number | stable [* number] [+ - number]>`, got {text!r}")
    signal = m["signal"]
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
    if m["number"] is not None:
        return Condition(signal, m["op"], value=float(m["number"]))
    factor = float(m["factor"]) if m["factor"] is not None else 1.0
    offset = 0.0 if m["offset"] is None else float(m["offset"]) * (1 if m["sign"] == "+" else -1)
    return Condition(signal, m["op"], relative=True, factor=factor, offset=offset)


class Metric(_Frozen, frozen=True, kw_only=True):
    condition: str
    name: str | None = None  # default: the signal

    @property
    def parsed(self) -> Condition:
        return parse_condition(self.condition)

    @property
    def label(self) -> str:
        return self.name or self.parsed.signal


# The analysis a rollout gets when it names none (and a template that leaves out `metrics`).
# Every condition is relative to the stable version over the same interval, so it adapts to the
# model: the stable side of a `shadow_*` signal is the stable version shadowed against itself (the
# self-consistency baseline, `Shadow.baseline_percent`), so `shadow_similarity > stable * 0.7`
# reads "the candidate agrees with stable at least 70 % as well as stable agrees with itself".
# 0.7, not 0.9: both means are over a few dozen pairs at most (bench/rollout/ at a 60 % weight has
# about 12 baseline pairs an interval), and an identical candidate must pass every time; an
# off-topic or refusing one scores a tenth of stable. The offsets on the rates allow one bad
# answer in 20 when stable has none; the 50 ms on P95 keeps the jitter of a fast backend (a P95
# of a few ms, over a handful of requests) from failing it.
DEFAULT_METRICS = (
    Metric(condition="error_rate < stable + 0.05"),
    Metric(condition="p95_latency_ms < stable * 1.5 + 50"),
    Metric(condition="shadow_error_rate < stable + 0.05"),
    Metric(condition="shadow_similarity > stable * 0.7"),
    Metric(name="shadow_length_ratio_max", condition="shadow_length_ratio < stable * 2"),
    Metric(name="shadow_length_ratio_min", condition="shadow_length_ratio > stable * 0.5"),
    Metric(condition="shadow_refusal_rate <= stable + 0.05"),
    Metric(condition="shadow_unfinished_rate <= stable + 0.05"),
    Metric(condition="shadow_json_invalid_rate <= stable + 0.05"),
)
DEFAULT_TEMPLATE = "default"  # the built-in template's name; `templates: {default: ...}` overrides it
DEFAULT_SHADOW_PERCENT = 20.0  # shadow share turned on for the default analysis when the rollout has none


class AnalysisTemplate(_Frozen, frozen=True, kw_only=True):
    """Argo Rollouts' AnalysisTemplate, in one place for all its metrics (see `analysis.py`).
    Without `metrics`, the default ones (`DEFAULT_METRICS`)."""

    metrics: list[Metric] = msgspec.field(default_factory=lambda: list(DEFAULT_METRICS))
    interval_s: float = 60.0
    count: int = 3
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4  # measurements that could not be taken, in a row
    min_requests: int = 20
    # Below min_requests, a rate already shown bad by a sequential test fails the measurement.
    early_failure: bool = True


class Pause(_Frozen, frozen=True, kw_only=True):
    duration_s: float | None = None  # None: until resumed by hand


class Shadow(_Frozen, frozen=True, kw_only=True):
    percent: float  # of the stable version's requests copied to the candidate
    duration_s: float = 0.0  # blue/green: how long to watch the shadow before the analysis or switch
    # Of the stable version's requests, the share copied to the stable version itself (another
    # sample: a request's `seed` is changed) for the self-consistency baseline that relative
    # `shadow_*` conditions compare with. None: half of `percent`. Never more than 100 - percent.
    baseline_percent: float | None = None

    def baseline(self) -> float:
        """The baseline share in effect: as given or half of `percent`, capped at 100 - percent."""
        want = self.percent / 2 if self.baseline_percent is None else self.baseline_percent
        return max(0.0, min(want, 100.0 - self.percent)) if self.percent > 0 else 0.0


class Step(_Frozen, frozen=True, kw_only=True):
    """Exactly one of these is set."""

    set_weight: float | None = None  # the candidate's percent of traffic; stable gets the rest
    pause: Pause | None = None
    analysis: str | AnalysisTemplate | None = None  # a template's name, or one inline
    shadow: Shadow | None = None

    @property
    def kind(self) -> str:
        if self.set_weight is not None:
            return "set_weight"
        if self.pause is not None:
            return "pause"
        if self.analysis is not None:
            return "analysis"
        return "shadow"


class Switch(_Frozen, frozen=True, kw_only=True):
    weights: list[float] = msgspec.field(
        default_factory=lambda: [100.0]
    )  # the candidate's percent at each step; [100]: at once
    interval_s: float = 0.0  # wait between two switch steps


class RolloutSpec(_Frozen, frozen=True, kw_only=True):
    model: str
    stable: str
    candidate: str
    strategy: Literal["canary", "bluegreen"] = "canary"
    sticky: str = "key_id"  # key_id | user | header:<name>
    templates: dict[str, AnalysisTemplate] = {}
    steps: list[Step] = []  # canary
    shadow: Shadow | None = None  # blue/green
    analysis: str | AnalysisTemplate | None = None  # blue/green, after the shadow phase
    switch: Switch = Switch()  # blue/green
    keep_previous_s: float = 0.0

    default_analysis: bool = True  # a rollout that names no analysis gets the default one

    def template(self, step: Step) -> AnalysisTemplate:
        ref = step.analysis
        if isinstance(ref, AnalysisTemplate):
            return ref
        if ref is not None and ref in self.templates:
            return self.templates[ref]
        if ref == DEFAULT_TEMPLATE:
            return AnalysisTemplate()
        raise KeyError(f"no analysis template {ref!r}")

    def plan(self) -> tuple[Step, ...]:
        """The steps the controller runs: a canary's own, or blue/green's spelled out as steps.

        A rollout that names no analysis (and has not turned `default_analysis` off) gets the
        default one: a canary after each `set_weight` between 0 and 100 (with shadow traffic at
        `DEFAULT_SHADOW_PERCENT` from the start unless a shadow step comes first), blue/green
        after its shadow phase."""
        out: list[Step] = []
        if self.strategy == "canary":
            if not self._defaulted:
                return tuple(self.steps)
            for step in self.steps:
                out.append(step)
                if step.set_weight is not None and 0 < step.set_weight < 100:
                    out.append(Step(analysis=DEFAULT_TEMPLATE))
            first = next((s.kind for s in out if s.kind in ("shadow", "analysis")), None)
            if first == "analysis":  # the default analysis reads shadow traffic: on from the start
                out.insert(0, Step(shadow=Shadow(percent=DEFAULT_SHADOW_PERCENT)))
            return tuple(out)
        if self.shadow is not None:
            out.append(Step(shadow=self.shadow))
            if self.shadow.duration_s > 0:
                out.append(Step(pause=Pause(duration_s=self.shadow.duration_s)))
        if self.analysis is not None:
            out.append(Step(analysis=self.analysis))
        elif self._defaulted and self.shadow is not None and self.shadow.percent > 0:
            out.append(Step(analysis=DEFAULT_TEMPLATE))
        if self.shadow is not None:
            out.append(Step(shadow=Shadow(percent=0.0)))
        for i, w in enumerate(self.switch.weights):
            if i and self.switch.interval_s > 0:
                out.append(Step(pause=Pause(duration_s=self.switch.interval_s)))
            out.append(Step(set_weight=w))
        return tuple(out)

    @property
    def _defaulted(self) -> bool:
        """True when the default analysis applies: turned on, and no step names an analysis."""
        if not self.default_analysis:
            return False
        return self.analysis is None if self.strategy == "bluegreen" else all(s.analysis is None for s in self.steps)

    @property
    def sticky_header(self) -> str | None:
        """The header whose value is the sticky key (lower case), when `sticky` is `header:<name>`."""
        return self.sticky[7:].lower() if self.sticky.startswith("header:") else None


class RolloutsSection(_Frozen, frozen=True, kw_only=True):
    rollouts: list[RolloutSpec] = []


def parse_rollouts(raw: Any, versions: dict[str, set[str]] | None = None) -> list[RolloutSpec]:
    """The `rollouts:` list of a config file (plain data from YAML), converted and checked.

    `versions` maps each model group to the versions its deployments declare; given, the
    rollout's group and versions must be among them."""
    try:
        section = msgspec.convert({"rollouts": raw}, RolloutsSection)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None
    check_rollouts(section.rollouts, versions)
    return section.rollouts


def parse_spec(raw: Any, where: str = "$") -> RolloutSpec:
    """One rollout (from the admin API or the command line)."""
    try:
        spec = msgspec.convert(raw, RolloutSpec)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc).replace("`$", f"`{where}")) from None
    check_spec(spec, where)
    return spec


def check_rollouts(specs: list[RolloutSpec], versions: dict[str, set[str]] | None = None) -> None:
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        where = f"$.rollouts[{i}]"
        if spec.model in seen:
            raise ConfigError(f"{where}.model: a second rollout of model group {spec.model!r}")
        seen.add(spec.model)
        check_spec(spec, where)
        if versions is not None:
            if spec.model not in versions:
                raise ConfigError(f"{where}.model: unknown model group {spec.model!r}")
            for name in ("stable", "candidate"):
                if getattr(spec, name) not in versions[spec.model]:
                    raise ConfigError(
                        f"{where}.{name}: no deployment of {spec.model!r} has version {getattr(spec, name)!r}"
                    )


def check_spec(spec: RolloutSpec, where: str) -> None:
    for name in ("stable", "candidate"):
        if not _VERSION.fullmatch(getattr(spec, name)):
            raise ConfigError(f"{where}.{name}: expected 1-64 letters, digits or . _ -")
    if spec.stable == spec.candidate:
        raise ConfigError(f"{where}.candidate: expected a version other than the stable one")
    if spec.sticky not in ("key_id", "user") and not (spec.sticky.startswith("header:") and len(spec.sticky) > 7):
        raise ConfigError(f"{where}.sticky: expected key_id, user or header:<name>")
    if spec.keep_previous_s < 0:
        raise ConfigError(f"{where}.keep_previous_s: expected a number >= 0")
    for name, template in spec.templates.items():
        _check_template(template, f"{where}.templates.{name}")
    if spec.strategy == "canary":
        if not spec.steps:
            raise ConfigError(f"{where}.steps: a canary needs at least one step")
        if spec.shadow is not None or spec.analysis is not None:
            raise ConfigError(f"{where}: `shadow` and `analysis` belong to bluegreen; a canary writes them as steps")
        for k, step in enumerate(spec.steps):
            _check_step(spec, step, f"{where}.steps[{k}]")
    else:
        if spec.steps:
            raise ConfigError(f"{where}.steps: bluegreen is written as shadow, analysis and switch")
        if spec.shadow is not None:
            _check_shadow(spec.shadow, f"{where}.shadow")
        if spec.analysis is not None:
            _check_analysis_ref(spec, spec.analysis, f"{where}.analysis")
        if not spec.switch.weights:
            raise ConfigError(f"{where}.switch.weights: expected at least one weight")
        for k, w in enumerate(spec.switch.weights):
            if not 0 < w <= 100:
                raise ConfigError(f"{where}.switch.weights[{k}]: expected a percent in (0, 100]")
        if spec.switch.interval_s < 0:
            raise ConfigError(f"{where}.switch.interval_s: expected a number >= 0")


def _check_step(spec: RolloutSpec, step: Step, where: str) -> None:
    given = [n for n in ("set_weight", "pause", "analysis", "shadow") if getattr(step, n) is not None]
    if len(given) != 1:
        raise ConfigError(f"{where}: expected exactly one of set_weight, pause, analysis, shadow")
    if step.set_weight is not None and not 0 <= step.set_weight <= 100:
        raise ConfigError(f"{where}.set_weight: expected a percent from 0 to 100")
    if step.pause is not None and step.pause.duration_s is not None and step.pause.duration_s < 0:
        raise ConfigError(f"{where}.pause.duration_s: expected a number >= 0")
    if step.analysis is not None:
        _check_analysis_ref(spec, step.analysis, f"{where}.analysis")
    if step.shadow is not None:
        _check_shadow(step.shadow, f"{where}.shadow")


def _check_shadow(shadow: Shadow, where: str) -> None:
    if not 0 <= shadow.percent <= 100:
        raise ConfigError(f"{where}.percent: expected a percent from 0 to 100")
    if shadow.duration_s < 0:
        raise ConfigError(f"{where}.duration_s: expected a number >= 0")
    if shadow.baseline_percent is not None and not 0 <= shadow.baseline_percent <= 100:
        raise ConfigError(f"{where}.baseline_percent: expected a percent from 0 to 100")


def _check_analysis_ref(spec: RolloutSpec, ref: str | AnalysisTemplate, where: str) -> None:
    if isinstance(ref, str):
        if ref not in spec.templates and ref != DEFAULT_TEMPLATE:
            raise ConfigError(f"{where}: unknown analysis template {ref!r}")
    else:
        _check_template(ref, where)


def _check_template(t: AnalysisTemplate, where: str) -> None:
    if t.interval_s <= 0:
        raise ConfigError(f"{where}.interval_s: expected a number > 0")
    if t.count < 1:
        raise ConfigError(f"{where}.count: expected an integer >= 1")
    for name in ("failure_limit", "inconclusive_limit", "consecutive_error_limit", "min_requests"):
        if getattr(t, name) < 0:
            raise ConfigError(f"{where}.{name}: expected an integer >= 0")
    if not t.metrics:
        raise ConfigError(f"{where}.metrics: expected at least one metric")
    labels: set[str] = set()
    for k, metric in enumerate(t.metrics):
        try:
            condition = metric.parsed
        except ValueError as exc:
            raise ConfigError(f"{where}.metrics[{k}].condition: {exc}") from None
        label = metric.name or condition.signal
        if label in labels:
            raise ConfigError(f"{where}.metrics[{k}]: a second metric named {label!r} (give it a `name`)")
        labels.add(label)
