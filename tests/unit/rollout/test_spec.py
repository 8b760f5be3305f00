"""Rollout definitions: parsing, validation with key paths, conditions, blue/green's plan."""

from __future__ import annotations

import pytest
import yaml

from interlock.errors import ConfigError
from interlock.rollout.spec import (
    DEFAULT_METRICS,
    DEFAULT_SHADOW_PERCENT,
    AnalysisTemplate,
    Condition,
    Shadow,
    parse_condition,
    parse_rollouts,
    parse_spec,
)

CONFIG = """
rollouts:
  - model: chat
    stable: v1
    candidate: v2
    sticky: header:X-Session
    templates:
      gate:
        interval_s: 60
        count: 3
        min_requests: 50
        metrics:
          - {condition: "error_rate < 0.05"}
          - {condition: "p95_latency_ms < stable * 1.2"}
          - {condition: "drift_breaches == 0"}
    steps:
      - set_weight: 10
      - pause: {duration_s: 300}
      - analysis: gate
      - set_weight: 50
      - pause: {}
  - {model: embed, stable: a, candidate: b, strategy: bluegreen,
     shadow: {percent: 20, duration_s: 600}, analysis: {metrics: [{condition: "shadow_similarity > 0.8"}]},
     switch: {weights: [50, 100], interval_s: 120}, keep_previous_s: 1800}
"""


def test_config_section_parses() -> None:
    specs = parse_rollouts(yaml.safe_load(CONFIG)["rollouts"], {"chat": {"v1", "v2"}, "embed": {"a", "b"}})
    canary, bg = specs
    assert [s.kind for s in canary.plan()] == ["set_weight", "pause", "analysis", "set_weight", "pause"]
    assert canary.plan()[4].pause is not None and canary.plan()[4].pause.duration_s is None
    assert canary.template(canary.plan()[2]).min_requests == 50
    assert canary.sticky_header == "x-session"
    kinds = [(s.kind, s.set_weight if s.set_weight is not None else None) for s in bg.plan()]
    assert kinds == [
        ("shadow", None),
        ("pause", None),
        ("analysis", None),
        ("shadow", None),
        ("set_weight", 50.0),
        ("pause", None),
        ("set_weight", 100.0),
    ]
    assert bg.plan()[0].shadow is not None and bg.plan()[0].shadow.percent == 20
    assert bg.plan()[3].shadow is not None and bg.plan()[3].shadow.percent == 0


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"steps": [{"set_weight": 120}]}, "$.rollouts[0].steps[0].set_weight"),
        ({"steps": [{"set_weight": 10, "pause": {}}]}, "$.rollouts[0].steps[0]: expected exactly one"),
        ({"steps": [{"analysis": "nope"}]}, "$.rollouts[0].steps[0].analysis: unknown analysis template"),
        (
            {"steps": [{"analysis": {"metrics": [{"condition": "latency < 3"}]}}]},
            "$.rollouts[0].steps[0].analysis.metrics[0].condition: unknown signal",
        ),
        (
            {"steps": [{"analysis": {"metrics": [{"condition": "error_rate ~ 3"}]}}]},
            "$.rollouts[0].steps[0].analysis.metrics[0].condition: expected",
        ),
        (
            {"steps": [{"analysis": {"count": 0, "metrics": [{"condition": "error_rate < 1"}]}}]},
            "$.rollouts[0].steps[0].analysis.count",
        ),
        ({"sticky": "cookie"}, "$.rollouts[0].sticky"),
        ({"candidate": "v1"}, "$.rollouts[0].candidate"),
        ({"candidate": "v3"}, "$.rollouts[0].candidate: no deployment"),
        ({"model": "other"}, "$.rollouts[0].model: unknown model group"),
        ({"steps": [{"set_weight": "ten"}]}, "$.rollouts[0].steps[0].set_weight"),
        ({"stepz": []}, "stepz"),
    ],
)
def test_errors_name_the_key_path(patch: dict[str, object], message: str) -> None:
    raw = {"model": "chat", "stable": "v1", "candidate": "v2", "steps": [{"set_weight": 10}], **patch}
    with pytest.raises(ConfigError) as info:
        parse_rollouts([raw], {"chat": {"v1", "v2"}})
    assert message in str(info.value)


def test_bluegreen_shape_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"\$\.steps: bluegreen"):
        parse_spec(
            {"model": "m", "stable": "a", "candidate": "b", "strategy": "bluegreen", "steps": [{"set_weight": 1}]}
        )
    with pytest.raises(ConfigError, match=r"\$\.switch\.weights\[0\]"):
        parse_spec({"model": "m", "stable": "a", "candidate": "b", "strategy": "bluegreen", "switch": {"weights": [0]}})


