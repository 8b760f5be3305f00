"""Requests and tokens per minute, per key, tenant and model group.

Fixed one-minute windows. One check covers every limit that applies to a request and is atomic:
either all counters move or none does. With Redis that is one Lua script, so the limits hold
across workers and replicas (200 concurrent requests over two processes against a limit of 50 let
exactly 50 through); without Redis the counters live in the process, which the config only allows
with a single worker.

Tokens are reserved before the call from an estimate (about 4 bytes of prompt per token, plus
`max_tokens` or a default) and reconciled with the usage the answer reports, so a limit follows
what was really spent. A cache hit spends no model tokens: its reservation is given back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

WINDOW = 60.0
BYTES_PER_TOKEN = 4

# KEYS: one counter per limit. ARGV: ttl in ms, then (cost, limit) pairs.
# Returns {0, count after, ...} when everything was counted, or {index of the first limit
# exceeded, its current count}.
_CHECK_AND_COUNT = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + tonumber(ARGV[2 * i]) > tonumber(ARGV[2 * i + 1]) then
    return {i, current}
  end
end
local counts = {0}
for i = 1, #KEYS do
  counts[i + 1] = redis.call('INCRBY', KEYS[i], ARGV[2 * i])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return counts
"""


@dataclass(frozen=True, slots=True)
class Check:
    """One limit as applied to one request: its counter, the cost now and the ceiling."""

    scope: str  # "key", "tenant" or "model": names the limit in errors and headers
    unit: str  # "requests" or "tokens"
    counter: str  # counter name without the window
    cost: int
    limit: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    window: int
    reset_in: float  # seconds until the window ends
    exceeded: Check | None = None
    counts: tuple[int, ...] = ()  # allowed: each counter after this request; else the one exceeded
    local: bool = False  # counted by the in-process fallback: reconcile there too

    def headers(self, checks: Sequence[Check]) -> list[tuple[str, str]]:
        """x-ratelimit-* as OpenAI sends them, for the tightest limit of each unit."""
        out: list[tuple[str, str]] = []
        reset = f"{math.ceil(self.reset_in)}s"
        for unit in ("requests", "tokens"):
            pairs = [(c, n) for c, n in zip(checks, self.counts, strict=False) if c.unit == unit]
            if not pairs:
                continue
            check, count = min(pairs, key=lambda p: p[0].limit - p[1])
            out += [
                (f"x-ratelimit-limit-{unit}", str(check.limit)),
                (f"x-ratelimit-remaining-{unit}", str(max(0, check.limit - count))),
                (f"x-ratelimit-reset-{unit}", reset),
            ]
        return out


Result = tuple[int, tuple[int, ...]]  # (index of the limit exceeded or 0, counts)


class Counters(Protocol):
    async def check_and_count(self, checks: Sequence[Check], window: int, ttl_s: float = WINDOW * 2) -> Result: ...

    async def adjust(self, items: Sequence[tuple[str, int, int]]) -> None:
        """Add each (counter, window, delta)."""
        ...


