"""What replicas share through a real Redis: rolling windows (merged equals one window over all the
data, and a replica whose copy expired drops out), the retraining cool-down across two engines,
and the lease that lets one replica notify while every replica evaluates."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from interlock import parse_settings
from interlock.app import make_alerts
from interlock.config import Settings
from interlock.observe.alerting import AlertEngine, WindowSignals
from interlock.observe.alerts import ALL_VERSIONS
from interlock.observe.drift import DriftReport, FeatureKind, FeatureResult, Status
from interlock.observe.notify import HttpPoster, Notifier
from interlock.observe.retrain import LocalCooldown, RedisCooldown, RetrainTrigger
from interlock.observe.window import RequestStats, merged, publish
from tests.support.clock import Clock
from tests.support.procs import RedisServer
from tests.support.receiver import Receiver

START = 1_800_000_000.0  # the clock's reading when a test begins

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


# -- windows ----------------------------------------------------------------------------------------
async def test_windows_merged_through_redis_equal_one_window_over_all_the_data(redis: Redis, prefix: str) -> None:
    rng = random.Random(11)
    clock = Clock(START)
    whole = RequestStats(900, 5, clock)
    replicas = [RequestStats(900, 5, clock, replica=f"replica-{i}") for i in range(3)]
    start = clock.now
    for i in range(4000):
        clock.now = start + i * 0.15  # ten minutes of traffic
        row = (
            rng.choice(["chat", "embed"]), rng.choice(["v1", "v2"]), rng.lognormvariate(-1, 1),
            rng.choice([None, None, None, "upstream", "timeout"]), rng.lognormvariate(-3, 0.4) if rng.random() < 0.6 else None,
            -rng.random() * 2 if rng.random() < 0.4 else None,
        )  # fmt: skip
        whole.record(*row)
        rng.choice(replicas).record(*row)
    for r in replicas:
        await publish(r, redis, prefix, ttl_s=30)

    reader = RequestStats(900, 5, clock, replica="reader")  # publishes nothing of its own
    for view in (await merged(redis, prefix, replicas[0], ttl_s=30), await merged(redis, prefix, reader, ttl_s=30)):
        assert sorted(view.series()) == sorted(whole.series())
        for model, version in whole.series():
            for lo, hi in ((start, start + 600), (start + 120, start + 300), (start + 590, start + 600)):
                a, b = view.stats(model, version, lo, hi), whole.stats(model, version, lo, hi)
                assert (a.requests, a.errors, a.latency, a.ttft, a.confidence_count) == (
                    b.requests, b.errors, b.latency, b.ttft, b.confidence_count,
                )  # fmt: skip
                assert a.confidence_sum == pytest.approx(b.confidence_sum)
                assert a.p95_ms == b.p95_ms and a.error_rate() == b.error_rate()


async def test_a_replica_whose_published_copy_expired_drops_out(redis: Redis, prefix: str) -> None:
    clock = Clock(START)
    a, b = RequestStats(600, 5, clock, replica="a"), RequestStats(600, 5, clock, replica="b")
    a.record("chat", "v1", 0.1)
    b.record("chat", "v1", 0.1)
    await publish(a, redis, prefix, ttl_s=30)
    await publish(b, redis, prefix, ttl_s=0.2)
    reader = RequestStats(600, 5, clock, replica="reader")
    assert (await merged(redis, prefix, reader, ttl_s=30)).last("chat", "v1", 60).requests == 2
    await asyncio.sleep(0.4)  # b's copy expires in Redis (real time)
    assert (await merged(redis, prefix, reader, ttl_s=30)).last("chat", "v1", 60).requests == 1
    clock.now += 31  # and its index entry is dropped by the next publish past the TTL
    await publish(a, redis, prefix, ttl_s=30)
    assert [m.decode() for m in await redis.zrange(prefix + "windows", 0, -1)] == ["a"]


# -- retraining cool-down ---------------------------------------------------------------------------
def settings_for(receiver: Receiver, cooldown_s: float, prefix: str, **alerts: Any) -> Settings:
    config = {
        "models": [{"name": "chat", "deployments": [{"id": "l", "backend": "local"}]}],
        "alerts": {
            "evaluate_s": 3600,
            "prefix": prefix,
            "webhooks": {"hook": {"url": receiver.url("/hook"), "backoff_s": 0.01}},
            "retrain": {
                "url": receiver.url("/retrain"),
                "token": "env:AML_TOKEN",
                "cooldown_s": cooldown_s,
                "backoff_s": 0.01,
            },
            "rules": [
                {
                    "name": "Drift",
                    "signal": "drift_share",
                    "threshold": 0.3,
                    "min_requests": 100,
                    "actions": ["retrain"],
                }
            ],
            **alerts,
        },
    }
    return parse_settings(config, environ={"AML_TOKEN": "aml-token-123"})


def report(share: float) -> DriftReport:
    features = (FeatureResult("language", FeatureKind.CATEGORY, Status.DRIFTED if share > 0 else Status.OK, 1000, 400),)
    return DriftReport(features, 1000, 400, share, 0.5, share >= 0.5)


class Replica:
    """One gateway replica's alert engine: its own windows, its own Redis client, no lease (so
    both replicas act and only the cool-down can keep the retraining post single)."""

    def __init__(self, settings: Settings, redis_url: str, clock: Clock) -> None:
        assert settings.alerts is not None and settings.alerts.retrain is not None
        self.drift: dict[tuple[str, str], DriftReport] = {}
        self.redis = Redis.from_url(redis_url)
        signals = WindowSignals(RequestStats(3600, 5, clock), lambda: self.drift)
        poster = HttpPoster()
        retrain = RetrainTrigger(settings.alerts.retrain, poster, RedisCooldown(self.redis, settings.alerts.prefix))
        self.engine = AlertEngine(settings.alerts, signals, Notifier({}, poster), poster, retrain, clock=clock)

    async def close(self) -> None:
        await self.engine.close()
        await self.redis.aclose()  # the engine does not own the client

    async def episode(self, share: float) -> None:
        self.drift[("chat", ALL_VERSIONS)] = report(share)
        await self.engine.evaluate()


async def wait_tasks(*replicas: Replica) -> None:
    for _ in range(100):
        if not any(r.engine._tasks for r in replicas):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("retrain tasks did not finish")


async def test_the_retraining_cooldown_is_shared_by_two_engines(
    receiver: Receiver, redis_server: RedisServer, prefix: str
) -> None:
    clock = Clock(START)
    settings = settings_for(receiver, cooldown_s=1.0, prefix=prefix)
    a, b = Replica(settings, redis_server.url, clock), Replica(settings, redis_server.url, clock)
    try:
        await asyncio.gather(a.episode(0.67), b.episode(0.67))  # both fire at once
        await wait_tasks(a, b)
        [posted] = receiver.delivered("/retrain")
        assert posted["model"] == "chat" and posted["version"] == ALL_VERSIONS and posted["alert"] == "Drift"
        assert posted["signal"] == "drift_share" and posted["value"] == 0.67 and posted["threshold"] == 0.3
        assert posted["drift_report"]["drifted_features"] == ["language"] and posted["drift_report"]["n_live"] == 400
        assert receiver.seen[0].headers["Authorization"] == "Bearer aml-token-123"
        for r in (a, b):  # resolve, then fire again within the cool-down: nothing more is posted
            await r.episode(0.0)
            await r.episode(0.9)
        await wait_tasks(a, b)
        assert len(receiver.delivered("/retrain")) == 1
        await asyncio.sleep(1.1)  # the cool-down (a Redis PX, so real time) runs out
        await b.episode(0.0)
        await b.episode(0.9)
        await wait_tasks(b)
        assert len(receiver.delivered("/retrain")) == 2
    finally:
        await a.close()
        await b.close()


async def test_a_failed_retraining_post_gives_the_cooldown_back(receiver: Receiver, redis: Redis, prefix: str) -> None:
    receiver.fail_first["/retrain"] = (2, 503)
    settings = settings_for(receiver, cooldown_s=3600, prefix=prefix)
    assert settings.alerts is not None and settings.alerts.retrain is not None
    retrain_settings = settings.alerts.retrain.__class__(
        url=receiver.url("/retrain"), cooldown_s=3600, max_attempts=2, backoff_s=0.01
    )
    poster = HttpPoster()
    try:
        trigger = RetrainTrigger(retrain_settings, poster, RedisCooldown(redis, prefix))
        assert await trigger.trigger("chat", {"n": 1}) is False  # two 503s: given up, cool-down released
        assert await redis.get(prefix + "retrain:chat") is None
        assert await trigger.trigger("chat", {"n": 2}) is True
        assert await redis.get(prefix + "retrain:chat") is not None
        assert await trigger.trigger("chat", {"n": 3}) is False  # cooling down now
        assert await trigger.trigger("embed", {"n": 4}) is True  # per model group
        assert [b["n"] for b in receiver.delivered("/retrain")] == [2, 4]
    finally:
        await poster.close()


async def test_without_redis_the_cooldown_is_held_in_process() -> None:
    clock = Clock(100.0)
    cooldown = LocalCooldown(clock)
    token = await cooldown.acquire("retrain:chat", 60)
    assert token is not None and await cooldown.acquire("retrain:chat", 60) is None
    clock.now += 61
    assert await cooldown.acquire("retrain:chat", 60) is not None


# -- one replica notifies -------------------------------------------------------------------------
async def test_every_replica_evaluates_the_merged_view_and_only_the_lease_holder_notifies(
    receiver: Receiver, redis: Redis, prefix: str
) -> None:
    rule = {
        "name": "Errors",
        "signal": "error_rate",
        "threshold": 0.2,
        "window_s": 60,
        "min_requests": 30,
        "actions": ["hook"],
    }
    settings = settings_for(receiver, cooldown_s=60, prefix=prefix, rules=[rule])
    assert settings.alerts is not None
    clock = Clock(START)
    stats = [RequestStats(600, 5, clock, replica=f"r{i}") for i in range(2)]
    engines = []
    for i, s in enumerate(stats):
        signals = WindowSignals(s, None, redis, prefix, ttl_s=30)
        engine = make_alerts(settings, signals, None, redis, replica=f"r{i}", clock=clock)
        assert engine is not None
        engines.append(engine)
        await engine.start()
    try:
        for s in stats:  # 20 requests each, half failed: each alone is below min_requests
            for i in range(20):
                s.record("chat", "v1", 0.1, "upstream" if i % 2 else None)
        for e in engines:  # r0 takes the lease; r1 sees both replicas' data and fires, but may not post
            await e.evaluate()
        assert engines[1].breaches("chat", "v1") and not engines[0].breaches("chat", "v1")
        await asyncio.sleep(0.2)
        assert receiver.seen == []
        await engines[0].evaluate()  # now r0 sees r1's published data too, fires, and posts
        [body] = await receiver.wait_delivered("/hook", 1)
        assert body["status"] == "firing" and body["value"] == 0.5
        assert [b.rule for e in engines for b in e.breaches("chat", "v1")] == ["Errors", "Errors"]
        await asyncio.sleep(0.2)
        assert len(receiver.delivered("/hook")) == 1  # not once per replica

        await engines[0].close()  # the holder leaves and lets go of its lease
        clock.now += 10
        await engines[1].evaluate()  # the other replica takes the lease and posts what is firing
        _, again = await receiver.wait_delivered("/hook", 2)
        assert again["status"] == "firing" and again["fingerprint"] == body["fingerprint"]
        for _ in range(200):
            stats[1].record("chat", "v1", 0.1)
        clock.now += 10
        await engines[1].evaluate()  # and then the resolve
        *_, resolved = await receiver.wait_delivered("/hook", 3)
        assert resolved["status"] == "resolved"
    finally:
        for e in engines:
            await e.close()
