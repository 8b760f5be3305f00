"""The limit stages around a terminal, with a Limiter over in-process counters and a hand-moved
clock: requests per minute refused with OpenAI's headers, a request the cache answers counted as a
request and nothing more, tokens reserved from an estimate and reconciled to the answer's usage
(given back on a failure, settled when a stream ends), and spend budgets at the configured prices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.cache.stage import CacheStage
from interlock.config import GroupCache
from interlock.errors import RateLimited, UpstreamError
from interlock.observe.metrics import Metrics
from interlock.pipeline import Completion, Pipeline, RequestContext, Result, StreamResult
from interlock.security.limit_stage import LimitStage, Plans, Price, Rate, SpendStage
from interlock.security.limits import Check, Limiter, LocalCounters, estimate_tokens
from tests.support.answers import answered_by, chat
from tests.support.clock import Clock
from tests.support.context import context, reaches_the_rest

WINDOW_100 = 6000.0  # the start of window 100
BODY = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 50, "temperature": 0}
ESTIMATE = estimate_tokens(BODY, 256)  # what a request with BODY reserves


class Limits:
    """A limiter over in-process counters, with the clock it reads and a way to look at a counter."""

    def __init__(self) -> None:
        self.clock = Clock(WINDOW_100)
        self.counters = LocalCounters()
        self.limiter = Limiter(self.counters, None, lambda op: None, self.clock)
        self.metrics = Metrics(CollectorRegistry())

    def count(self, counter: str, window: int = 100) -> int:
        """A counter's value in a window (a check that costs nothing reads it)."""
        _, (value,) = self.counters.count([Check("model", "tokens", counter, 0, 1 << 62)], window)
        return value

    def spend(self, rate: Rate, prices: dict[str, Price] | None = None) -> SpendStage:
        return SpendStage(self.limiter, Plans({}, {"m": rate}), 256, self.metrics, prices, clock=self.clock)


async def not_reached(ctx: RequestContext) -> Result:
    raise AssertionError("the stage let a refused request through")


async def test_requests_past_the_limit_are_refused_with_openais_headers_until_the_next_window() -> None:
    limits = Limits()
    stage = LimitStage(limits.limiter, Plans({}, {"m": Rate(rpm=2)}), limits.metrics)
    first = context(BODY)
    assert await reaches_the_rest(stage, first)
    assert first.response_headers == [
        (b"x-ratelimit-limit-requests", b"2"), (b"x-ratelimit-remaining-requests", b"1"),
        (b"x-ratelimit-reset-requests", b"60s"),
    ]  # fmt: skip
    limits.clock.now += 15
    second = context(BODY)
    assert await reaches_the_rest(stage, second)
    assert dict(second.response_headers)[b"x-ratelimit-remaining-requests"] == b"0"
    third = context(BODY)
    with pytest.raises(RateLimited) as err:
        await stage(third, not_reached)
    assert (err.value.status, err.value.code) == (429, "rate_limit_exceeded")
    assert err.value.message == "Rate limit reached: requests per minute for this model (limit 2)"
    assert err.value.headers == {
        "x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s",
        "retry-after": "45",
    }  # fmt: skip
    assert third.response_headers == []
    labels = {"scope": "model", "unit": "requests"}
    assert limits.metrics.registry.get_sample_value("interlock_rate_limited_total", labels) == 1
    limits.clock.now += 45  # window 101
    assert await reaches_the_rest(stage, context(BODY))
    assert limits.count("model:m:rpm") == 2 and limits.count("model:m:rpm", 101) == 1


async def test_a_cache_hit_counts_as_a_request_and_spends_no_tokens() -> None:
    limits = Limits()
    plans = Plans({}, {"m": Rate(rpm=2, tpm=10_000)})
    cache = CacheStage({"m": GroupCache()}, MemoryCache(1 << 20, 1 << 16), None, Metrics(CollectorRegistry()))
    spend = SpendStage(limits.limiter, plans, 256, limits.metrics, clock=limits.clock)
    stages = [LimitStage(limits.limiter, plans, limits.metrics), cache, spend]  # as the gateway orders them
    pipeline = Pipeline(stages, answered_by(Completion(chat(None)), 7, 3))
    miss, hit = context(dict(BODY)), context(dict(BODY))
    await pipeline.run(miss)
    await pipeline.run(hit)
    assert (miss.cache_status, hit.cache_status) == ("miss", "hit")
    assert limits.count("model:m:rpm") == 2  # the hit was a request
    assert limits.count("model:m:tpm") == 10  # the miss's usage; the hit reserved nothing
    with pytest.raises(RateLimited):  # refused before the cache is asked, though it holds the answer
        await Pipeline(stages, not_reached).run(context(dict(BODY)))


