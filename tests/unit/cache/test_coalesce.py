from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from interlock.cache.coalesce import Coalescer
from interlock.cache.entry import CachedAnswer, decode, encode
from interlock.cache.keys import cache_key, is_cacheable
from interlock.cache.memory import MemoryCache
from interlock.cache.stage import CacheStage
from interlock.config import GroupCache
from interlock.errors import RateLimited, UpstreamError, UpstreamRateLimited
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import Endpoint, RequestContext
from interlock.pipeline.result import Result
from tests.support.context import context, reaches_the_rest

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_key_is_canonical_and_covers_what_changes_the_answer() -> None:
    k = cache_key("t", Endpoint.CHAT, BODY)
    reordered = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert cache_key("t", Endpoint.CHAT, reordered) == k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "user": "alice"}) == k  # does not change the answer
    assert cache_key("other", Endpoint.CHAT, BODY) != k
    assert cache_key("t", Endpoint.COMPLETIONS, BODY) != k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "max_tokens": 5}) != k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "stream": True}) != k


def test_only_deterministic_requests_by_default() -> None:
    policy = GroupCache()
    assert is_cacheable(policy, Endpoint.CHAT, BODY)
    assert is_cacheable(policy, Endpoint.CHAT, {"temperature": 0.7, "seed": 3})
    assert not is_cacheable(policy, Endpoint.CHAT, {"temperature": 0.7})
    assert not is_cacheable(policy, Endpoint.CHAT, {})  # OpenAI's default temperature is 1
    assert is_cacheable(policy, Endpoint.EMBEDDINGS, {})
    assert is_cacheable(GroupCache(mode="always"), Endpoint.CHAT, {})
    assert not is_cacheable(GroupCache(enabled=False), Endpoint.CHAT, BODY)


def test_memory_tier_is_bounded_in_bytes_and_evicts_least_recently_used() -> None:
    now = [0.0]
    cache = MemoryCache(max_bytes=1000, max_entry_bytes=600, clock=lambda: now[0])
    for i in range(3):
        assert cache.put(f"k{i}", CachedAnswer("json", body=b"x" * 200), ttl=60)
    cache.get("k0")  # k0 is now the most recently used
    cache.put("k3", CachedAnswer("json", body=b"x" * 200), ttl=60)
    assert cache.bytes <= 1000
    assert cache.get("k1") is None and cache.get("k0") is not None
    assert not cache.put("huge", CachedAnswer("json", body=b"x" * 700), ttl=60)


def test_memory_tier_expires_entries() -> None:
    now = [0.0]
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=10_000, clock=lambda: now[0])
    cache.put("k", CachedAnswer("json", body=b"{}"), ttl=5)
    now[0] = 5.0
    assert cache.get("k") is None and cache.bytes == 0


def test_entries_round_trip_and_garbage_is_a_miss() -> None:
    answer = CachedAnswer("sse", events=[b'{"a":1}', b'{"b":2}'])
    assert decode(encode(answer)) == answer
    assert decode(b"\x00garbage") is None


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
