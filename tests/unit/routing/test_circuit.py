from __future__ import annotations

from interlock.routing.circuit import CircuitBreaker, CircuitState


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
