"""The telemetry stage, driven by the real pipeline runner: finish reasons, TTFT and inter-token
latency with a hand-moved clock, logprobs recorded and stripped."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from interlock.errors import StreamBroken
from interlock.observe.metrics import Metrics
from interlock.observe.stage import TelemetryStage
from interlock.pipeline import Completion, Pipeline, RequestContext, StreamResult
from tests.support.answers import answered_by, chat
from tests.support.clock import Clock
from tests.support.context import context as make_context
from tests.support.context import reaches_the_rest

LABELS = {"model": "m", "deployment": "d1", "version": "v7"}


def context(body: dict[str, Any], stream: bool = False) -> RequestContext:
    return make_context(body, stream=stream, started=10.0)


LOGPROBS = {"content": [{"token": "hi", "logprob": -0.2, "bytes": [104, 105], "top_logprobs": []},
                        {"token": " there", "logprob": -1.0, "bytes": None, "top_logprobs": []}], "refusal": None}  # fmt: skip


async def test_finish_reasons_are_counted_by_deployment_and_version() -> None:
    metrics = Metrics()
    stage = TelemetryStage(metrics)
    for finish in ("stop", "length", "length", "something_new"):
        ctx = context({"messages": []})
        await Pipeline([stage], answered_by(Completion(chat(None, finish)))).run(ctx)
    value = metrics.registry.get_sample_value
    assert value("interlock_finish_reasons_total", {**LABELS, "finish_reason": "stop"}) == 1
    assert value("interlock_finish_reasons_total", {**LABELS, "finish_reason": "length"}) == 2
    assert value("interlock_finish_reasons_total", {**LABELS, "finish_reason": "other"}) == 1  # never a new label
    assert ctx.telemetry.finish_reason == "something_new" and ctx.telemetry.confidence is None


async def events(items: list[tuple[float, bytes]], clock: Clock) -> AsyncIterator[bytes]:
    for at, event in items:
        clock.now = at
        yield event


def stream_chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
    return orjson.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})  # fmt: skip


async def test_a_stream_observes_ttft_from_arrival_and_the_mean_and_longest_gap_between_tokens() -> None:
    metrics = Metrics()
    clock = Clock(10.0)
    stage = TelemetryStage(metrics, clock=clock)
    items = [
        (10.5, stream_chunk({"role": "assistant", "content": ""})),  # no token yet
        (11.0, stream_chunk({"content": "a"})),  # first token: 1 s after arrival (10.0)
        (11.1, stream_chunk({"content": "b"})),
        (11.5, stream_chunk({"content": "c"})),  # the longest gap: 0.4 s
        (11.6, stream_chunk({}, "stop")),
    ]
    ctx = context({"stream": True}, stream=True)
    result = await Pipeline([stage], answered_by(StreamResult(events(items, clock)))).run(ctx)
    assert isinstance(result, StreamResult)
    assert len([e async for e in result.events]) == 5
    value = metrics.registry.get_sample_value
    assert value("interlock_ttft_seconds_sum", LABELS) == pytest.approx(1.0)
    assert value("interlock_itl_seconds_count", LABELS) == 1  # one observation per stream
    assert value("interlock_itl_seconds_sum", LABELS) == pytest.approx(0.25)  # (11.5 - 11.0) / 2 gaps
    assert value("interlock_itl_max_seconds_sum", LABELS) == pytest.approx(0.4)
    assert value("interlock_finish_reasons_total", {**LABELS, "finish_reason": "stop"}) == 1


async def test_sampled_logprobs_are_recorded_and_stripped_from_a_json_answer() -> None:
    metrics = Metrics()
    stage = TelemetryStage(metrics, logprobs_sample=0.5, rng=random.Random(1))
    seen: list[bool] = []
    for _ in range(200):  # sampled per request with the injected random source
        ctx = context({"messages": []})
        await reaches_the_rest(stage, ctx)
        seen.append(ctx.logprobs_sampled)
    assert 60 < sum(seen) < 140
    always = TelemetryStage(metrics, logprobs_sample=1.0)
    odd = context({"messages": [], "top_logprobs": 2})  # invalid without logprobs: the caller's 400 stands
    await reaches_the_rest(always, odd)
    assert not odd.logprobs_sampled

    ctx = context({"messages": []})
    ctx.telemetry.logprobs_sampled = True
    result = await Pipeline([TelemetryStage(metrics)], answered_by(Completion(chat(LOGPROBS)))).run(ctx)
    assert isinstance(result, Completion)
    assert orjson.loads(result.body) == orjson.loads(chat(None))  # exactly what an unasked answer is
    assert ctx.telemetry.confidence is not None and ctx.telemetry.confidence.sampled
    assert ctx.telemetry.confidence.mean_logprob == pytest.approx(-0.6) and ctx.telemetry.confidence.min_logprob == -1.0
    value = metrics.registry.get_sample_value
    # Histograms with negative buckets have no _sum (OpenMetrics); the buckets place the values.
    assert value("interlock_logprob_mean_bucket", {**LABELS, "le": "-0.75"}) == 0
    assert value("interlock_logprob_mean_bucket", {**LABELS, "le": "-0.5"}) == 1
    assert value("interlock_logprob_min_bucket", {**LABELS, "le": "-1.5"}) == 0
    assert value("interlock_logprob_min_bucket", {**LABELS, "le": "-1.0"}) == 1
    assert value("interlock_perplexity_sum", LABELS) == pytest.approx(math.exp(0.6))


async def test_logprobs_the_caller_asked_for_are_recorded_and_left_in_place() -> None:
    metrics = Metrics()
    ctx = context({"messages": [], "logprobs": True})
    body = chat(LOGPROBS)
    result = await Pipeline([TelemetryStage(metrics, logprobs_sample=1.0)], answered_by(Completion(body))).run(ctx)
    assert isinstance(result, Completion) and result.body is body  # the same bytes
    assert (
        ctx.telemetry.confidence is not None
        and not ctx.telemetry.confidence.sampled
        and ctx.telemetry.confidence.tokens == 2
    )


async def test_a_sampled_stream_keeps_each_chunk_but_its_logprobs() -> None:
    metrics = Metrics()
    clock = Clock(10.0)
    entry = {"content": [{"token": "a", "logprob": -0.1, "bytes": None, "top_logprobs": []}], "refusal": None}
    asked = [
        stream_chunk({"role": "assistant", "content": ""}),
        stream_chunk({"content": "a"}, logprobs=entry),
        stream_chunk({"content": "b"}, logprobs={**entry, "content": [{**entry["content"][0], "logprob": -0.3}]}),
        stream_chunk({}, "stop"),
        orjson.dumps({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    ]
    unasked = [
        stream_chunk({"role": "assistant", "content": ""}),
        stream_chunk({"content": "a"}),
        stream_chunk({"content": "b"}),
        stream_chunk({}, "stop"),
        asked[-1],
    ]
    ctx = context({"stream": True}, stream=True)
    ctx.telemetry.logprobs_sampled = True
    stage = TelemetryStage(metrics, clock=clock)
    result = await Pipeline([stage], answered_by(StreamResult(events([(11.0, e) for e in asked], clock)))).run(ctx)
    assert isinstance(result, StreamResult)
    out = [e async for e in result.events]
    assert [orjson.loads(e) for e in out] == [orjson.loads(e) for e in unasked]
    assert out[0] is asked[0] and out[-1] is asked[-1]  # chunks without logprobs keep their bytes
    assert ctx.telemetry.confidence is not None and ctx.telemetry.confidence.mean_logprob == pytest.approx(-0.2)
    assert metrics.registry.get_sample_value("interlock_logprob_mean_count", LABELS) == 1


async def test_a_broken_stream_is_no_answer() -> None:
    metrics = Metrics()
    clock = Clock(10.0)

    async def broken() -> AsyncIterator[bytes]:
        yield stream_chunk({"content": "a"})
        raise StreamBroken("cut")

    ctx = context({"stream": True}, stream=True)
    result = await Pipeline([TelemetryStage(metrics, clock=clock)], answered_by(StreamResult(broken()))).run(ctx)
    assert isinstance(result, StreamResult)
    with pytest.raises(StreamBroken):
        async for _ in result.events:
            pass
    assert metrics.registry.get_sample_value("interlock_ttft_seconds_count", LABELS) == 1
    assert metrics.registry.get_sample_value("interlock_itl_seconds_count", LABELS) is None
