from __future__ import annotations

import asyncio

import pytest

from interlock.cache.coalesce import Coalescer
from interlock.cache.entry import CachedAnswer
from interlock.errors import UpstreamError


async def test_coalescer_hands_the_answer_to_every_waiter() -> None:
    flights = Coalescer()
    assert flights.join("k") is None  # the first caller leads
    waiters = [flights.join("k") for _ in range(3)]
    assert all(w is waiters[0] for w in waiters)
    answer = CachedAnswer("json", body=b"{}")
    flights.finish("k", answer)
    assert [await w for w in waiters] == [answer] * 3  # type: ignore[misc]
    assert len(flights) == 0 and flights.join("k") is None


async def test_coalescer_hands_the_error_to_every_waiter() -> None:
    flights = Coalescer()
    flights.join("k")
    waiter = flights.join("k")
    flights.finish("k", error=UpstreamError("down"))
    with pytest.raises(UpstreamError):
        await waiter  # type: ignore[misc]


async def test_a_lone_failing_leader_leaves_nothing_behind() -> None:
    flights = Coalescer()
    flights.join("k")
    flights.finish("k", error=UpstreamError("down"))
    await asyncio.sleep(0)
    assert len(flights) == 0
