"""The rollout state machine: steps, pauses, analysis verdicts, abort, promote, blue/green."""

from __future__ import annotations

import pytest

from interlock.rollout import controller as c
from interlock.rollout.analysis import Measurement
from interlock.rollout.controller import RolloutState
from interlock.rollout.spec import RolloutSpec, parse_spec

T0 = 1_800_000_000.0
GATE = {
    "interval_s": 10,
    "count": 2,
    "min_requests": 20,
    "metrics": [{"condition": "error_rate < 0.05"}, {"condition": "p95_latency_ms < stable * 1.2"}],
}


def canary(**kw: object) -> RolloutSpec:
    raw = {
        "model": "chat",
        "stable": "v1",
        "candidate": "v2",
        "templates": {"gate": GATE},
        "steps": [
            {"set_weight": 10},
            {"pause": {"duration_s": 60}},
            {"analysis": "gate"},
            {"set_weight": 50},
            {"pause": {}},
            {"set_weight": 80},
        ],
        **kw,
    }
    return parse_spec(raw)


def good(start: float, end: float, error_rate: float = 0.0, p95: float = 500.0, requests: float = 100) -> Measurement:
    return Measurement(
        start=start,
        end=end,
        candidate={"requests": requests, "error_rate": error_rate, "p95_latency_ms": p95},
        stable={"requests": 100, "error_rate": 0.0, "p95_latency_ms": 500.0},
    )


def run_analysis(
    s: RolloutState, spec: RolloutSpec, now: float, **kw: float
) -> tuple[RolloutState, list[c.Event], float]:
    """Advance through measurements until the analysis step ends; returns the time reached."""
    events: list[c.Event] = []
    for _ in range(10):
        now += 10
        interval = c.due(s, spec, now)
        assert interval is not None
        s, ev = c.advance(s, spec, now, good(*interval, **kw))
        events += ev
        if s.analysis is None or s.phase != c.PROGRESSING:
            break
    return s, events, now


def test_canary_steps_pause_analysis_and_promotion() -> None:
    spec = canary()
    s0 = c.initial_state(spec, T0)
    s, events = c.advance(s0, spec, T0)
    assert s.weights == {"v1": 90.0, "v2": 10.0} and s.step == 1 and s.revision == 1
    assert [e.kind for e in events] == ["weights", "step"]
    # The timed pause waits, without writing anything.
    same, events = c.advance(s, spec, T0 + 59)
    assert same is s and events == []
    s, _ = c.advance(s, spec, T0 + 60)
    assert s.step == 2 and s.analysis is not None and s.phase == c.PROGRESSING
    assert c.due(s, spec, T0 + 65) is None and c.due(s, spec, T0 + 70) == (T0 + 60, T0 + 70)
    s, events, now = run_analysis(s, spec, T0 + 60)
    assert s.last_verdict is not None and s.last_verdict.phase == "Successful"
    # Then weight 50, and a pause that waits for a hand.
    assert s.weights == {"v1": 50.0, "v2": 50.0} and s.phase == c.PAUSED and s.reason == "pause"
    assert c.advance(s, spec, now + 3600)[0] is s
    s, events = c.resume(s, spec, now + 100)
    assert s.phase == c.HEALTHY and s.weights == {"v2": 100.0}
    assert [e.kind for e in events][-1] == "promoted"
    assert "resumed" in [e.kind for e in events]


def test_failed_analysis_aborts_to_stable_at_once_and_alerts() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    s, _ = c.advance(s, spec, T0 + 60)
    s, events, _ = run_analysis(s, spec, T0 + 60, error_rate=0.2)
    assert s.phase == c.DEGRADED and s.reason == "analysis"
    assert s.weights == {"v1": 100.0, "v2": 0.0}
    kinds = [e.kind for e in events]
    assert "alert" in kinds and "aborted" in kinds
    alert = next(e for e in events if e.kind == "alert")
    assert alert.severity == "critical" and "error_rate" in alert.message
    # Degraded is terminal: nothing more happens.
    assert c.advance(s, spec, T0 + 10_000)[0] is s


def test_relative_latency_failure_aborts() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    s, _ = c.advance(s, spec, T0 + 60)
    s, _, _ = run_analysis(s, spec, T0 + 60, p95=800.0)  # stable 500 * 1.2 = 600
    assert s.phase == c.DEGRADED and s.last_verdict is not None and "p95_latency_ms" in s.last_verdict.message


def test_too_little_traffic_pauses_as_inconclusive_and_resume_accepts_the_step() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    s, _ = c.advance(s, spec, T0 + 60)
    s, _events, now = run_analysis(s, spec, T0 + 60, requests=3)
    assert s.phase == c.PAUSED and s.reason == "inconclusive"
    assert s.weights == {"v1": 90.0, "v2": 10.0}  # neither promoted nor rolled back
    s, _ = c.resume(s, spec, now)
    assert s.step == 4 and s.weights == {"v1": 50.0, "v2": 50.0} and s.phase == c.PAUSED


