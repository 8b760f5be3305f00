"""DriftMonitor.compare_versions, without Redis: a rollout's candidate tested against its stable
version over the same live window, so two versions answering alike show no drift, whatever a
reference file would say, and a candidate answering differently does."""

from __future__ import annotations

import asyncio
import random

import orjson

from interlock.observe.monitor import DriftMonitor, MonitorSettings
from interlock.rollout.observations import drift_share


def request(rng: random.Random) -> dict[str, object]:
    topic = rng.choice(["my invoice", "the mobile app", "a password reset", "the delivery date"])
    return {"model": "m", "messages": [{"role": "user", "content": f"Can you help me with {topic}?"}]}


def answer(rng: random.Random, text: str, finish: str = "stop") -> bytes:
    content = text + " " + "step " * rng.randint(5, 30)
    return orjson.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    )


async def test_a_candidate_is_compared_with_stable_over_the_same_window() -> None:
    rng = random.Random(3)
    monitor = DriftMonitor(MonitorSettings(sample=1.0, max_per_s=100_000, window_s=600, evaluate_s=3600), None, "x:",
                           None)  # fmt: skip
    await monitor.start()
    try:
        for _ in range(300):
            for version in ("v1", "v2", "v3"):
                if version == "v3":  # refuses, at twice the latency, cut short
                    body, latency = answer(rng, "I'm sorry, but I can't help with that.", "length"), 400.0
                else:
                    body, latency = answer(rng, "Sure, here is how:"), 200.0
                monitor.offer("m", version, request(rng), body, latency + rng.uniform(-20, 20))
        for _ in range(500):
            await asyncio.sleep(0.02)
            if not monitor._queue and {"v1", "v2", "v3"} <= set(monitor.versions("m")):
                break
        await asyncio.sleep(0.5)  # the worker's last batch, on its thread
        same = await monitor.compare_versions("m", "v1", "v2")
        other = await monitor.compare_versions("m", "v1", "v3")
    finally:
        await monitor.close()
    assert same.n_reference >= 250 and same.n_live >= 250
    assert drift_share(same) == 0.0
    shifted = drift_share(other)
    assert shifted is not None and shifted > 0.2
    assert {f.name for f in other.features if f.drifted} >= {"latency_ms", "finish_reason", "refusal"}
