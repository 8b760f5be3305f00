"""The signal provider over the rolling windows and drift reports."""

from __future__ import annotations

import pytest

from interlock.observe.alerting import WindowSignals
from interlock.observe.alerts import ALL_VERSIONS
from interlock.observe.drift import DriftReport, FeatureKind, FeatureResult, Status
from interlock.observe.window import RequestStats
from tests.support.clock import Clock


def report(share: float, drifted: list[str], n_live: int = 500) -> DriftReport:
    features = tuple(
        FeatureResult(name, FeatureKind.NUMERIC, Status.DRIFTED if name in drifted else Status.OK, 1000, n_live)
        for name in ("prompt_tokens", "language", "output_tokens")
    )
    return DriftReport(features, 1000, n_live, share, 0.5, share >= 0.5)


async def test_window_signals_read_the_windows_and_the_drift_reports() -> None:
    clock = Clock(10_000.0)
    stats = RequestStats(600, 5, clock)
    for i in range(100):
        stats.record("chat", "v1", 0.1 if i < 90 else 2.0, "timeout" if i < 10 else None, ttft_s=0.03, confidence=-0.25)
    reports = {("chat", ALL_VERSIONS): report(0.67, ["prompt_tokens", "language"])}
    signals = WindowSignals(stats, lambda: reports)
    await signals.refresh(clock.now)
    assert list(signals.series("error_rate")) == [("chat", "v1")]
    assert list(signals.series("drift_share")) == [("chat", ALL_VERSIONS)]

    def value(signal: str, version: str = "v1") -> float | None:
        s = signals.sample(signal, "chat", version, 60, clock.now)
        return None if s is None else s.value

    assert (
        value("requests") == 100
        and value("error_rate") == pytest.approx(0.1)
        and value("error_rate:timeout") == pytest.approx(0.1)
    )
    assert value("error_rate:upstream") == 0.0
    assert value("p95_latency_ms") == pytest.approx(2000, rel=0.045) and value("p99_latency_ms") == pytest.approx(
        2000, rel=0.045
    )
    assert value("ttft_p95_ms") == pytest.approx(30, rel=0.045) and value("confidence_mean") == pytest.approx(-0.25)
    assert value("drift_share", ALL_VERSIONS) == 0.67
    assert (
        value("drift_feature:language", ALL_VERSIONS) == 1.0
        and value("drift_feature:output_tokens", ALL_VERSIONS) == 0.0
    )
    assert signals.sample("drift_share", "chat", "v1", 60, clock.now) is None
    drift = signals.sample("drift_share", "chat", ALL_VERSIONS, 60, clock.now)
    assert drift is not None and drift.requests == 500
    dumped = signals.drift_report("chat", "v1")  # a version without its own report gets the group's
    assert dumped is not None and dumped["drifted_features"] == ["prompt_tokens", "language"]
    clock.now += 120  # the requests left the 60 s window
    await signals.refresh(clock.now)
    assert value("requests") == 0 and value("error_rate") is None
