"""Alert rules, evaluated: data in (signals from a provider, the time), transitions out.

A rule (`config.AlertRule`) reads `signal op threshold` over the last `window_s` seconds of each
(model group, version) series the provider knows for that signal, filtered by the rule's `model`
and `version`. Each (rule, model, version) has a state, as in Prometheus:

    inactive --condition true--> pending --true for `for_s`--> firing --condition false--> resolved
                                 pending --condition false--> inactive

With `for_s: 0` a true condition fires at once. A condition is false when it is false, when the
signal has no value (no latency observed, no drift report), and when the window holds fewer than
`min_requests` requests (drift signals: live observations): too little traffic is not a breach,
so a firing alert whose traffic dries up resolves. `min_requests` does not apply to the
`requests` signal itself (a "traffic dropped" rule would never fire). A series the provider no
longer lists counts as false too.

Signals: `error_rate` (all classes) and `error_rate:<class>`, `p95_latency_ms`, `p99_latency_ms`,
`ttft_p95_ms`, `confidence_mean` (mean token logprob), `requests` (count in the window),
`drift_share` (drifted features over tested ones) and `drift_feature:<name>` (1 when that
feature drifted, else 0). Drift signals ignore `window_s`: the drift report has its own window.
Group-wide signals (the drift monitor's report over all versions) come under the version
`ALL_VERSIONS` ("all", as `observe.monitor.ALL`).

The provider (`SignalProvider`) is whatever turns observations into numbers: the composition
root's adapter over `observe.window.RequestStats` and the latest drift reports
(`observe.alerting.WindowSignals` is one). `refresh()` is awaited before each evaluation (publish
and merge windows through Redis, say); `series()` and `sample()` are then plain reads.

For the rollout controller: `AlertEvaluator.breaches(model, version)` lists the rules firing for
that series as `Breach` values (rule, signal, value, threshold, op, since);
`observe.alerting.AlertEngine` exposes the same and a subscription to every `Transition`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from ..config import AlertRule

ALL_VERSIONS = "all"  # the version of group-wide signals, as `observe.monitor.ALL` names drift reports


class State(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Sample:
    """A signal's value over a window and how many requests (or observations) it rests on."""

    value: float | None
    requests: int


class SignalProvider(Protocol):
    async def refresh(self, now: float) -> None:
        """Bring the data up to date before an evaluation (may do I/O; may raise)."""

    def series(self, signal: str) -> Iterable[tuple[str, str]]:
        """The (model group, version) pairs that have data for this signal."""

    def sample(self, signal: str, model: str, version: str, window_s: float, now: float) -> Sample | None:
        """The signal over [now - window_s, now] for one series; None when it has no data."""

    def drift_report(self, model: str, version: str) -> Mapping[str, Any] | None:
        """The latest drift report (JSON-ready) for a series, for the retraining action."""


_OPS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
)


