"""Leased rate-limit counters against a real Redis: far from the limit a process counts in
memory and asks Redis once per lease; near it every check is a Redis check again, so two
processes still let exactly the limit through; give-backs of a cache hit stay in the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from interlock.security.limits import LEASE_REQUESTS, Check, Limiter, RedisCounters
from tests.support.clock import Clock
from tests.support.procs import RedisServer

WINDOW_100 = 6000.0  # the start of window 100

pytestmark = pytest.mark.integration


MakeLimiter = Callable[..., Limiter]


@pytest.fixture
async def limiter(redis_server: RedisServer) -> AsyncIterator[MakeLimiter]:
    """Limiters on clients of their own, as two processes would have; the clients are closed here
    (a limiter does not own its client)."""
    clients: list[Redis] = []

    def make(clock: Clock | None = None) -> Limiter:
        client = Redis.from_url(redis_server.url)
        clients.append(client)
        return Limiter(RedisCounters(client, "t:", 1.0), None, lambda op: None, clock or Clock(WINDOW_100))

    yield make
    for client in clients:
        await client.aclose()


def rpm(limit: int) -> Check:
    return Check("key", "requests", "key:a:rpm", 1, limit)


async def counter(redis: Redis, name: str) -> int:
    return int(await redis.get(f"t:{name}:100") or 0)


async def test_far_from_the_limit_one_lease_serves_many_requests(limiter: MakeLimiter, redis: Redis) -> None:
    lim = limiter()
    scripts_before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    requests = 4 * LEASE_REQUESTS
    for _ in range(requests):
        decision = await lim.acquire([rpm(1_000_000)])
        assert decision.allowed
    await asyncio.sleep(0.05)  # a refill may still be on its way
    scripts = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0) - scripts_before
    # One script a lease: the first, then refills taken ahead of need (none per request).
    assert 1 <= scripts <= requests // LEASE_REQUESTS + 2  # against one a request without leases
    leased = await counter(redis, "key:a:rpm")
    assert requests <= leased <= requests + 2 * LEASE_REQUESTS
    await lim.close()
    assert await counter(redis, "key:a:rpm") == requests  # what was not handed out went back


async def test_background_refills_keep_every_lease_from_running_dry(limiter: MakeLimiter, redis: Redis) -> None:
    # Two limits per request, each with its own lease. The loop turns between batches of requests
    # (as in a server, where one turn serves dozens), so a refill started at half a lease lands
    # before the other half is handed out: no request waits for Redis, and each lease is
    # refilled once per lease's worth of requests.
    lim = limiter()
    checks = [rpm(1_000_000_000), Check("tenant", "requests", "tenant:t:rpm", 1, 1_000_000_000)]
    assert (await lim.acquire(checks)).allowed
    scripts_before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    requests = 6 * LEASE_REQUESTS
    dry = 0
    for i in range(requests):
        if lim.take(checks) is None:
            dry += 1
            assert (await lim.acquire(checks)).allowed
        if i % 64 == 63:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    scripts = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0) - scripts_before
    assert dry == 0
    assert requests // LEASE_REQUESTS - 1 <= scripts <= requests // LEASE_REQUESTS + 1
    assert await counter(redis, "key:a:rpm") == await counter(redis, "tenant:t:rpm")  # both leased alike
    await lim.close()


async def test_two_processes_near_the_limit_let_exactly_the_limit_through(limiter: MakeLimiter, redis: Redis) -> None:
    a, b = limiter(), limiter()
    decisions = await asyncio.gather(*(lim.acquire([rpm(50)]) for _ in range(100) for lim in (a, b)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 50
    assert sorted(50 - d.counts[0] for d in allowed) == list(range(50))  # x-ratelimit-remaining
    assert await counter(redis, "key:a:rpm") == 50
    await a.close()
    await b.close()


async def test_a_cache_hit_gives_its_reservation_back_in_process(limiter: MakeLimiter, redis: Redis) -> None:
    lim = limiter()
    tokens = Check("tenant", "tokens", "tenant:t:tpm", 100, 10_000_000)
    first = await lim.acquire([tokens])
    leased = await counter(redis, "tenant:t:tpm")
    assert leased == 100 * LEASE_REQUESTS
    for _ in range(3 * LEASE_REQUESTS):  # hits: reserve, then give it all back
        decision = await lim.acquire([tokens])
        lim.adjust([("tenant:t:tpm", decision.window, -100)])
    await asyncio.sleep(0.05)
    assert await counter(redis, "tenant:t:tpm") == leased  # no new lease, nothing sent
    # Over-use beyond the lease goes to Redis, in the next batch.
    lim.adjust([("tenant:t:tpm", first.window, 100 * LEASE_REQUESTS + 7)])
    await asyncio.sleep(0.1)
    assert await counter(redis, "tenant:t:tpm") == leased + 107
    await lim.close()


async def test_near_the_limit_give_backs_go_to_redis_for_every_process(limiter: MakeLimiter, redis: Redis) -> None:
    a, b = limiter(), limiter()
    big = Check("tenant", "tokens", "tenant:t:tpm", 110, 1000)
    for lim in (a, b):
        decision = await lim.acquire([big])
        assert decision.allowed
        lim.adjust([("tenant:t:tpm", decision.window, -100)])  # used 10
    await asyncio.sleep(0.1)
    # The room freed by one process is room for the other: Redis holds what was really used.
    assert await counter(redis, "tenant:t:tpm") == 20
    await a.close()
    await b.close()


async def test_closing_gives_unused_leased_units_back(limiter: MakeLimiter, redis: Redis) -> None:
    lim = limiter()
    for _ in range(3):
        assert (await lim.acquire([rpm(1_000_000)])).allowed
    assert await counter(redis, "key:a:rpm") >= LEASE_REQUESTS
    await lim.close()
    assert await counter(redis, "key:a:rpm") == 3


async def test_a_new_window_takes_a_new_lease(limiter: MakeLimiter, redis: Redis) -> None:
    clock = Clock(WINDOW_100)
    lim = limiter(clock)
    assert (await lim.acquire([rpm(2)])).allowed
    assert (await lim.acquire([rpm(2)])).allowed
    assert not (await lim.acquire([rpm(2)])).allowed
    clock.now += 60
    assert (await lim.acquire([rpm(2)])).allowed
    assert int(await redis.get("t:key:a:rpm:101") or 0) == 1
    await lim.close()


async def test_the_next_window_is_leased_in_the_last_second_of_this_one(limiter: MakeLimiter, redis: Redis) -> None:
    # At the turn of the minute every lease is worth nothing; without a lease taken ahead, every
    # request in flight would wait for Redis then. One taken in the last second serves the new
    # window's first request without I/O, and goes back to Redis, like any lease, at close.
    clock = Clock(WINDOW_100)
    lim = limiter(clock)
    checks = [rpm(1_000_000), Check("tenant", "requests", "tenant:t:rpm", 1, 1_000_000)]
    assert (await lim.acquire(checks)).allowed
    clock.now += 30
    assert lim.take(checks) is not None
    await asyncio.sleep(0.05)
    assert await counter(redis, "key:a:rpm") > 0 and await redis.get("t:key:a:rpm:101") is None  # not yet
    clock.now += 29.5  # the last half second of window 100
    assert lim.take(checks) is not None
    await asyncio.sleep(0.05)
    assert int(await redis.get("t:key:a:rpm:101") or 0) == LEASE_REQUESTS  # leased ahead
    assert int(await redis.get("t:tenant:t:rpm:101") or 0) == LEASE_REQUESTS
    clock.now += 1  # window 101
    first = lim.take(checks)
    assert first is not None and first.window == 101 and first.counts == (1, 1)
    assert lim.admit(checks) is not None
    await lim.close()
    assert int(await redis.get("t:key:a:rpm:101") or 0) == 2  # the rest went back
