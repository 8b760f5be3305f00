from __future__ import annotations

import random
from dataclasses import dataclass

from interlock.routing.strategies import least_inflight, lowest_latency, weighted


@dataclass
class C:
    weight: float = 1.0
    inflight: int = 0
    latency_ewma: float | None = None


def test_weighted_follows_the_weights() -> None:
    rng = random.Random(1)
    picks = [weighted([C(weight=1), C(weight=3)], rng) for _ in range(4000)]
    assert 0.7 < picks.count(1) / len(picks) < 0.8
    assert {weighted([C(weight=0), C(weight=0)], rng) for _ in range(50)} == {0, 1}


def test_least_inflight_picks_the_idle_one() -> None:
    assert least_inflight([C(inflight=3), C(inflight=0), C(inflight=2)], random.Random(0)) == 1


def test_lowest_latency_measures_everyone_first_then_picks_the_fastest() -> None:
    rng = random.Random(0)
    assert lowest_latency([C(latency_ewma=0.1), C(latency_ewma=None)], rng) == 1
    assert lowest_latency([C(latency_ewma=0.3), C(latency_ewma=0.1), C(latency_ewma=0.2)], rng) == 1
