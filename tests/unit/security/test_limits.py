from __future__ import annotations

import pytest
from redis.asyncio import Redis

from interlock.security.limits import (
    MAX_REMEMBERED_LIMITS,
    Check,
    Limiter,
    LocalCounters,
    RateHeaders,
    RedisCounters,
    estimate_tokens,
)
from tests.support.clock import Clock

WINDOW_100 = 6000.0  # the start of window 100


def rpm(limit: int, name: str = "key:a:rpm") -> Check:
    return Check("key", "requests", name, 1, limit)


async def test_local_counting_is_all_or_nothing() -> None:
    counters = LocalCounters()
    limiter = Limiter(counters, None, lambda op: None, Clock(WINDOW_100))
    tight, loose = rpm(2, "key:a:rpm"), rpm(100, "tenant:t:rpm")
    assert (await limiter.acquire([loose, tight])).allowed
    assert (await limiter.acquire([loose, tight])).allowed
    refused = await limiter.acquire([loose, tight])
    assert not refused.allowed and refused.exceeded == tight
    # The refused request did not count against the looser limit either.
    assert (await limiter.acquire([rpm(3, "tenant:t:rpm")])).allowed
    assert not (await limiter.acquire([rpm(3, "tenant:t:rpm")])).allowed


async def test_a_new_window_starts_afresh_and_headers_say_when() -> None:
    clock = Clock(WINDOW_100)
    limiter = Limiter(LocalCounters(), None, lambda op: None, clock)
    checks = [rpm(1), Check("key", "tokens", "key:a:tpm", 40, 100)]
    ok = await limiter.acquire(checks)
    assert dict(limiter.headers(ok, checks[:1])) == {
        b"x-ratelimit-limit-requests": b"1", b"x-ratelimit-remaining-requests": b"0",
        b"x-ratelimit-reset-requests": b"60s",
    }  # fmt: skip
    # Of several limits of a unit, the headers name the tightest.
    loose = Check("tenant", "tokens", "tenant:t:tpm", 40, 1000)
    tokens = [loose, checks[1]]
    both = await limiter.acquire(tokens)
    assert dict(limiter.headers(both, tokens)) == {
        b"x-ratelimit-limit-tokens": b"100", b"x-ratelimit-remaining-tokens": b"20",
        b"x-ratelimit-reset-tokens": b"60s",
    }  # fmt: skip
    clock.now += 45
    refused = await limiter.acquire(checks)
    assert not refused.allowed and refused.reset_in == pytest.approx(15)
    clock.now += 15
    assert (await limiter.acquire(checks)).allowed


async def test_reconciliation_gives_tokens_back() -> None:
    clock = Clock(WINDOW_100)
    counters = LocalCounters()
    limiter = Limiter(counters, None, lambda op: None, clock)
    big = Check("key", "tokens", "key:a:tpm", 80, 100)
    decision = await limiter.acquire([big])
    assert not (await limiter.acquire([big])).allowed
    limiter.adjust([("key:a:tpm", decision.window, -70)])  # it used 10, not 80
    assert (await limiter.acquire([big])).allowed


async def test_a_dead_redis_falls_back_to_local_counting_and_is_reported() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.05, socket_connect_timeout=0.05)
    errors: list[str] = []
    limiter = Limiter(RedisCounters(dead, "t:", 0.05), LocalCounters(), errors.append, Clock(WINDOW_100))
    assert (await limiter.acquire([rpm(1)])).allowed
    assert not (await limiter.acquire([rpm(1)])).allowed
    assert errors == ["check", "check"]
    await dead.aclose()


def test_token_estimate_is_prompt_bytes_over_four_plus_the_completion_budget() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50}
    assert 100 < estimate_tokens(body, 256) < 120 + 50
    assert estimate_tokens({"messages": []}, 256) == 1 + 256
    assert estimate_tokens({"input": "abcd" * 10}, 256) == 11  # embeddings generate nothing


def test_the_headers_made_once_are_the_headers_made_each_time() -> None:
    made = RateHeaders()
    tokens = Check("tenant", "tokens", "tenant:t:tpm", 40, 1000)
    cases = [
        ([rpm(10)], (3,), 59.2, ("requests", 10, 7, 60)),
        ([rpm(10), rpm(5, "tenant:t:rpm")], (3, 4), 59.9, ("requests", 5, 1, 60)),  # the tightest names it
        ([rpm(10), rpm(5, "tenant:t:rpm")], (3, 4), 0.01, ("requests", 5, 1, 1)),
        ([rpm(10), rpm(5, "tenant:t:rpm")], (11, 4), 1.0, ("requests", 10, 0, 1)),  # over (a refill raced): 0
        ([rpm(7)], (3,), 60.0, ("requests", 7, 4, 60)),
        ([tokens, Check("key", "tokens", "key:a:tpm", 40, 100)], (500, 90), 12.5, ("tokens", 100, 10, 13)),
    ]
    for _ in range(2):  # made, then remembered
        for checks, counts, reset_in, (unit, limit, left, reset) in cases:
            assert made.of(checks, counts, reset_in) == [
                (f"x-ratelimit-limit-{unit}".encode(), b"%d" % limit),
                (f"x-ratelimit-remaining-{unit}".encode(), b"%d" % left),
                (f"x-ratelimit-reset-{unit}".encode(), b"%ds" % reset),
            ]
    for limit in range(1, MAX_REMEMBERED_LIMITS + 10):  # the remembered limits stay bounded
        assert made.of([rpm(limit)], (0,), 30.0)[0] == (b"x-ratelimit-limit-requests", b"%d" % limit)
