"""The cache stage: look up (memory, then Redis), coalesce, and store what comes back.

A hit is answered here and the rest of the pipeline does not run; a hit for a streamed request is
replayed as a stream. On a miss the request leads (or joins) a flight of identical requests; the
leader stores the answer in both tiers and hands it to the waiters. A stream is stored only
when it completed: its events are collected as they pass and kept when it ends cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ..config import GroupCache
from ..errors import InterlockError, RateLimited
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import StreamTap
from .coalesce import Coalescer
from .entry import CachedAnswer, decode, encode
from .keys import cache_key, is_cacheable
from .memory import MemoryCache
from .redis_tier import RedisTier


class ReplayStream:
    """Events of a cached stream, replayed in order."""

    __slots__ = ("_events", "_i")

    def __init__(self, events: list[bytes]) -> None:
        self._events = events
        self._i = 0

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> bytes:
        if self._i >= len(self._events):
            raise StopAsyncIteration
        event = self._events[self._i]
        self._i += 1
        return event

    async def aclose(self) -> None:
        self._i = len(self._events)


def as_result(answer: CachedAnswer) -> Result:
    if answer.kind == "sse":
        return StreamResult(ReplayStream(answer.events))
    return Completion(answer.body)


def _shared(error: BaseException | None) -> InterlockError | None:
    """The error a flight's waiters get in place of the answer, or None: they call upstream
    themselves. The leader's own spend limits (our RateLimited, not a backend's 429) are its
    key's, not theirs."""
    if not isinstance(error, InterlockError) or type(error) is RateLimited:
        return None
    return error


class CacheStage:
    def __init__(
        self,
        policies: Mapping[str, GroupCache],
        memory: MemoryCache[CachedAnswer],
        redis: RedisTier | None,
        metrics: Metrics,
    ) -> None:
        self._policies = dict(policies)
        self._memory = memory
        self._redis = redis
        self._metrics = metrics
        self._flights = Coalescer()

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        request = ctx.request
        policy = self._policies.get(request.model)
        body = ctx.body  # as DLP left it: the cache keys on, and stores, the protected request
        if policy is None or not is_cacheable(policy, request.endpoint, body):
            return await call_next(ctx)
        key = cache_key(request.tenant, request.endpoint, body)
        if not request.cache_control.no_cache:
            answer = await self._lookup(key, policy)
            if answer is not None:
                ctx.cache_status = "hit"
                return as_result(answer)
        ctx.cache_status = "miss"
        waiting = self._flights.join(key)
        if waiting is not None:
            self._metrics.coalesce(request.model)
            answer = await asyncio.shield(waiting)  # a waiter going away must not cancel the flight
            if answer is not None:
                ctx.cache_status = "hit"
                return as_result(answer)
            # The leader went away without an answer: call upstream ourselves, leading no one.
            return await call_next(ctx)
        return await self._lead(ctx, key, policy, call_next)

    async def _lead(self, ctx: RequestContext, key: str, policy: GroupCache, call_next: Next) -> Result:
        """Call upstream for the flight of identical requests, store the answer and hand it to the
        waiters; they get the same error, or, if the leader was cancelled, retry on their own."""
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            self._flights.finish(key, error=_shared(exc))
            raise
        if isinstance(result, Completion):
            answer = CachedAnswer("json", body=result.body) if result.status == 200 else None
            self._settle(ctx, key, policy, answer)
            return result
        collected: list[bytes] = []

        def on_end(stream_error: BaseException | None) -> None:
            if stream_error is None and not any(e.startswith(b'{"error"') for e in collected):
                self._settle(ctx, key, policy, CachedAnswer("sse", events=collected))
            else:
                self._flights.finish(key, error=_shared(stream_error))

        return StreamResult(StreamTap(result.events, collected.append, on_end), result.headers)

    async def _lookup(self, key: str, policy: GroupCache) -> CachedAnswer | None:
        answer = self._memory.get(key)
        self._metrics.cache_lookup("memory", answer is not None)
        if answer is not None or self._redis is None:
            return answer
        raw = await self._redis.get(key)
        answer = decode(raw) if raw is not None else None
        self._metrics.cache_lookup("redis", answer is not None)
        if answer is not None:
            self._memory.put(key, answer, policy.ttl)
        return answer

    def _settle(self, ctx: RequestContext, key: str, policy: GroupCache, answer: CachedAnswer | None) -> None:
        self._flights.finish(key, answer)
        control = ctx.request.cache_control
        # A semantic hit is not copied under this request's exact key: it would outlive an
        # invalidation of the semantic cache, and be served as an exact hit it never was.
        if answer is None or control.no_store or ctx.semantic is not None:
            return
        ttl = control.ttl if control.ttl is not None else policy.ttl
        self._memory.put(key, answer, ttl)
        if self._redis is not None:
            self._redis.set_later(key, encode(answer), ttl)