class LocalCounters:
    """In-process counters: exact for one process, which is all the config allows them for."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def check_and_count(self, checks: Sequence[Check], window: int, ttl_s: float = WINDOW * 2) -> Result:
        counts = self._counts
        for i, c in enumerate(checks, 1):
            current = counts.get((c.counter, window), 0)
            if current + c.cost > c.limit:
                return i, (current,)
        after = []
        for c in checks:
            value = counts[(c.counter, window)] = counts.get((c.counter, window), 0) + c.cost
            after.append(value)
        if len(counts) > 100_000:  # drop finished windows
            for key in [k for k in counts if k[1] < window]:
                del counts[key]
        return 0, tuple(after)

    async def adjust(self, items: Sequence[tuple[str, int, int]]) -> None:
        for counter, window, delta in items:
            key = (counter, window)
            if key in self._counts:
                self._counts[key] += delta


class RedisCounters:
    """Counters in Redis. Each check is one atomic script; checks that arrive in the same turn
    of the event loop go out together in one pipelined round trip (each still atomic on its own,
    in arrival order), which is what keeps a Redis check per request affordable under load."""

    def __init__(self, client: Redis, prefix: str, timeout_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout_s
        self._script = client.register_script(_CHECK_AND_COUNT)
        self._queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []

    def _key(self, counter: str, window: int) -> str:
        return f"{self._prefix}{counter}:{window}"

    async def check_and_count(self, checks: Sequence[Check], window: int, ttl_s: float = WINDOW * 2) -> Result:
        keys = [self._key(c.counter, window) for c in checks]
        args: list[Any] = [int(ttl_s * 1000)]
        for c in checks:
            args += [c.cost, c.limit]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._send)  # after every check of this turn has queued
        self._queued.append((keys, args, future))
        index, *counts = await future
        return int(index), tuple(int(n) for n in counts)

    def _send(self) -> None:
        batch, self._queued = self._queued, []
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout), self._client.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    await self._script(keys=keys, args=args, client=pipe)
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # every waiter learns of it and falls back on its own
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RedisError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def adjust(self, items: Sequence[tuple[str, int, int]]) -> None:
        """One round trip for a whole batch of adjustments."""
        async with asyncio.timeout(self._timeout), self._client.pipeline(transaction=False) as pipe:
            for counter, window, delta in items:
                pipe.incrby(self._key(counter, window), delta)
            await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()


class Limiter:
    """Applies checks through shared counters; if they fail, through local ones (and says so)."""

    def __init__(
        self,
        counters: Counters,
        fallback: LocalCounters | None,
        on_error: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counters = counters
        self._fallback = fallback
        self._on_error = on_error
        self._clock = clock

    async def acquire(self, checks: Sequence[Check]) -> Decision:
        now = self._clock()
        window = int(now // WINDOW)
        reset_in = (window + 1) * WINDOW - now
        if not checks:
            return Decision(True, window, reset_in)
        index, counts, local = await self._count(checks, window, WINDOW * 2, "check")
        if index:
            return Decision(False, window, reset_in, checks[index - 1], counts, local)
        return Decision(True, window, reset_in, None, counts, local)

    async def within_budget(self, checks: Sequence[Check], period: int, period_s: float) -> tuple[Check | None, bool]:
        """The first budget already spent in this period (or None), and whether the in-process
        fallback answered. Counts nothing: a budget check has cost 0 and a ceiling one below the
        budget, so `spent >= budget` refuses."""
        index, _, local = await self._count(checks, period, period_s * 2, "budget")
        return (checks[index - 1] if index else None), local

    async def _count(
        self, checks: Sequence[Check], window: int, ttl_s: float, op: str
    ) -> tuple[int, tuple[int, ...], bool]:
        """Check and count in the shared counters, or in the fallback when they fail."""
        try:
            index, counts = await self._counters.check_and_count(checks, window, ttl_s)
        except (RedisError, OSError, TimeoutError):
            self._on_error(op)
            if self._fallback is None:
                raise
            index, counts = await self._fallback.check_and_count(checks, window, ttl_s)
            return index, counts, True
        return index, counts, False

    async def close(self) -> None:
        close = getattr(self._counters, "close", None)
        if close is not None:
            await close()

    async def adjust(self, items: Sequence[tuple[str, int, int]], local: bool = False) -> None:
        """Move counters of the store that counted them (a reservation made in the fallback is not
        taken back from Redis, which never saw it)."""
        if not items:
            return
        if local:
            if self._fallback is not None:
                await self._fallback.adjust(items)
            return
        try:
            await self._counters.adjust(items)
        except (RedisError, OSError, TimeoutError):
            self._on_error("adjust")


def budget_period(now: float, period: str) -> tuple[int, float]:
    """(period index, seconds until it ends) for "day" or "month" (UTC)."""
    import datetime

    t = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + datetime.timedelta(days=1)
        return int(start.timestamp() // 86400), end.timestamp() - now
    start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return t.year * 12 + t.month - 1, end.timestamp() - now


def estimate_tokens(body: dict[str, Any], default_max_tokens: int) -> int:
    """Prompt bytes / 4 plus the completion budget: what OpenAI-style limiters reserve."""
    prompt = body.get("messages") or body.get("prompt") or body.get("input") or ""
    prompt_tokens = math.ceil(len(orjson.dumps(prompt)) / BYTES_PER_TOKEN)
    completion = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(completion, int):
        completion = 0 if "input" in body else default_max_tokens  # embeddings generate nothing
    return prompt_tokens + completion
