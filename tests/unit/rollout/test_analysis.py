"""Analysis runs with Argo Rollouts' semantics, on measurements written as data."""

from __future__ import annotations

from interlock.observe.window import RequestStats
from interlock.rollout import analysis as an
from interlock.rollout.analysis import Measurement
from interlock.rollout.spec import AnalysisTemplate, Metric


def template(*conditions: str, **kw: int) -> AnalysisTemplate:
    params = {"interval_s": 10.0, "count": 3, "min_requests": 20, **kw}
    return AnalysisTemplate(metrics=[Metric(condition=c) for c in conditions], **params)  # type: ignore[arg-type]


def m(
    i: int,
    requests: float = 100,
    error_rate: float | None = 0.01,
    p95: float | None = 500.0,
    stable_p95: float | None = 500.0,
    stable_requests: float = 100,
    **extra: float | None,
) -> Measurement:
    return Measurement(
        start=i * 10.0,
        end=(i + 1) * 10.0,
        candidate={"requests": requests, "error_rate": error_rate, "p95_latency_ms": p95, **extra},
        stable={"requests": stable_requests, "error_rate": 0.01, "p95_latency_ms": stable_p95},
    )


def run(t: AnalysisTemplate, *ms: Measurement) -> an.AnalysisRun:
    r = an.new_run(t, 0.0)
    for x in ms:
        r = an.record(r, t, x)
    return r


def test_passes_after_count_measurements() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < stable * 1.2")
    r = run(t, m(0), m(1))
    assert r.phase == an.RUNNING
    r = an.record(r, t, m(2))
    assert r.phase == an.SUCCESSFUL
    assert all(x.successful == 3 and x.phase == an.SUCCESSFUL for x in r.metrics)


def test_first_failure_fails_with_failure_limit_zero_and_ends_the_run() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < 2000")
    r = run(t, m(0, error_rate=0.2))
    assert r.phase == an.FAILED
    assert r.metrics[0].phase == an.FAILED and r.metrics[1].phase == an.RUNNING
    assert "error_rate" in r.message


def test_failures_must_exceed_the_failure_limit() -> None:
    t = template("error_rate < 0.05", failure_limit=1)
    r = run(t, m(0, error_rate=0.2), m(1), m(2))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].failed == 1
    r = run(t, m(0, error_rate=0.2), m(1, error_rate=0.2))
    assert r.phase == an.FAILED


def test_relative_to_stable() -> None:
    t = template("p95_latency_ms < stable * 1.2")
    assert run(t, m(0, p95=1100, stable_p95=1000)).phase == an.RUNNING  # 1100 < 1200
    assert run(t, m(0, p95=1300, stable_p95=1000)).phase == an.FAILED
    # No stable value to compare with: inconclusive, not a pass.
    assert run(t, m(0, p95=1100, stable_p95=None)).phase == an.INCONCLUSIVE
    assert run(t, m(0, p95=1100, stable_requests=3)).phase == an.INCONCLUSIVE


def test_too_little_traffic_is_inconclusive_not_success() -> None:
    t = template("error_rate < 0.05")
    r = run(t, m(0, requests=5, error_rate=0.0))
    assert r.phase == an.INCONCLUSIVE
    assert "min_requests" in r.metrics[0].message
    # Within an inconclusive limit it keeps measuring, and still needs `count` measurements.
    t = template("error_rate < 0.05", inconclusive_limit=1)
    r = run(t, m(0, requests=5), m(1), m(2))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].inconclusive == 1
    assert run(t, m(0, requests=5), m(1, requests=5)).phase == an.INCONCLUSIVE


def test_errors_do_not_count_and_fail_past_the_consecutive_limit() -> None:
    t = template("error_rate < 0.05", consecutive_error_limit=1)
    err = Measurement(start=0, end=10, error="redis down")
    r = run(t, err, m(1), err, m(3), m(4))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].count == 3 and r.metrics[0].error == 2
    assert run(t, err, err).phase == an.ERROR


def test_worst_phase_wins() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < 1000", "confidence_mean > -1.5")
    # error_rate fails, p95 passes, confidence missing (inconclusive): Failed.
    r = run(t, m(0, error_rate=0.5))
    assert r.phase == an.FAILED


def test_shadow_and_breach_signals() -> None:
    t = template("shadow_similarity > 0.8", "drift_breaches == 0")
    quiet = Measurement(
        start=0, end=10, candidate={"requests": 0, "shadow_requests": 50, "shadow_similarity": 0.9, "drift_breaches": 0}
    )
    assert run(t, quiet).metrics[0].successful == 1
    assert run(t, quiet).metrics[1].successful == 1  # breaches need no traffic to be judged
    few = Measurement(start=0, end=10, candidate={"shadow_requests": 3, "shadow_similarity": 0.9, "drift_breaches": 1})
    r = run(t, few)
    assert r.phase == an.FAILED and r.metrics[0].phase == an.INCONCLUSIVE


def test_due_interval() -> None:
    t = template("error_rate < 0.05")
    r = an.new_run(t, 100.0)
    assert an.due_interval(r, t, 109.9) is None
    assert an.due_interval(r, t, 110.0) == (100.0, 110.0)
    r = an.record(r, t, m(0))
    assert an.due_interval(r, t, 125.0) == (110.0, 120.0)


def test_signals_from_window_stats() -> None:
    now = 1_800_000_000.0
    stats = RequestStats(600, 5, clock=lambda: now)
    for i in range(100):
        stats.record("chat", "v2", 0.2 if i < 95 else 3.0, "upstream" if i < 5 else None, None, None)
    signals = an.signals_from_stats(stats.stats("chat", "v2", now - 60, now + 5))
    assert signals["requests"] == 100 and signals["error_rate"] == 0.05
    assert signals["p95_latency_ms"] is not None and 190 < signals["p95_latency_ms"] < 210