def test_missing_measurement_counts_as_error() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    s, _ = c.advance(s, spec, T0 + 60)
    for k in range(1, 7):
        s, _ = c.advance(s, spec, T0 + 60 + 10 * k)  # no observations at all
    assert s.phase == c.DEGRADED and s.last_verdict is not None and s.last_verdict.phase == "Error"


def test_manual_pause_resume_restarts_the_step() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    s, _ = c.pause(s, T0 + 30)
    assert s.phase == c.PAUSED and s.reason == "manual"
    assert c.advance(s, spec, T0 + 120)[0] is s  # paused: time does not move it
    s, _ = c.resume(s, spec, T0 + 200)
    assert s.phase == c.PROGRESSING and s.step == 1 and s.step_started_at == T0 + 200
    assert c.advance(s, spec, T0 + 259)[0].step == 1
    assert c.advance(s, spec, T0 + 260)[0].step == 2
    with pytest.raises(c.RolloutConflict):
        c.resume(s, spec, T0 + 300)


def test_manual_promote_and_abort() -> None:
    spec = canary()
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    p, _ = c.promote(s, spec, T0 + 1)
    assert p.phase == c.HEALTHY and p.weights == {"v2": 100.0} and p.revision == s.revision + 1
    with pytest.raises(c.RolloutConflict):
        c.abort(p, T0 + 2)  # nothing kept to roll back to
    a, _events = c.abort(s, T0 + 1)
    assert a.phase == c.ABORTED and a.weights == {"v1": 100.0, "v2": 0.0} and a.reason == "manual"
    with pytest.raises(c.RolloutConflict):
        c.promote(a, spec, T0 + 2)


def test_revision_bumps_once_per_change() -> None:
    spec = canary()
    s = c.initial_state(spec, T0, revision=7)
    s2, _ = c.advance(s, spec, T0)
    assert s2.revision == 8
    assert c.advance(s2, spec, T0 + 1)[0].revision == 8


def test_bluegreen_shadow_switch_and_keep_previous() -> None:
    spec = parse_spec(
        {
            "model": "chat",
            "stable": "blue",
            "candidate": "green",
            "strategy": "bluegreen",
            "shadow": {"percent": 20, "duration_s": 100},
            "analysis": {
                "interval_s": 10,
                "count": 1,
                "min_requests": 10,
                "metrics": [{"condition": "shadow_similarity > 0.8"}],
            },
            "switch": {"weights": [50, 100], "interval_s": 30},
            "keep_previous_s": 300,
        }
    )
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    assert s.shadow_percent == 20 and s.weights == {"blue": 100.0, "green": 0.0}
    s, _ = c.advance(s, spec, T0 + 100)  # shadow time over: the analysis starts
    interval = c.due(s, spec, T0 + 110)
    assert interval == (T0 + 100, T0 + 110)
    shadow = Measurement(
        start=interval[0], end=interval[1], candidate={"shadow_requests": 40, "shadow_similarity": 0.93}
    )
    s, _ = c.advance(s, spec, T0 + 110, shadow)
    assert s.shadow_percent == 0 and s.weights == {"blue": 50.0, "green": 50.0}
    s, _ = c.advance(s, spec, T0 + 140)
    assert s.phase == c.HEALTHY and s.weights == {"blue": 0.0, "green": 100.0}
    assert s.previous == "blue" and s.ready_versions() == ["green", "blue"]
    # Instant rollback while blue is kept ...
    back, _ = c.abort(s, T0 + 200)
    assert back.weights == {"blue": 100.0, "green": 0.0} and back.phase == c.ABORTED and back.reason == "rollback"
    # ... and after keep_previous_s it is let go.
    s, events = c.advance(s, spec, T0 + 440)
    assert s.previous is None and s.weights == {"green": 100.0} and [e.kind for e in events] == ["previous_dropped"]


def test_bluegreen_bad_shadow_aborts() -> None:
    spec = parse_spec(
        {
            "model": "chat",
            "stable": "blue",
            "candidate": "green",
            "strategy": "bluegreen",
            "shadow": {"percent": 20},
            "analysis": {
                "interval_s": 10,
                "count": 1,
                "min_requests": 10,
                "metrics": [{"condition": "shadow_error_rate < 0.1"}],
            },
        }
    )
    s, _ = c.advance(c.initial_state(spec, T0), spec, T0)
    shadow = Measurement(start=T0, end=T0 + 10, candidate={"shadow_requests": 40, "shadow_error_rate": 0.3})
    s, _events = c.advance(s, spec, T0 + 10, shadow)
    assert s.phase == c.DEGRADED and s.shadow_percent == 0 and s.weights == {"blue": 100.0, "green": 0.0}
