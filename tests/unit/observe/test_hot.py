"""The plain-number families expose what prometheus_client's own would, sample for sample."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from interlock.observe.hot import HotCounter, HotGauge, HotHistogram
from interlock.observe.metrics import LATENCY_BUCKETS, Metrics

VALUES = [0.0, 0.0004, 0.001, 0.0011, 0.25, 0.7, 3.0, 599.0, 600.0, 601.0, 1e9]


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but the `_created` timestamps (which only say when a child was made)."""
    out = []
    for family in registry.collect():
        for s in family.samples:
            value = 0.0 if s.name.endswith("_created") else s.value
            out.append((s.name, s.labels, value))
    return sorted(out, key=repr)


def test_a_hot_histogram_has_prometheus_clients_samples_and_text() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("t_seconds", "help text", ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=theirs)
    h2 = HotHistogram("t_seconds", "help text", ["model", "endpoint"], registry=ours, buckets=LATENCY_BUCKETS)
    for i, v in enumerate(VALUES):
        for h in (h1, h2):
            h.labels("m", "chat" if i % 2 else "embed").observe(v)
    assert samples(ours) == samples(theirs)
    text = [line for line in generate_latest(ours).decode().splitlines() if "_created" not in line]
    assert text == [line for line in generate_latest(theirs).decode().splitlines() if "_created" not in line]


def test_a_hot_counter_has_prometheus_clients_samples_and_text() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    c1 = Counter("t_requests", "help text", ["model", "status"], registry=theirs)
    c2 = HotCounter("t_requests", "help text", ["model", "status"], registry=ours)
    for c in (c1, c2):
        c.labels("m", 200).inc()
        c.labels("m", "200").inc(2.5)
        c.labels("n", 500).inc()
    assert samples(ours) == samples(theirs)
    assert [x for x in generate_latest(ours).decode().splitlines() if "_created" not in x] == [
        x for x in generate_latest(theirs).decode().splitlines() if "_created" not in x
    ]
    with pytest.raises(ValueError):
        c2.labels("m", "200").inc(-1)
    with pytest.raises(ValueError):
        c2.labels("only one")


def test_a_hot_gauge_has_prometheus_clients_samples_and_text() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    g1 = Gauge("t_inflight", "help text", ["deployment"], multiprocess_mode="livesum", registry=theirs)
    g2 = HotGauge("t_inflight", "help text", ["deployment"], multiprocess_mode="livesum", registry=ours)
    for g in (g1, g2):
        g.labels("a").inc()
        g.labels("a").inc(3)
        g.labels("a").dec()
        g.labels("b").set(7)
        g.labels("b").dec(2.5)
        g.labels("c").inc(-1)
    assert samples(ours) == samples(theirs)
    assert generate_latest(ours) == generate_latest(theirs)


def test_the_created_series_follows_prometheus_clients_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", "true")
    registry = CollectorRegistry()
    HotCounter("t_requests", "help", ["m"], registry=registry).labels("a").inc()
    HotHistogram("t_seconds", "help", ["m"], registry=registry, buckets=(1.0,)).labels("a").observe(0.5)
    assert not [s for f in registry.collect() for s in f.samples if s.name.endswith("_created")]


def test_a_name_taken_twice_is_refused_as_by_prometheus_client() -> None:
    registry = CollectorRegistry()
    HotCounter("t_requests", "help", ["m"], registry=registry)
    with pytest.raises(ValueError):
        Counter("t_requests", "help", ["m"], registry=registry)


def test_metrics_in_one_process_count_requests_with_the_plain_families() -> None:
    metrics = Metrics()
    assert isinstance(metrics.requests, HotCounter) and isinstance(metrics.request_seconds, HotHistogram)
    metrics.request_done("m", "chat/completions", 200, "hit", 0.002, 0.0)
    metrics.cache_lookup("memory", True)
    value = metrics.registry.get_sample_value
    assert value("interlock_requests_total", {"model": "m", "endpoint": "chat/completions", "status": "200",
                                               "cache": "hit"}) == 1  # fmt: skip
    assert value("interlock_request_seconds_bucket", {"model": "m", "endpoint": "chat/completions",
                                                       "deployment": "_none", "version": "_none", "le": "0.0025"}) == 1  # fmt: skip
    assert value("interlock_overhead_seconds_count", {"model": "m"}) == 1
    assert value("interlock_cache_total", {"tier": "memory", "result": "hit"}) == 1
    # And the series an upstream call updates.
    assert isinstance(metrics.inflight, HotGauge) and isinstance(metrics.tokens, HotCounter)
    assert isinstance(metrics.upstream_seconds, HotHistogram) and isinstance(metrics.finish_reasons, HotCounter)
    metrics.inflight_add("d", 1)
    metrics.upstream_done("m", "d", 0.3)
    metrics.token_usage("m", "d", "v1", 12, 5)
    metrics.finished("m", "d", "v1", "stop")
    metrics.inflight_add("d", -1)
    assert value("interlock_inflight", {"deployment": "d"}) == 0
    assert value("interlock_upstream_seconds_count", {"model": "m", "deployment": "d"}) == 1
    assert value("interlock_tokens_total", {"model": "m", "deployment": "d", "version": "v1", "direction": "out"}) == 5
    assert value("interlock_finish_reasons_total", {"model": "m", "deployment": "d", "version": "v1",
                                                    "finish_reason": "stop"}) == 1  # fmt: skip
    assert b"interlock_request_seconds_created" in metrics.render()