def test_conditions() -> None:
    assert parse_condition("error_rate < 0.05") == Condition("error_rate", "<", value=0.05)
    c = parse_condition("p95_latency_ms<stable*1.2")
    assert c.relative and c.factor == 1.2 and c.threshold(1000.0) == pytest.approx(1200.0)
    assert parse_condition("confidence_mean > -1.5").value == -1.5
    assert parse_condition("ttft_p95_ms <= stable + 100").threshold(50.0) == 150.0
    assert parse_condition("ttft_p95_ms <= stable - 10").threshold(50.0) == 40.0
    assert parse_condition("drift_breaches == 0").holds(0.0, 0.0)
    assert parse_condition("error_rate <= stable").threshold(None) is None
    both = parse_condition("p95_latency_ms < stable*1.5+50")
    assert (both.factor, both.offset) == (1.5, 50.0) and both.threshold(100.0) == 200.0
    assert parse_condition("p95_latency_ms < stable * 2 - 5").threshold(10.0) == 15.0
    with pytest.raises(ValueError, match="stable"):
        parse_condition("p95_latency_ms < stable + 5 * 2")


def test_a_canary_that_names_no_analysis_gets_the_default_one_after_each_partial_weight() -> None:
    spec = parse_spec({"model": "m", "stable": "a", "candidate": "b",
                       "steps": [{"set_weight": 10}, {"pause": {"duration_s": 60}}, {"set_weight": 50}, {"pause": {}},
                                 {"set_weight": 100}]})  # fmt: skip
    kinds = [s.kind for s in spec.plan()]
    assert kinds == ["shadow", "set_weight", "analysis", "pause", "set_weight", "analysis", "pause", "set_weight"]
    assert spec.plan()[0].shadow == Shadow(percent=DEFAULT_SHADOW_PERCENT)
    t = spec.template(spec.plan()[2])
    assert [m.condition for m in t.metrics] == [m.condition for m in DEFAULT_METRICS]
    assert t == AnalysisTemplate()  # the built-in template: the defaults of every key


def test_the_default_analysis_keeps_a_shadow_step_given_and_can_be_tuned_or_turned_off() -> None:
    base = {"model": "m", "stable": "a", "candidate": "b"}
    given = parse_spec({**base, "steps": [{"shadow": {"percent": 5}}, {"set_weight": 10}]})
    assert [s.kind for s in given.plan()] == ["shadow", "set_weight", "analysis"]
    tuned = parse_spec({**base, "templates": {"default": {"interval_s": 5, "count": 1}}, "steps": [{"set_weight": 10}]})
    t = tuned.template(tuned.plan()[2])
    assert (t.interval_s, t.count, len(t.metrics)) == (5, 1, len(DEFAULT_METRICS))  # metrics left out: the defaults
    off = parse_spec({**base, "default_analysis": False, "steps": [{"set_weight": 10}]})
    assert [s.kind for s in off.plan()] == ["set_weight"]
    named = parse_spec({**base, "steps": [{"set_weight": 10}, {"analysis": "default"}, {"set_weight": 50}]})
    assert [s.kind for s in named.plan()] == ["set_weight", "analysis", "set_weight"]  # its own: nothing added
    no_weight = parse_spec({**base, "steps": [{"pause": {}}]})
    assert [s.kind for s in no_weight.plan()] == ["pause"]  # nothing to analyse, no shadow turned on
    bluegreen = parse_spec({**base, "strategy": "bluegreen", "shadow": {"percent": 20, "duration_s": 60}})
    assert [s.kind for s in bluegreen.plan()] == ["shadow", "pause", "analysis", "shadow", "set_weight"]


def test_the_baseline_share() -> None:
    assert Shadow(percent=20).baseline() == 10  # half the shadow share by default
    assert Shadow(percent=20, baseline_percent=4).baseline() == 4
    assert Shadow(percent=100).baseline() == 0 and Shadow(percent=80, baseline_percent=50).baseline() == 20
    assert Shadow(percent=0, baseline_percent=10).baseline() == 0  # no shadow, no baseline
    with pytest.raises(ConfigError, match=r"shadow.baseline_percent"):
        parse_spec(
            {
                "model": "m",
                "stable": "a",
                "candidate": "b",
                "steps": [{"shadow": {"percent": 5, "baseline_percent": 101}}],
            }
        )
