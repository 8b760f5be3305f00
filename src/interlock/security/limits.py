"""Requests and tokens per minute, per key, tenant and model group.

Fixed one-minute windows. One check covers every limit of one unit (requests, or tokens) that
applies to a request and is atomic: either all its counters move or none does. With Redis the
limits hold across workers and replicas (200 concurrent requests over two processes against a
limit of 50 let exactly 50 through); without Redis the counters live in the process, which the
config only allows with a single worker.

A Redis round trip per request costs more than a whole cache hit (about 100 µs through redis-py
against 66 µs for the hit), so each process takes *leases*: one atomic script moves a counter in
Redis by a batch of units and the process hands them out locally until they run out. A lease is
at most `LEASE_REQUESTS` requests' worth and at most 1/`LEASE_SPREAD` of the room left in the
window, so near the limit leases shrink to exactly what one request needs and every check is a
Redis check again: the limit stays exact (the 50 above are exactly 50), and each counted unit has
its own position in the window, which is what `x-ratelimit-remaining-*` reports. The price is that
a process that goes quiet holds at most 1/16 of the room it saw (and, when a background refill
lands just as the window nears its limit, one request's worth), until the window ends or it
shuts down and gives it back.

Tokens are reserved before the call from an estimate (about 4 bytes of prompt per token, plus
`max_tokens` or a default) and reconciled with the usage the answer reports, so a limit follows
what was really spent (a cache hit reserves nothing: `limit_stage` applies token limits only to
calls that reach a model). The difference goes to the process's lease when it holds one in batch
mode (no Redis call), to Redis otherwise, in batches sent every `FLUSH_S`.

Budgets are different: a budget check counts nothing (cost 0, ceiling one below the budget), so
it always asks the store, exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

WINDOW = 60.0
TTL_S = WINDOW * 2  # a window's counters outlive it by a window
BYTES_PER_TOKEN = 4
# A lease covers at most this many requests of the size that asked for it. Half of it must outlast
# a background refill, which under load takes far longer than a round trip: at 10k requests a
# second over 64 connections one turn of the event loop serves dozens of requests, and redis-py
# needs several turns (measured: 30-45 ms a refill, so leases of 1024 ran dry every few refills
# and every request in flight waited for Redis). It must also exceed the requests in flight,
# which each hold their token reservation until they end.
LEASE_REQUESTS = 4096
LEASE_SPREAD = 16  # and at most 1/16 of the room left in the window
FLUSH_S = 0.02  # how long adjustments are summed before one round trip sends them
# In a window's last second, a process that is counting also leases for the next one, so the
# requests at the turn of the minute do not all wait for Redis (under load, a lease takes 30-45 ms).
AHEAD_S = 1.0

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

# KEYS: the counters a process needs more of. ARGV: ttl in ms, spread, then (need, want, limit)
# triples. Grants each counter max(need, min(want, room / spread)) units, all or nothing.
# Returns {0, count after..., granted...} or {index of the first limit exceeded, its count}.
_LEASE = """
local ttl = ARGV[1]
local spread = tonumber(ARGV[2])
local grants = {}
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  local need = tonumber(ARGV[3 * i])
  local limit = tonumber(ARGV[3 * i + 2])
  if current + need > limit then
    return {i, current}
  end
  grants[i] = math.max(need, math.min(tonumber(ARGV[3 * i + 1]), math.floor((limit - current) / spread)))
