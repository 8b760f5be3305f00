from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.cache.stage import CacheStage
from interlock.config import GroupCache
from interlock.errors import RateLimited, UpstreamError, UpstreamRateLimited
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.pipeline.result import Result
from tests.support.context import context, reaches_the_rest

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


async def test_waiters_call_upstream_themselves_when_the_leader_hit_its_own_limit() -> None:
    # Token limits apply after the cache, so a flight's leader can be refused by its own key's
    # limits. The waiters' keys may have room: they go on to the upstream rather than share a
    # refusal that is not theirs. A backend's failure (or its 429) is shared as before.
    stage = CacheStage({"m": GroupCache()}, MemoryCache(1 << 20, 1 << 16), None, Metrics(CollectorRegistry()))

    def ctx() -> RequestContext:
        return context(dict(BODY))

    for error, shared in ((RateLimited("key's tokens"), False), (UpstreamRateLimited("backend 429"), True),
                          (UpstreamError("down"), True)):  # fmt: skip
        release = asyncio.get_running_loop().create_future()
        led: list[RequestContext] = []

        async def failing(
            c: RequestContext,
            led: list[RequestContext] = led,
            release: asyncio.Future[None] = release,
            error: Exception = error,
        ) -> Result:
            led.append(c)  # the leader calls upstream
            await release
            raise error

        leader, waiter = ctx(), ctx()
        leading = asyncio.ensure_future(stage(leader, failing))
        await asyncio.sleep(0)
        assert led == [leader]
        waiting = asyncio.ensure_future(reaches_the_rest(stage, waiter))
        await asyncio.sleep(0)
        release.set_result(None)
        with pytest.raises(type(error)):
            await leading
        if shared:
            with pytest.raises(type(error)):
                await waiting
        else:
            assert await waiting and len(stage._flights) == 0  # off to the upstream itself, leading no one


async def test_a_failed_flight_leaves_no_reference_cycle_behind() -> None:
    import gc

    stage = CacheStage({"m": GroupCache()}, MemoryCache(1 << 20, 1 << 16), None, Metrics(CollectorRegistry()))
    release = asyncio.get_running_loop().create_future()

    async def failing(c: RequestContext) -> Result:
        await release
        raise UpstreamError("down")

    async def flight() -> list[BaseException | Result]:
        leader = asyncio.ensure_future(stage(context(dict(BODY)), failing))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(reaches_the_rest(stage, context(dict(BODY))))
        await asyncio.sleep(0)
        release.set_result(None)
        return await asyncio.gather(leader, waiter, return_exceptions=True)  # type: ignore[return-value]

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        results = await flight()
        assert all(isinstance(r, UpstreamError) for r in results)  # the waiter shares the backend's error
        del results
        gc.collect()
        frames = [o for o in gc.garbage if type(o).__name__ == "frame" and "cache/stage.py" in o.f_code.co_filename]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
    assert frames == []  # only the collector could have freed them: a cycle
