from __future__ import annotations

import random
from dataclasses import dataclass

from interlock.routing.circuit import CircuitBreaker, CircuitState
from interlock.routing.strategies import least_inflight, lowest_latency, weighted


def test_opens_after_n_failures_within_the_window() -> None:
    cb = CircuitBreaker(failures=3, window=10, cooldown=5)
    cb.failure(0)
    cb.failure(1)
    assert cb.state is CircuitState.CLOSED
    cb.failure(2)
    assert cb.state is CircuitState.OPEN and not cb.available(3)


def test_failures_outside_the_window_do_not_count() -> None:
    cb = CircuitBreaker(failures=3, window=10, cooldown=5)
    cb.failure(0)
    cb.failure(1)
    cb.failure(20)
    assert cb.state is CircuitState.CLOSED


def test_half_open_lets_exactly_one_probe_through() -> None:
    cb = CircuitBreaker(failures=1, window=10, cooldown=5)
    cb.failure(0)
    assert not cb.acquire(4)
    assert cb.acquire(5) and cb.state is CircuitState.HALF_OPEN
    assert not cb.acquire(5)  # a second caller waits for the probe's verdict
    cb.success()
    assert cb.state is CircuitState.CLOSED and cb.acquire(6)


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    cb = CircuitBreaker(failures=1, window=10, cooldown=5)
    cb.failure(0)
    assert cb.acquire(5)
    cb.failure(5)
    assert cb.state is CircuitState.OPEN and not cb.acquire(9) and cb.acquire(10)


def test_a_probe_without_verdict_frees_the_slot() -> None:
    cb = CircuitBreaker(failures=1, window=10, cooldown=5)
    cb.failure(0)
    assert cb.acquire(5)
    cb.release()
    assert cb.acquire(5)


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