end
local out = {0}
for i = 1, #KEYS do
  out[i + 1] = redis.call('INCRBY', KEYS[i], grants[i])
  out[#KEYS + i + 1] = grants[i]
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return out
"""


class Check(NamedTuple):
    """One limit as applied to one request: its counter, the cost now and the ceiling. (Tuples:
    several are made per request, and a tuple is made several times faster than a dataclass.)"""

    scope: str  # "key", "tenant" or "model": names the limit in errors and headers
    unit: str  # "requests" or "tokens"
    counter: str  # counter name without the window
    cost: int
    limit: int


class Decision(NamedTuple):
    allowed: bool
    window: int
    reset_in: float  # seconds until the window ends
    exceeded: Check | None = None
    counts: tuple[int, ...] = ()  # allowed: each counter after this request; else the one exceeded
    local: bool = False  # counted by the in-process fallback: reconcile there too


_HEADER_NAMES = {
    unit: (f"x-ratelimit-limit-{unit}".encode(), f"x-ratelimit-remaining-{unit}".encode(),
           f"x-ratelimit-reset-{unit}".encode())
    for unit in ("requests", "tokens")
}  # fmt: skip
MAX_REMEMBERED_LIMITS = 4096  # per unit: limits whose header `RateHeaders` keeps made


class RateHeaders:
    """x-ratelimit-* as OpenAI sends them, for the tightest of a request's checks (all of one
    unit) with the counts after this request, ready for the wire. The headers that repeat from
    one request to the next are made once: the limit's, by unit and limit, and the reset's, by
    unit and whole seconds (at most 60 of them); only the remaining count is formatted per
    request. (Every request a lease admits pays for this: a dict lookup by an int costs a third
    of formatting it. Fields by index: a named field of a tuple is a descriptor call.)"""

    __slots__ = ("_limits", "_remaining", "_resets")

    def __init__(self) -> None:
        self._limits: dict[str, dict[int, tuple[bytes, bytes]]] = {unit: {} for unit in _HEADER_NAMES}
        self._resets: dict[str, dict[int, tuple[bytes, bytes]]] = {unit: {} for unit in _HEADER_NAMES}
        self._remaining = {unit: names[1] for unit, names in _HEADER_NAMES.items()}

    def of(self, checks: Sequence[Check], counts: Sequence[int], reset_in: float) -> list[tuple[bytes, bytes]]:
        first = checks[0]
        limit = first[4]
        least = limit - counts[0]
        for i in range(1, len(checks)):
            check = checks[i]
            left = check[4] - counts[i]
            if left < least:
                limit, least = check[4], left
        unit = first[1]
        limits = self._limits[unit]
        limit_header = limits.get(limit)
        if limit_header is None:
            if len(limits) >= MAX_REMEMBERED_LIMITS:
                limits.clear()
            limit_header = limits[limit] = (_HEADER_NAMES[unit][0], b"%d" % limit)
        seconds = math.ceil(reset_in)
        resets = self._resets[unit]
        reset_header = resets.get(seconds)
        if reset_header is None:
            reset_header = resets[seconds] = (_HEADER_NAMES[unit][2], b"%ds" % seconds)
        return [limit_header, (self._remaining[unit], b"%d" % least if least > 0 else b"0"), reset_header]


Result = tuple[int, tuple[int, ...]]  # (index of the limit exceeded or 0, counts)
Adjustment = tuple[str, int, int]  # (counter, window, delta)


class Counters(Protocol):
    def take(self, checks: Sequence[Check], window: int, ttl_s: float) -> tuple[int, ...] | None:
        """Count a request without I/O when that is possible (leased units); None: call acquire."""
        ...

    def prepare(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        """Get ready, in the background, for `checks` in a window about to start."""
        ...

    async def acquire(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        """Count a request against every check, all or nothing (a store may hand out leased units)."""
        ...

    async def check(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        """The same, asking the store itself: for budget checks, which count nothing."""
        ...

    def settle(self, items: Sequence[Adjustment]) -> list[Adjustment]:
        """Apply what can be applied in process; return what must still go to the store."""
        ...

    async def add(self, items: Sequence[Adjustment]) -> None:
        """Add each delta in the store."""
        ...

    async def read(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        """The current value of each (counter, window), counting nothing (0 when unset)."""
        ...


class LocalCounters:
    """In-process counters: exact for one process, which is all the config allows them for."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    def take(self, checks: Sequence[Check], window: int, ttl_s: float) -> tuple[int, ...] | None:
        index, counts = self.count(checks, window)
        return None if index else counts  # a refusal is acquire's to give (it counts nothing)

    def prepare(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        pass  # nothing to wait for in process

    async def acquire(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        return self.count(checks, window)

    async def check(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        return self.count(checks, window)

    def count(self, checks: Sequence[Check], window: int) -> Result:
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

    def settle(self, items: Sequence[Adjustment]) -> list[Adjustment]:
        for counter, window, delta in items:
            key = (counter, window)
            if key in self._counts:
                self._counts[key] += delta
        return []

    async def add(self, items: Sequence[Adjustment]) -> None:
        self.settle(items)

    async def read(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        return [self._counts.get(c, 0) for c in counters]


@dataclass(slots=True)
class _Lease:
    window: int  # a lease is worth something only in its own window
    end: int = 0  # the counter in Redis after this process's last grant
    free: int = 0  # units granted to this process and not handed out yet
    cap: int = 0  # units it may keep from give-backs; 0 near the limit, where they go back to Redis
    refill_below: int = 0  # half the cap: below it a background refill starts (0: never)


class RedisCounters:
    """Counters in Redis, handed out through leases (see the module docstring). Lease requests
    that arrive in the same turn of the event loop go out in one pipelined round trip (each still
    its own atomic script), and requests with the same checks share one lease request in flight
    instead of each taking their own."""

    def __init__(self, client: Redis, prefix: str, timeout_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout_s
        self._check_script = client.register_script(_CHECK_AND_COUNT)
        self._lease_script = client.register_script(_LEASE)
        self._queued: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._leases: dict[str, _Lease] = {}  # by counter, each of the latest window it was leased in
        self._ahead: dict[str, _Lease] = {}  # by counter, leased for the window about to start
        self._prepared: set[tuple[tuple[str, ...], int]] = set()  # (counters, window) leased ahead
        self._inflight: dict[tuple[tuple[str, ...], int], asyncio.Future[tuple[int, int, int]]] = {}
        self._refills: set[asyncio.Task[None]] = set()

    def _key(self, counter: str, window: int) -> str:
        return f"{self._prefix}{counter}:{window}"

    def take(self, checks: Sequence[Check], window: int, ttl_s: float) -> tuple[int, ...] | None:
        """Hand out leased units for every check, or for none. A batch-mode lease that falls below
        half its size is refilled in the background, so requests do not wait for Redis: a round
        trip here is 0.3-1.5 ms, against 0.1 ms for a whole cache hit."""
        leases = self._leases
        held = []
        for c in checks:  # fields by index: a named field of a tuple is a descriptor call
            lease = leases.get(c[2])
            if lease is None or lease.window != window:
                lease = self._held(c[2], window)  # the first of a window: perhaps leased ahead
                if lease is None:
                    return None
            cost = c[3]
            if lease.free < cost:
                return None
            held.append((lease, cost))  # (pairs rather than a zip with the checks: a third faster)
        counts = []
        low = False
        for lease, cost in held:
            free = lease.free = lease.free - cost
            counts.append(lease.end - free)
            if free < lease.refill_below:
                lease.refill_below = 0  # marks it for refill; set again once a refill ends
                low = True
        if low:
            self._refill_soon(checks, window, ttl_s)
        return tuple(counts)

    def _held(self, counter: str, window: int) -> _Lease | None:
        """The lease of `counter` in `window`, the current one: a lease taken ahead for it becomes
        the lease once asked for (only for the current window is it asked)."""
        lease = self._leases.get(counter)
        if lease is not None and lease.window == window:
            return lease
        ahead = self._ahead.get(counter)
        if ahead is None or ahead.window != window:
            return None
        del self._ahead[counter]
        self._leases[counter] = ahead  # one of a finished window is worth nothing
        return ahead

    def _in_background(self, checks: Sequence[Check], window: int, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` (a lease for these checks in this window) as a task that requests with the
        same checks wait for, rather than lease on their own, when they run short meanwhile."""
        shape = (tuple(c.counter for c in checks), window)
        if shape in self._inflight:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int, int]] = loop.create_future()
        self._inflight[shape] = future

        async def run() -> None:
            try:
                await work()
            finally:
                del self._inflight[shape]
                future.set_result((0, 0, 0))  # whoever waited on it looks at the leases again

        task = loop.create_task(run())
        self._refills.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._refills.discard)

    def prepare(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        """Lease for `window` before it starts (once per checks and window); the lease waits in
        `_ahead` until the window comes."""
        shape = (tuple(c.counter for c in checks), window)
        if shape in self._prepared:
            return
        if len(self._prepared) >= 10_000:
            self._prepared = {s for s in self._prepared if s[1] >= window}
        self._prepared.add(shape)
        self._in_background(checks, window, lambda: self._lease_ahead(checks, window, ttl_s))

    async def _lease_ahead(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        # On failure the window starts as without it: its first requests lease on demand.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._grant([(i, c, c.cost) for i, c in enumerate(checks, 1)], window, ttl_s, ahead=True)

    def _refill_soon(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        """Refill the marked leases of `checks` in the background; one marked while a lease for
        these checks is in flight is refilled on its next fall after that."""
        self._in_background(checks, window, lambda: self._refill(checks, window, ttl_s))

    async def _refill(self, checks: Sequence[Check], window: int, ttl_s: float) -> None:
        try:
            marked = []
            for i, c in enumerate(checks, 1):
                lease = self._held(c.counter, window)
                if lease is not None and lease.cap and not lease.refill_below:
                    marked.append((i, c, c.cost))
            if marked:
                await self._grant(marked, window, ttl_s)  # sets refill_below of what it granted
        except (RedisError, OSError, TimeoutError):
            pass  # a refill is a head start, not a check: the next request that runs short leases itself
        finally:
            for c in checks:  # refused, failed, or marked after this one started
                lease = self._held(c.counter, window)
                if lease is not None and not lease.refill_below:
                    lease.refill_below = lease.cap >> 1

    async def acquire(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        taken = self.take(checks, window, ttl_s)
        if taken is not None:
            return 0, taken
        shape = (tuple(c.counter for c in checks), window)
        while True:
            pending = self._inflight.get(shape)
            if pending is not None:  # someone with the same checks is leasing: wait for it
                index, current, need = await asyncio.shield(pending)
                taken = self.take(checks, window, ttl_s)
                if taken is not None:
                    return 0, taken
                if index and self._need(checks[index - 1], window) >= need:
                    return index, (current,)  # refused to them, it would be refused to us
                continue
            future: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()
            self._inflight[shape] = future
            try:
                index, counts = await self._lease(checks, window, ttl_s)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # waiters see it; nobody else needs to
                raise
            finally:
                del self._inflight[shape]
            if index:
                future.set_result((index, counts[0], self._need(checks[index - 1], window)))
                return index, counts
            future.set_result((0, 0, 0))
            taken = self.take(checks, window, ttl_s)
            if taken is not None:
                return 0, taken
            # Others with other checks took the shared units meanwhile: lease again.

    def _need(self, check: Check, window: int) -> int:
        lease = self._held(check.counter, window)
        return check.cost - (lease.free if lease is not None else 0)

    async def _lease(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        """One lease script for the checks the leases cannot cover; an index refers to `checks`."""
        short = [(i, c, self._need(c, window)) for i, c in enumerate(checks, 1)]
        return await self._grant([s for s in short if s[2] > 0], window, ttl_s)

    async def _grant(
        self, short: list[tuple[int, Check, int]], window: int, ttl_s: float, ahead: bool = False
    ) -> Result:
        """Lease at least `need` units of each (index, check, need), all or none; `ahead`: for
        the window about to start."""
        args: list[Any] = [int(ttl_s * 1000), LEASE_SPREAD]
        for _, c, need in short:
            args += [need, max(need, c.cost * LEASE_REQUESTS), c.limit]
        keys = [self._key(c.counter, window) for _, c, _ in short]
        index, *answer = await self._call(self._lease_script, keys, args)
        if index:
            return short[int(index) - 1][0], (int(answer[0]),)
        for (_, c, need), end, granted in zip(short, answer[: len(short)], answer[len(short) :], strict=True):
            # Added to the lease of this window wherever it is: a lease taken ahead may land after
            # the window came and others leased for it (with other checks on the same counter).
            lease = self._leases.get(c.counter)
            if lease is None or lease.window != window:
                lease = self._ahead.get(c.counter)
                if lease is None or lease.window != window:  # the first of its window
                    lease = _Lease(window)
                    (self._ahead if ahead else self._leases)[c.counter] = lease
            lease.end = int(end)
            lease.free += int(granted)
            lease.cap = int(granted) if granted > need else 0  # batch mode, far from the limit
            lease.refill_below = lease.cap >> 1
        return 0, ()

    async def check(self, checks: Sequence[Check], window: int, ttl_s: float) -> Result:
        keys = [self._key(c.counter, window) for c in checks]
        args: list[Any] = [int(ttl_s * 1000)]
        for c in checks:
            args += [c.cost, c.limit]
        index, *counts = await self._call(self._check_script, keys, args)
        return int(index), tuple(int(n) for n in counts)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._send)  # after every call of this turn has queued
        self._queued.append((script, keys, args, future))
        return await future

    def _send(self) -> None:
        batch, self._queued = self._queued, []
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                answers = await self._evalsha(batch)
                if any(isinstance(a, NoScriptError) for a in answers):  # a restarted or flushed Redis
                    for script in {id(b[0]): b[0] for b in batch}.values():
                        await self._client.script_load(script.script)
                    answers = await self._evalsha(batch)
        except BaseException as exc:  # every waiter learns of it and falls back on its own
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RedisError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _evalsha(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        """EVALSHA straight away: redis-py's pipelined scripts ask SCRIPT EXISTS first, a second
        round trip for every batch."""
        async with self._client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    def settle(self, items: Sequence[Adjustment]) -> list[Adjustment]:
        """Over-use is taken from a lease while it lasts; give-backs stay in a batch-mode lease up
        to its size. Whatever is left goes to Redis."""
        rest = []
        for counter, window, delta in items:
            lease = self._held(counter, window)
            if lease is not None:
                if delta > 0:
                    taken = min(delta, lease.free)
                    lease.free -= taken
                    delta -= taken
                elif lease.cap:
                    kept = max(0, min(-delta, lease.cap - lease.free))
                    lease.free += kept
                    delta += kept
            if delta:
                rest.append((counter, window, delta))
        return rest

    def unused(self) -> list[Adjustment]:
        """Leased units not handed out, as adjustments that give them back to Redis."""
        leases = [*self._leases.items(), *self._ahead.items()]
        return [(counter, lease.window, -lease.free) for counter, lease in leases if lease.free]

    async def add(self, items: Sequence[Adjustment]) -> None:
        """One round trip for a whole batch of adjustments."""
        async with asyncio.timeout(self._timeout), self._client.pipeline(transaction=False) as pipe:
            for counter, window, delta in items:
                pipe.incrby(self._key(counter, window), delta)
            await pipe.execute()

    async def read(self, counters: Sequence[tuple[str, int]]) -> list[int]:
        """One MGET. A counter includes the units leased to processes and not handed out yet."""
        if not counters:
            return []
        async with asyncio.timeout(self._timeout):
            values = await self._client.mget([self._key(c, w) for c, w in counters])
        return [int(v) if v is not None else 0 for v in values]

    async def close(self) -> None:
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)  # the client is its maker's to close


class Limiter:
    """Applies checks through shared counters; if they fail, through local ones (and says so).
    Adjustments (reconciled token reservations, spend) are settled in process where the counters
    allow it; the rest is summed and sent every FLUSH_S in one round trip, off the response path."""

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
        self._pending: dict[tuple[str, int], int] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._rate_headers = RateHeaders()

    def headers(self, decision: Decision, checks: Sequence[Check]) -> list[tuple[bytes, bytes]]:
        """The x-ratelimit-* headers of a decision on `checks` (of a refusal: `[exceeded]`)."""
        return self._rate_headers.of(checks, decision[4], decision[2])

    def admit(self, checks: Sequence[Check]) -> list[tuple[bytes, bytes]] | None:
        """`take` for checks nothing reconciles later (requests): just the headers of the
        admitted request, without a Decision. None: `await acquire(checks)`."""
        now = self._clock()
        window = int(now // WINDOW)
        counts = self._counters.take(checks, window, TTL_S)
        if counts is None:
            return None
        reset_in = (window + 1) * WINDOW - now
        if reset_in < AHEAD_S:
            self._counters.prepare(checks, window + 1, TTL_S)
        return self._rate_headers.of(checks, counts, reset_in)

    def take(self, checks: Sequence[Check]) -> Decision | None:
        """The decision when the counters can give it without I/O (a lease far from the limit,
        or in-process counters): no coroutine, no await. None: `await acquire(checks)`."""
        now = self._clock()
        window = int(now // WINDOW)
        counts = self._counters.take(checks, window, TTL_S) if checks else ()
        if counts is None:
            return None
        reset_in = (window + 1) * WINDOW - now
        if reset_in < AHEAD_S and checks:
            self._counters.prepare(checks, window + 1, TTL_S)
        return Decision(True, window, reset_in, None, counts)

    async def acquire(self, checks: Sequence[Check]) -> Decision:
        now = self._clock()
        window = int(now // WINDOW)
        reset_in = (window + 1) * WINDOW - now
        if not checks:
            return Decision(True, window, reset_in)
        index, counts, local = await self._count(self._counters.acquire, checks, window, TTL_S, "check")
        if index:
            return Decision(False, window, reset_in, checks[index - 1], counts, local)
        return Decision(True, window, reset_in, None, counts, local)

    async def within_budget(self, checks: Sequence[Check], period: int, period_s: float) -> tuple[Check | None, bool]:
        """The first budget already spent in this period (or None), and whether the in-process
        fallback answered. Counts nothing: a budget check has cost 0 and a ceiling one below the
        budget, so `spent >= budget` refuses."""
        index, _, local = await self._count(self._counters.check, checks, period, period_s * 2, "budget")
        return (checks[index - 1] if index else None), local

    async def _count(
        self,
        count: Callable[[Sequence[Check], int, float], Any],
        checks: Sequence[Check],
        window: int,
        ttl_s: float,
        op: str,
    ) -> tuple[int, tuple[int, ...], bool]:
        """Count in the shared counters, or in the fallback when they fail."""
        try:
            index, counts = await count(checks, window, ttl_s)
        except (RedisError, OSError, TimeoutError):
            self._on_error(op)
            if self._fallback is None:
                raise
            index, counts = self._fallback.count(checks, window)
            return index, counts, True
        return index, counts, False

    async def usage(self, counters: Sequence[tuple[str, int]]) -> list[int] | None:
        """What the counters hold now (for the dashboard); None when the store cannot be read."""
        try:
            return await self._counters.read(counters)
        except (RedisError, OSError, TimeoutError):
            self._on_error("read")
            return None

    def adjust(self, items: Sequence[Adjustment], local: bool = False) -> None:
        """Move counters of the store that counted them (a reservation made in the fallback is not
        taken back from Redis, which never saw it)."""
        if local:
            if self._fallback is not None:
                self._fallback.settle(items)
            return
        rest = self._counters.settle(items)
        if not rest:
            return
        pending = self._pending
        for counter, window, delta in rest:
            pending[(counter, window)] = pending.get((counter, window), 0) + delta
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(FLUSH_S)
        finally:
            self._flusher = None
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        items = [(counter, window, delta) for (counter, window), delta in batch.items() if delta]
        if not items:
            return
        try:
            await self._counters.add(items)
        except (RedisError, OSError, TimeoutError):
            self._on_error("adjust")

    async def close(self) -> None:
        """Send what is pending and give unused leased units back, so a restart strands nothing."""
        if self._flusher is not None:
            self._flusher.cancel()
        unused = getattr(self._counters, "unused", None)
        if unused is not None:
            for counter, window, delta in unused():
                self._pending[(counter, window)] = self._pending.get((counter, window), 0) + delta
        await self.flush()
        close = getattr(self._counters, "close", None)
        if close is not None:
            await close()


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
