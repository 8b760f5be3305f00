"""The drift monitor against a real Redis: two processes' live windows merge into one view, a
reference stored by one is read by the other, ordinary traffic reports no drift and shifted
traffic does."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest
from redis.asyncio import Redis

from interlock.observe.drift import Profile, observe
from interlock.observe.monitor import DriftMonitor, MonitorSettings
from tests.support.clock import Clock
from tests.support.procs import RedisServer

pytestmark = pytest.mark.integration

TOPICS = ["my invoice", "the mobile app", "a password reset", "the delivery date", "my subscription"]
FRENCH = ["ma facture", "l'application mobile", "la date de livraison", "mon abonnement"]


def english(rng: random.Random) -> dict[str, object]:
    words = " ".join(rng.choice(["please", "quickly", "today", "again", "kindly"]) for _ in range(rng.randint(3, 9)))
    return {
        "model": "m",
        "messages": [{"role": "user", "content": f"Can you help me with {rng.choice(TOPICS)} {words}?"}],
    }


def french_and_long(rng: random.Random) -> dict[str, object]:
    text = " ".join(
        f"Pouvez-vous m'aider avec {rng.choice(FRENCH)} s'il vous plaît, c'est urgent."
        for _ in range(rng.randint(3, 5))
    )
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def answer(rng: random.Random) -> bytes:
    content = "Sure, here is how: " + "step " * rng.randint(5, 30)
    return orjson.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    )


async def settle(*monitors: DriftMonitor) -> None:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if not any(m._queue for m in monitors):  # the worker took everything
            break
    await asyncio.sleep(0.3)  # and finished its batch on the thread


async def test_two_processes_share_a_live_window_and_drift_shows(redis_server: RedisServer, redis: Redis) -> None:
    rng = random.Random(7)
    settings = MonitorSettings(sample=1.0, max_per_s=100_000, window_s=600, evaluate_s=3600)
    clock = Clock(1_000_000.0)
    clients = [Redis.from_url(redis_server.url) for _ in range(2)]  # one per process; a monitor does not own it
    a = DriftMonitor(settings, clients[0], "t:drift:", None, clock=clock)
    b = DriftMonitor(settings, clients[1], "t:drift:", None, clock=clock)
    await a.start()
    await b.start()
    try:
        from interlock.observe.drift import LanguageIdentifier

        language = LanguageIdentifier()
        reference = Profile()
        for _ in range(600):
            request = english(rng)
            reference.observe(
                observe(request, orjson.loads(answer(rng)), latency_ms=40 + rng.random() * 20, language=language)
            )
        await a.store_reference("m", reference)  # as `interlock drift baseline` does

        for i in range(300):
            (a if i % 2 else b).offer("m", "v1", english(rng), answer(rng), 40 + rng.random() * 20)
        await settle(a, b)
        await a.evaluate()
        await b.publish()
        await a.evaluate()
        live = await a.live("m", "v1")
        assert live.n == 300  # both processes' observations, merged through Redis
        report = a.reports[("m", "all")]
        assert not report.to_dict()["dataset_drifted"], report.drifted_features
        assert ("m", "all") in a.reports

        for i in range(300):
            (a if i % 2 else b).offer("m", "v1", french_and_long(rng), answer(rng), 40 + rng.random() * 20)
        await settle(a, b)
        await b.publish()
        await a.evaluate()
        report = a.reports[("m", "all")]
        assert report.to_dict()["dataset_drifted"]
        assert {"language", "prompt_tokens"} <= set(report.drifted_features)

        clock.now += 700  # the window slid past all of it
        assert (await a.live("m", "v1")).n == 0
    finally:
        await a.close()
        await b.close()
        for client in clients:
            await client.aclose()


async def test_the_request_path_never_waits_and_caps_what_it_keeps() -> None:
    settings = MonitorSettings(sample=1.0, max_per_s=10)
    clock = Clock(1_000_000.0)
    monitor = DriftMonitor(settings, None, "x:", None, clock=clock)
    dropped: list[int] = []
    monitor._on_dropped = dropped.append
    for _ in range(25):
        monitor.offer("m", "v1", {"messages": []}, None, 1.0)
    assert len(monitor._queue) == 10 and dropped == []  # counted, told with the next one taken
    clock.now += 1
    monitor.offer("m", "v1", {"messages": []}, None, 1.0)
    assert len(monitor._queue) == 11 and dropped == [15]
    for _ in range(12):  # the cap again (10 this second, 1 already taken): 3 over it
        monitor.offer("m", "v1", {"messages": []}, None, 1.0)
    await monitor.close()  # told at close too, not lost with the process
    assert dropped == [15, 3]
