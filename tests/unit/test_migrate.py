"""wait_for_database: connection errors are retried every second until the wait is over; an error
that waiting cannot fix (a wrong password, a missing database) fails at once."""

from __future__ import annotations

import pytest

from interlock.migrate import MigrationError, wait_for_database
from tests.support.clock import SleepingClock


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


class CannotConnectNowError(Exception):
    """Named as asyncpg's: the server is starting up."""


class InvalidPasswordError(Exception):
    """Named as asyncpg's."""


async def test_a_database_that_comes_up_within_the_wait_is_used() -> None:
    clock = SleepingClock()
    connect = Flaky(3, ConnectionRefusedError())
    assert await wait_for_database(connect, 10, clock, clock.sleep) == 4
    assert clock.slept == [1.0, 1.0, 1.0]


async def test_a_server_still_starting_up_is_waited_for() -> None:
    clock = SleepingClock()
    assert await wait_for_database(Flaky(2, CannotConnectNowError()), 10, clock, clock.sleep) == 3


async def test_a_database_that_never_comes_up_fails_after_the_wait() -> None:
    clock = SleepingClock()
    connect = Flaky(1000, OSError("unreachable"))
    with pytest.raises(MigrationError, match="within 5 s"):
        await wait_for_database(connect, 5, clock, clock.sleep)
    assert connect.calls == 6 and sum(clock.slept) == 5


async def test_an_error_waiting_cannot_fix_fails_at_once() -> None:
    clock = SleepingClock()
    connect = Flaky(1000, InvalidPasswordError("password authentication failed for user x"))
    with pytest.raises(MigrationError, match="InvalidPasswordError") as info:
        await wait_for_database(connect, 60, clock, clock.sleep)
    assert connect.calls == 1 and clock.slept == []
    assert "password authentication" not in str(info.value)