async def test_tokens_are_reserved_from_the_estimate_and_reconciled_to_the_usage() -> None:
    limits = Limits()
    stage = limits.spend(Rate(tpm=1000))
    reserved: list[int] = []
    answer = answered_by(Completion(chat(None)), 7, 3)

    async def rest(ctx: RequestContext) -> Result:
        reserved.append(limits.count("model:m:tpm"))
        return await answer(ctx)

    ctx = context(BODY)
    await stage(ctx, rest)
    assert reserved == [ESTIMATE] and limits.count("model:m:tpm") == 7 + 3
    assert ctx.response_headers == [
        (b"x-ratelimit-limit-tokens", b"1000"), (b"x-ratelimit-remaining-tokens", b"%d" % (1000 - ESTIMATE)),
        (b"x-ratelimit-reset-tokens", b"60s"),
    ]  # fmt: skip
    second = context(BODY)
    await stage(second, answer)
    assert dict(second.response_headers)[b"x-ratelimit-remaining-tokens"] == b"%d" % (1000 - 10 - ESTIMATE)
    assert limits.count("model:m:tpm") == 20


@pytest.mark.parametrize("failure", [UpstreamError("down"), asyncio.CancelledError()], ids=["error", "cancelled"])
async def test_a_failure_gives_the_estimate_back(failure: BaseException) -> None:
    limits = Limits()
    stage = limits.spend(Rate(tpm=1000))

    async def failing(ctx: RequestContext) -> Result:
        assert limits.count("model:m:tpm") == ESTIMATE
        raise failure

    with pytest.raises(type(failure)):
        await stage(context(BODY), failing)
    assert limits.count("model:m:tpm") == 0


async def test_a_stream_is_reconciled_when_it_ends_not_when_it_is_returned() -> None:
    limits = Limits()
    stage = limits.spend(Rate(tpm=1000))
    ctx = context({**BODY, "stream": True}, stream=True)

    async def events() -> AsyncIterator[bytes]:
        yield b"first"
        ctx.routing.prompt_tokens, ctx.routing.completion_tokens = 7, 3  # usage comes with the last chunk
        yield b"last"

    result = await stage(ctx, answered_by(StreamResult(events())))
    assert isinstance(result, StreamResult)
    stream: Any = result.events
    assert limits.count("model:m:tpm") == ESTIMATE
    assert await stream.__anext__() == b"first"
    assert limits.count("model:m:tpm") == ESTIMATE
    assert [e async for e in stream] == [b"last"]
    assert limits.count("model:m:tpm") == 10

    unread = context({**BODY, "stream": True}, stream=True)
    result = await stage(unread, answered_by(StreamResult(events())))
    assert limits.count("model:m:tpm") == 10 + ESTIMATE
    await result.events.aclose()  # type: ignore[union-attr]  # the caller went away before reading
    assert limits.count("model:m:tpm") == 10


async def test_tokens_past_the_limit_are_refused_with_what_is_left() -> None:
    limits = Limits()
    stage = limits.spend(Rate(tpm=ESTIMATE + 5))
    await stage(context(BODY), answered_by(Completion(chat(None)), 7, 3))
    with pytest.raises(RateLimited) as err:
        await stage(context(BODY), not_reached)  # 10 used: an estimate does not fit in what is left
    assert err.value.headers == {
        "x-ratelimit-limit-tokens": str(ESTIMATE + 5), "x-ratelimit-remaining-tokens": str(ESTIMATE - 5),
        "x-ratelimit-reset-tokens": "60s", "retry-after": "60",
    }  # fmt: skip
    assert limits.count("model:m:tpm") == 10


async def test_a_spent_budget_refuses_the_next_request_which_still_counts_as_a_request() -> None:
    limits = Limits()
    # USD per million tokens: 7 in and 3 out cost 0.007 + 0.006 = $0.013 at these prices.
    prices = {"d1": Price(input=1000.0, output=2000.0)}
    plans = Plans({}, {"m": Rate(rpm=10, budget=0.02)})
    spend = SpendStage(limits.limiter, plans, 256, limits.metrics, prices, clock=limits.clock)
    stages = [LimitStage(limits.limiter, plans, limits.metrics), spend]
    for _ in range(2):  # $0 then $0.013 spent: under the budget
        await Pipeline(stages, answered_by(Completion(chat(None)), 7, 3)).run(context(BODY))
    assert limits.metrics.registry.get_sample_value(
        "interlock_spend_usd_total", {"model": "m", "deployment": "d1"}
    ) == pytest.approx(0.026)  # fmt: skip
    with pytest.raises(RateLimited) as err:
        await Pipeline(stages, not_reached).run(context(BODY))
    assert (err.value.status, err.value.code) == (429, "budget_exceeded")
    assert err.value.message == "Spend budget of this model is used up for this month"
    assert err.value.headers["retry-after"] == str(31 * 86_400 - 6000)  # until February 1970 begins, UTC
    labels = {"scope": "model", "unit": "usd"}
    assert limits.metrics.registry.get_sample_value("interlock_rate_limited_total", labels) == 1
    assert limits.count("model:m:rpm") == 3  # the refused request was counted as a request


async def test_unpriced_deployments_cost_nothing() -> None:
    limits = Limits()
    stage = limits.spend(Rate(budget=0.0001), {"another": Price(input=1e6, output=1e6)})
    for _ in range(3):
        await stage(context(BODY), answered_by(Completion(chat(None)), 7, 3))
    assert (
        limits.metrics.registry.get_sample_value("interlock_spend_usd_total", {"model": "m", "deployment": "d1"})
        is None
    )
