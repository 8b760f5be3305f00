"""Rolling request statistics: quantiles from the log-spaced histograms, error rates, intervals,
the ring's rollover, and merging (in memory and through bytes) equal to one window over all data."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from interlock.observe.window import RequestStats, Stats, bucket_key, bucket_value, combine, quantile
from tests.support.clock import Clock

START = 1_000_000.0  # the clock's reading when a test begins


def test_a_bucket_reports_a_value_within_4_5_percent_of_anything_in_it() -> None:
    for ms in np.geomspace(0.01, 2_000_000, 5000):
        got = bucket_value(bucket_key(ms / 1000))
        assert abs(got - ms) / ms < 0.045, ms
    keys = [bucket_key(s) for s in np.geomspace(1e-6, 1e5, 1000)]
    assert keys == sorted(keys) and keys[0] == 0 and keys[-1] == bucket_key(1e9)
    assert bucket_key(0.0) == bucket_key(-1.0) == 0


def test_quantiles_match_numpy_on_llm_like_latencies() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=math.log(0.8), sigma=0.9, size=20_000)  # seconds: 0.05 s to 20 s
    clock = Clock(START)
    stats = RequestStats(600, 5, clock)
    for latency in latencies:
        stats.record("chat", "v1", float(latency))
    s = stats.last("chat", "v1", 60)
    assert s.requests == len(latencies)
    for q, got in ((0.5, s.p50_ms), (0.95, s.p95_ms), (0.99, s.p99_ms)):
        want = float(np.quantile(latencies, q, method="inverted_cdf")) * 1000
        assert got is not None and abs(got - want) / want < 0.045, (q, got, want)


def test_error_rates_by_class_ttft_and_confidence() -> None:
    stats = RequestStats(600, 5, Clock(START))
    for i in range(100):
        error = "upstream" if i < 6 else "timeout" if i < 8 else None
        stats.record("chat", "v1", 0.2, error, ttft_s=0.05 if i % 2 else None, confidence=-0.5 if i < 50 else -1.5)
    stats.record("chat", "v1", None, "client", confidence=math.nan)  # no latency; NaN is not a confidence
    s = stats.last("chat", "v1", 60)
    assert s.requests == 101
    assert s.error_rate() == pytest.approx(9 / 101)
    assert s.error_rate("upstream") == pytest.approx(6 / 101)
    assert s.error_rate("policy") == 0.0
    assert sum(s.latency.values()) == 100 and sum(s.ttft.values()) == 50
    assert s.ttft_p95_ms == pytest.approx(50, rel=0.045)
    assert s.confidence_mean == pytest.approx(-1.0)
    empty = stats.last("other", "v1", 60)
    assert empty.requests == 0 and empty.error_rate() is None and empty.p95_ms is None and empty.confidence_mean is None


def test_an_interval_holds_the_buckets_that_begin_within_it() -> None:
    clock = Clock(1000.0)  # bucket 200 of 5 s
    stats = RequestStats(600, 5, clock)
    for t in range(1000, 1060):  # one request a second for a minute: 5 per bucket
        clock.now = t + 0.5
        stats.record("chat", "v1", 0.1)
    assert stats.stats("chat", "v1", 1000, 1060).requests == 60
    assert stats.stats("chat", "v1", 1010, 1020).requests == 10
    assert stats.stats("chat", "v1", 1011, 1020).requests == 5  # the bucket at 1010 begins before 1011
    assert stats.stats("chat", "v1", 1010, 1021).requests == 15  # the one at 1020 begins within
    clock.now = 1059.9
    assert stats.last("chat", "v1", 30).requests == 30
    assert stats.last("chat", "v1", 30, now=1029.0).requests == 30  # 1000..1030
    assert stats.model_stats("chat", 1000, 1060).requests == 60


def test_the_ring_forgets_what_is_older_than_its_span() -> None:
    clock = Clock(1000.0)
    stats = RequestStats(60, 5, clock)
    stats.record("chat", "v1", 0.1, "upstream")
    clock.now = 1000.0 + 30
    stats.record("chat", "v1", 0.1)
    assert stats.last("chat", "v1", 60).requests == 2
    clock.now = 1000.0 + 70  # the first bucket's slot is reused
    for _ in range(3):
        stats.record("chat", "v1", 0.1)
    s = stats.stats("chat", "v1", 0, 2000)
    assert s.requests == 4 and s.errors == {}
    clock.now = 1005.0  # a wall clock stepped back to a slot reused since: dropped, nothing breaks
    stats.record("chat", "v1", 0.1)
    clock.now = 1071.0
    assert stats.stats("chat", "v1", 0, 2000).requests == 4


Row = tuple[float, str, str, float, str | None, float | None, float | None]  # t, model, version, latency, ...


def _random_traffic(rng: random.Random, n: int) -> list[Row]:
    out = []
    for _ in range(n):
        t = 1000.0 + rng.random() * 300
        out.append((
            t, rng.choice(["chat", "embed"]), rng.choice(["v1", "v2"]), rng.lognormvariate(-1, 1),
            rng.choice([None, None, None, "upstream", "timeout", "policy"]),
            rng.lognormvariate(-3, 0.5) if rng.random() < 0.5 else None,
            -rng.random() * 3 if rng.random() < 0.3 else None,
        ))  # fmt: skip
    return sorted(out)


def _fill(stats: RequestStats, clock: Clock, rows: list[Row]) -> None:
    for t, model, version, latency, error, ttft, conf in rows:
        clock.now = t
        stats.record(model, version, latency, error, ttft, conf)


def assert_same(a: Stats, b: Stats) -> None:
    assert (a.requests, a.errors, a.latency, a.ttft, a.confidence_count) == (
        b.requests, b.errors, b.latency, b.ttft, b.confidence_count,
    )  # fmt: skip
    assert a.confidence_sum == pytest.approx(b.confidence_sum)


def test_merged_windows_equal_one_window_over_all_the_data() -> None:
    rows = _random_traffic(random.Random(3), 3000)
    clock = Clock(START)
    whole = RequestStats(600, 5, clock)
    _fill(whole, clock, rows)
    parts = [RequestStats(600, 5, clock, replica=f"r{i}") for i in range(3)]
    for i, part in enumerate(parts):
        _fill(part, clock, rows[i::3])
    in_memory = parts[0].empty_copy()
    through_bytes = parts[0].empty_copy()
    for part in parts:
        in_memory.merge(part)
        through_bytes.merge_bytes(part.to_bytes())
    assert sorted(in_memory.series()) == sorted(whole.series())
    for model, version in whole.series():
        for start, end in ((1000, 1300), (1100, 1200), (1005, 1010)):
            want = whole.stats(model, version, start, end)
            assert_same(in_memory.stats(model, version, start, end), want)
            assert_same(through_bytes.stats(model, version, start, end), want)
    combined = combine(whole.stats("chat", v, 1000, 1300) for v in ("v1", "v2"))
    assert_same(combined, whole.model_stats("chat", 1000, 1300))


def test_merging_refuses_other_bucket_widths_and_the_series_count_is_bounded() -> None:
    a, b = RequestStats(600, 5, Clock(START)), RequestStats(600, 10, Clock(START))
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        a.merge_bytes(b.to_bytes())
    bounded = RequestStats(600, 5, Clock(START), max_series=2)
    for version in ("v1", "v2", "v3"):
        bounded.record("chat", version, 0.1)
    assert sorted(bounded.series()) == [("chat", "v1"), ("chat", "v2")]


def test_quantile_is_the_nearest_rank() -> None:
    h = {bucket_key(0.001): 90, bucket_key(1.0): 10}
    assert quantile(h, 0.9) == pytest.approx(1.0, rel=0.045)
    assert quantile(h, 0.91) == pytest.approx(1000.0, rel=0.045)
    assert quantile({}, 0.5) is None
