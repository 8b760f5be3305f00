"""The default analysis in the running gateway: two `interlock serve` processes sharing a real
Redis, canaries that name no analysis. A candidate that answers HTTP 200 but refuses is aborted
at its first analysis on what its shadow answers say; one that answers as stable does is
promoted, its shadow similarity judged against stable's own baseline copies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from interlock.rollout.store import Snapshot, decode
from tests.integration.test_rollouts import Traffic, admin, group
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, RedisServer

pytestmark = pytest.mark.integration
PREFIX = "test:rollouts-quality:"
# The built-in template tuned to a test's time scale by name; no `metrics`: the default conditions.
DEFAULT = {"interval_s": 2.0, "count": 1, "min_requests": 5}
# Held until the traffic runs (resumed by the test), so the first interval has requests in it.
STEPS = [{"pause": {}}, {"shadow": {"percent": 50, "baseline_percent": 50}}, {"set_weight": 20}]


def config(upstream: FakeUpstream, redis_url: str) -> dict[str, Any]:
    rollout = {"stable": "v1", "candidate": "v2", "sticky": "user", "templates": {"default": DEFAULT}, "steps": STEPS}
    return {
        "models": [group("same", "ok", upstream), group("refuses", "refuse", upstream)],
        "router": {"retries": 0, "circuit": {"failures": 100000}},
        "rollout": {"redis": {"url": redis_url}, "prefix": PREFIX, "poll_s": 0.25, "lease_ttl_s": 2},
        "rollouts": [{"model": "same", **rollout}, {"model": "refuses", **rollout}],
    }


@pytest.fixture(scope="module")
def gateways(session_tmp: Path, upstream: FakeUpstream) -> Iterator[tuple[list[Gateway], redis.Redis]]:
    server = RedisServer()
    client = redis.Redis.from_url(server.url)
    started: list[Gateway] = []
    try:
        cfg = config(upstream, server.url)
        for _ in range(2):
            started.append(Gateway(session_tmp, cfg))
        yield started, client
    finally:
        for g in started:
            g.stop()
        client.close()
        server.stop()


def snapshot(client: redis.Redis, model: str) -> Snapshot:
    blob = client.hget(f"{PREFIX}rollout:{model}", "blob")
    assert blob is not None
    return decode(blob)  # type: ignore[arg-type]  # redis-py's sync stubs type it loosely


def test_a_refusing_candidate_is_aborted_and_an_identical_one_promoted(
    gateways: tuple[list[Gateway], redis.Redis],
) -> None:
    procs, client = gateways
    traffic = Traffic([g.url for g in procs], ["same", "refuses"])
    try:
        time.sleep(0.5)
        for model in ("same", "refuses"):
            assert admin(procs[0].url, "POST", f"/admin/rollouts/{model}/resume")[0] == 200
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            same, refuses = snapshot(client, "same").state, snapshot(client, "refuses").state
            if same.phase in ("Healthy", "Degraded", "Paused") and refuses.phase in ("Healthy", "Degraded", "Paused"):
                break
            time.sleep(0.1)
    finally:
        traffic.stop()
    # The plan the default analysis made: the pause, shadow, 20 %, then the default analysis.
    assert snapshot(client, "same").spec.plan()[3].analysis == "default"
    assert refuses.phase == "Degraded", refuses.verdicts
    verdict = refuses.verdicts[-1]
    assert verdict.phase == "Failed" and verdict.step == 3  # the first (and only) analysis
    assert "shadow_" in verdict.message  # judged on its answers: it answered HTTP 200 at stable's speed
    failed = {m.name for m in refuses.analysis.metrics if m.phase == "Failed"} if refuses.analysis else set()
    assert {"shadow_similarity", "shadow_refusal_rate"} <= failed
    assert same.phase == "Healthy", same.verdicts
    assert same.verdicts[-1].phase == "Successful" and same.verdicts[-1].message == "every metric passed"
    assert same.weights == {"v2": 100.0}
