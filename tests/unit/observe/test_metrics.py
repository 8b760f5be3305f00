from __future__ import annotations

from interlock.observe.metrics import Metrics


def test_request_latency_is_labelled_with_deployment_and_version() -> None:
    metrics = Metrics()
    metrics.request_done("m", "chat/completions", 200, "miss", 0.5, 0.4, "d1", "v7")
    metrics.request_done("m", "chat/completions", 200, "miss", 1.5, 1.0, "d1", "v7")
    value = metrics.registry.get_sample_value
    labels = {"model": "m", "endpoint": "chat/completions", "deployment": "d1", "version": "v7"}
    assert value("interlock_request_seconds_count", labels) == 2
    assert value("interlock_request_seconds_sum", labels) == 2.0
    assert value("interlock_requests_total", {"model": "m", "endpoint": "chat/completions", "status": "200",
                                              "cache": "miss"}) == 2  # fmt: skip