@dataclass(slots=True)
class Alert:
    """The state of one (rule, model, version). Times are the provider clock's seconds."""

    rule: AlertRule
    model: str
    version: str
    state: State = State.INACTIVE
    value: float | None = None
    active_since: float | None = None  # when the condition became true (pending or firing)
    fired_at: float | None = None
    resolved_at: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rule.name, self.model, self.version

    def labels(self) -> dict[str, str]:
        """Alertmanager-style labels: the rule's own, then ours (which win)."""
        return {
            **self.rule.labels,
            "alertname": self.rule.name,
            "severity": self.rule.severity,
            "model": self.model,
            "version": self.version,
            "signal": self.rule.signal,
        }

    def summary(self) -> str:
        r = self.rule
        value = "no value" if self.value is None else f"{self.value:.4g}"
        verdict = "is" if self.state is State.FIRING else "was last"
        window = "" if r.signal.startswith("drift") else f" over {r.window_s:g}s"
        return (
            f"{r.signal} of {self.model} version {self.version} {verdict} {value}{window} "
            f"(alert when {r.op} {r.threshold:g})"
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert moved from one state to another at `at`; `alert` is a snapshot after the move."""

    before: State
    after: State
    at: float
    alert: Alert = field(compare=False)


@dataclass(frozen=True, slots=True)
class Breach:
    """A rule firing for a (model, version): what the rollout controller reads."""

    rule: str
    signal: str
    value: float | None
    threshold: float
    op: str
    since: float  # when it fired
    severity: str


def fingerprint(labels: Mapping[str, str]) -> str:
    """FNV-1a 64 over the sorted labels, as Prometheus fingerprints a label set (hex, 16 digits)."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in part:
                h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class AlertEvaluator:
    """Holds the alerts' states; `evaluate` moves them and returns the moves. No I/O, no clock."""

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules = list(rules)
        self._alerts: dict[tuple[str, str, str], Alert] = {}

    def evaluate(self, provider: SignalProvider, now: float) -> list[Transition]:
        out: list[Transition] = []
        seen: set[tuple[str, str, str]] = set()
        for rule in self.rules:
            for model, version in provider.series(rule.signal):
                if rule.model is not None and model != rule.model:
                    continue
                if rule.version is not None and version != rule.version:
                    continue
                key = (rule.name, model, version)
                if key in seen:
                    continue  # a provider that lists a series twice
                seen.add(key)
                sample = provider.sample(rule.signal, model, version, rule.window_s, now)
                alert = self._alerts.get(key)
                if alert is None:
                    alert = Alert(rule, model, version)
                self._step(alert, sample, now, out)
                if alert.state is State.INACTIVE:
                    self._alerts.pop(key, None)
                else:
                    self._alerts[key] = alert
        for key in [k for k in self._alerts if k not in seen]:
            alert = self._alerts[key]
            self._step(alert, None, now, out)  # the series went away: its condition is false
            if alert.state is State.INACTIVE:
                del self._alerts[key]
        return out

    def _step(self, alert: Alert, sample: Sample | None, now: float, out: list[Transition]) -> None:
        rule = alert.rule
        holds = _holds(rule, sample)
        before = alert.state
        if sample is not None and sample.value is not None:
            alert.value = sample.value
        if holds:
            if before is State.INACTIVE:
                alert.active_since = now
                alert.state = State.PENDING
            since = alert.active_since
            if alert.state is State.PENDING and since is not None and now - since >= rule.for_s:
                alert.state = State.FIRING
                alert.fired_at = now
        elif before is State.PENDING:
            alert.state = State.INACTIVE
        elif before is State.FIRING:
            alert.state = State.RESOLVED
            alert.resolved_at = now
        if alert.state is not before:
            out.append(Transition(before, alert.state, now, _snapshot(alert)))
        if alert.state is State.RESOLVED:
            alert.state = State.INACTIVE  # the next true condition starts a new alert

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts (snapshots)."""
        return [_snapshot(a) for a in self._alerts.values()]

    def firing(self) -> list[Alert]:
        return [_snapshot(a) for a in self._alerts.values() if a.state is State.FIRING]

    def breaches(self, model: str, version: str) -> list[Breach]:
        out = []
        for a in self._alerts.values():
            if a.state is State.FIRING and a.model == model and a.version == version:
                r = a.rule
                since = a.fired_at if a.fired_at is not None else 0.0
                out.append(Breach(r.name, r.signal, a.value, r.threshold, r.op, since, r.severity))
        return out


def _holds(rule: AlertRule, sample: Sample | None) -> bool:
    if sample is None or sample.value is None or math.isnan(sample.value):
        return False
    if rule.signal != "requests" and sample.requests < rule.min_requests:
        return False
    return _OPS[rule.op](sample.value, rule.threshold)


def _snapshot(alert: Alert) -> Alert:
    return Alert(
        alert.rule, alert.model, alert.version, alert.state, alert.value,
        alert.active_since, alert.fired_at, alert.resolved_at,
    )  # fmt: skip
