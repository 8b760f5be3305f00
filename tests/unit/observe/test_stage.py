"""Telemetry in process: error classes, confidence arithmetic, the telemetry stage (finish
reasons, TTFT and inter-token latency with a fake clock, logprobs recorded and stripped), versions
on metrics, the router asking for sampled logprobs, and spans per stage phase through the real
OpenTelemetry SDK with its in-memory exporter."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlock.app import build
from interlock.config import RouterSettings, TelemetrySettings, parse_settings
from interlock.errors import (
    BadRequest,
    ConfigError,
    Forbidden,
    ModelNotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    StreamBroken,
    StreamTimedOut,
    Unauthorized,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    error_class,
)
from interlock.observe.confidence import LogprobTally, strip_logprobs, with_logprobs
from interlock.observe.metrics import Metrics
from interlock.observe.stage import TelemetryStage
from interlock.observe.tracing import TracedStage, make_tracing, traced, traces_url
from interlock.pipeline import Completion, Endpoint, Pipeline, RequestContext, Result, StreamResult
from interlock.pipeline.runner import Next
from interlock.routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from tests.support.context import context as make_context
from tests.support.context import reaches_the_rest
from tests.support.providers import Scripted

LABELS = {"model": "m", "deployment": "d1", "version": "v7"}


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (BadRequest("bad"), "client"),
        (ModelNotFound("no such model"), "client"),
        (PayloadTooLarge("big"), "client"),
        (Unauthorized("who"), "client"),
        (UpstreamRejected(400, b"{}"), "client"),
        (UpstreamRejected(401, b"{}"), "upstream"),
        (UpstreamError("500"), "upstream"),
        (StreamBroken("cut"), "upstream"),
        (Unavailable("circuits open"), "upstream"),
        (Overloaded("queue full"), "upstream"),
        (UpstreamRateLimited("deployment x is rate limited"), "upstream"),
        (UpstreamTimeout("slow"), "timeout"),
        (StreamTimedOut("quiet"), "timeout"),
        (Forbidden("not this model"), "policy"),
        (Forbidden("blocked", code="dlp_blocked"), "policy"),
        (Unavailable("detection failed", code="dlp_unavailable"), "policy"),
        (RateLimited("rate limit reached for this key"), "policy"),
        (RateLimited("budget", code="budget_exceeded"), "policy"),
        (RuntimeError("a bug"), "internal"),
    ],
)
def test_every_error_has_one_class(exc: BaseException, kind: str) -> None:
    assert error_class(exc) == kind


def test_confidence_is_mean_min_and_perplexity_of_token_logprobs() -> None:
    choices = [
        {"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]}},
        {"logprobs": None},
        {"logprobs": {"content": [{"token": "c", "logprob": -1.0}], "refusal": None}},
    ]
    tally = LogprobTally()
    tally.add_choices(choices)
    conf = tally.result(sampled=True)
    assert conf is not None
    assert conf.tokens == 3 and conf.mean_logprob == pytest.approx(-1.0) and conf.min_logprob == -1.5
    assert conf.perplexity == pytest.approx(math.e)
    empty = LogprobTally()
    empty.add_choices([{"logprobs": None}])
    assert empty.result(sampled=False) is None
    huge = LogprobTally()
    huge.add_choices([{"logprobs": {"content": [{"logprob": -9999.0}]}}])
    assert huge.result(False) is not None  # no overflow


def test_stripping_sets_logprobs_back_to_null_and_asking_adds_them() -> None:
    choices = [{"index": 0, "logprobs": {"content": []}, "finish_reason": "stop"}, {"index": 1, "logprobs": None}]
    assert strip_logprobs(choices)
    assert choices == [{"index": 0, "logprobs": None, "finish_reason": "stop"}, {"index": 1, "logprobs": None}]
    assert not strip_logprobs(choices)
    body = {"model": "m", "messages": []}
    assert with_logprobs(body) == {"model": "m", "messages": [], "logprobs": True, "top_logprobs": 0}
    assert body == {"model": "m", "messages": []}  # the caller's request is not touched


def test_request_latency_is_labelled_with_deployment_and_version() -> None:
    metrics = Metrics()
    metrics.request_done("m", "chat/completions", 200, "miss", 0.5, 0.4, "d1", "v7")
    metrics.request_done("m", "chat/completions", 200, "miss", 1.5, 1.0, "d1", "v7")
    value = metrics.registry.get_sample_value
    labels = {"model": "m", "endpoint": "chat/completions", "deployment": "d1", "version": "v7"}
    assert value("interlock_request_seconds_count", labels) == 2
    assert value("interlock_request_seconds_sum", labels) == 2.0
    assert value("interlock_requests_total", {"model": "m", "endpoint": "chat/completions", "status": "200",
                                              "cache": "miss"}) == 2  # fmt: skip


# -- the telemetry stage, driven by the real pipeline runner ------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def context(body: dict[str, Any], stream: bool = False) -> RequestContext:
    return make_context(body, stream=stream, started=10.0)


def answered_by(result: Result) -> Any:
    async def terminal(ctx: RequestContext) -> Result:
        ctx.routing.deployment, ctx.routing.served_model, ctx.routing.version = "d1", "m", "v7"
        return result

    return terminal


def chat(logprobs: Any, finish: str = "stop") -> bytes:
    return orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi there"},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            ],
        }
    )


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


async def events(items: list[tuple[float, bytes]], clock: FakeClock) -> AsyncIterator[bytes]:
    for at, event in items:
        clock.now = at
        yield event


def stream_chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
    return orjson.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})  # fmt: skip


async def test_a_stream_observes_ttft_from_arrival_and_the_mean_and_longest_gap_between_tokens() -> None:
    metrics = Metrics()
    clock = FakeClock()
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
    clock = FakeClock()
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
    clock = FakeClock()

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


# -- the router -----------------------------------------------------------------------------------
class Recording(Scripted):
    def __init__(self, id_: str, script: list[Any] | None = None) -> None:
        super().__init__(id_, script)
        self.bodies: list[dict[str, Any]] = []

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        return await super().complete(endpoint, body)


def router_for(provider: Scripted, metrics: Metrics) -> Router:
    dep = DeploymentRuntime(provider=provider, weight=1, circuit=CircuitBreaker(5, 30, 15), version="canary-2")
    return Router([GroupRuntime("g", [dep])], RouterSettings(retries=0), metrics, rng=random.Random(0))


async def test_the_router_puts_the_version_on_the_context_and_asks_for_sampled_logprobs() -> None:
    metrics = Metrics()
    provider = Recording("d")
    router = router_for(provider, metrics)
    plain = make_context({"messages": []}, model="g", request_id="a")
    await router(plain)
    assert (plain.routing.deployment, plain.routing.version) == ("d", "canary-2")
    assert metrics.registry.get_sample_value(
        "interlock_tokens_total", {"model": "g", "deployment": "d", "version": "canary-2", "direction": "out"}
    ) == 2  # fmt: skip
    sampled = make_context({"messages": []}, model="g", request_id="b")
    sampled.telemetry.logprobs_sampled = True
    await router(sampled)
    assert provider.bodies == [{"messages": []}, {"messages": [], "logprobs": True, "top_logprobs": 0}]
    assert sampled.body == {"messages": []}  # what the cache keys on is the caller's request


async def test_a_backend_that_refuses_logprobs_is_asked_again_without_them() -> None:
    provider = Recording("d", [UpstreamRejected(400, b'{"error":{"message":"logprobs unsupported"}}')])
    ctx = make_context({"messages": []}, model="g", request_id="a")
    ctx.telemetry.logprobs_sampled = True
    result = await router_for(provider, Metrics())(ctx)
    assert isinstance(result, Completion) and result.status == 200
    assert [("logprobs" in b) for b in provider.bodies] == [True, False]
    assert not ctx.logprobs_sampled  # nothing to strip


# -- tracing ------------------------------------------------------------------------------------------
class Named:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        self.log.append("before")
        return await call_next(ctx)


class LimitStage(Named): ...


class CacheStage(Named): ...


async def test_a_traced_request_has_a_span_per_stage_phase_and_an_unsampled_one_none() -> None:
    exporter = InMemorySpanExporter()
    tracing = make_tracing(TelemetrySettings(), exporter)
    assert tracing is not None
    log: list[str] = []
    stages = [LimitStage(log), CacheStage(log)]
    pipeline = Pipeline(stages, answered_by(Completion(chat(None))), traced(stages))
    ctx = context({"messages": []})
    ctx.trace = tracing.start_request("POST /v1/chat/completions", {})
    assert ctx.trace is not None
    await pipeline.run(ctx)
    ctx.trace.finish(ctx, "m", 200, None)
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["limit.before", "cache.before", "cache.after", "limit.after", "POST /v1/chat/completions"]
    root = exporter.get_finished_spans()[-1]
    assert root.attributes is not None and root.attributes["interlock.version"] == "v7"
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id
               for s in exporter.get_finished_spans()[:-1])  # fmt: skip

    exporter.clear()
    await pipeline.run(context({"messages": []}))  # no trace on the context: the plain stages run
    assert exporter.get_finished_spans() == () and log == ["before"] * 4
    tracing.shutdown()


def test_requests_are_sampled_before_any_span_is_made() -> None:
    exporter = InMemorySpanExporter()
    never = make_tracing(TelemetrySettings(trace_sample_ratio=0.0), exporter)
    assert never is not None and never.start_request("POST /v1/chat/completions", {}) is None
    half = make_tracing(TelemetrySettings(trace_sample_ratio=0.5), exporter)
    assert half is not None
    sampled = [half.start_request("POST /v1/chat/completions", {}) for _ in range(400)]
    assert 140 < sum(t is not None for t in sampled) < 260
    for t in sampled:
        if t is not None:
            t.finish(None, "m", 200, None)
    assert len(exporter.get_finished_spans()) == sum(t is not None for t in sampled)  # nothing for the others
    never.shutdown()
    half.shutdown()


async def test_a_callers_sampled_traceparent_is_the_parent() -> None:
    exporter = InMemorySpanExporter()
    tracing = make_tracing(TelemetrySettings(trace_sample_ratio=0.0), exporter)
    assert tracing is not None
    parent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace = tracing.start_request("POST /v1/chat/completions", {b"traceparent": parent})
    assert trace is not None  # sampled by its parent, whatever our ratio
    trace.finish(None, "_unknown", 400, BadRequest("bad"))
    (span,) = exporter.get_finished_spans()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.attributes is not None and span.attributes["interlock.error_class"] == "client"
    tracing.shutdown()


def test_without_tracing_configured_no_stage_is_wrapped() -> None:
    settings = parse_settings({"models": [{"name": "m", "deployments": [{"id": "d", "backend": "openai",
                                                                           "api_base": "http://127.0.0.1:9/v1"}]}]})  # fmt: skip
    assert make_tracing(settings.telemetry) is None
    gateway = build(settings)
    pipeline = gateway._inference._pipeline  # the hot path as built
    stages = pipeline.stages
    assert stages and pipeline.traced_stages is stages and not any(isinstance(s, TracedStage) for s in stages)
    assert type(stages[-1]).__name__ == "TelemetryStage"  # innermost: inside the cache
    asyncio.run(gateway._on_shutdown())


def test_azure_monitor_uses_its_configure_function_or_fails_with_the_key() -> None:
    settings = TelemetrySettings(
        azure_monitor_connection_string="InstrumentationKey=00000000-0000-0000-0000-000000000000"
    )
    calls: list[dict[str, Any]] = []
    tracing = make_tracing(settings, azure_configure=lambda **kw: calls.append(kw))
    assert tracing is not None and calls[0]["connection_string"].startswith("InstrumentationKey=")
    assert calls[0]["sampling_ratio"] == 1.0
    # azure-monitor-opentelemetry is an optional extra, not installed with `.[dev]`.
    with pytest.raises(
        ConfigError, match=r"\$\.telemetry\.azure_monitor_connection_string.*interlock\[azure-monitor\]"
    ):
        make_tracing(settings)


def test_otlp_endpoint_takes_a_base_or_a_full_url() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://otel.example/custom/traces") == "https://otel.example/custom/traces"


def test_versions_and_sample_ratios_are_validated() -> None:
    def settings(deployment: dict[str, Any], telemetry: dict[str, Any] | None = None) -> Any:
        raw: dict[str, Any] = {
            "models": [{"name": "m", "deployments": [{"id": "d", "backend": "local", **deployment}]}]
        }
        if telemetry is not None:
            raw["telemetry"] = telemetry
        return parse_settings(raw)

    assert settings({}).models[0].deployments[0].version == "v1"
    assert settings({"version": "2024-10.canary_b"}).models[0].deployments[0].version == "2024-10.canary_b"
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.version"):
        settings({"version": 'v1"} evil'})
    with pytest.raises(ConfigError, match=r"\$\.telemetry\.logprobs_sample"):
        settings({}, {"logprobs_sample": 1.5})
    with pytest.raises(ConfigError, match=r"\$\.telemetry\.trace_sample_ratio"):
        settings({}, {"trace_sample_ratio": -0.1})
