"""Spans per stage phase through the real OpenTelemetry SDK with its in-memory exporter, sampling,
a caller's traceparent, and the exporters' configuration."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlock.config import TelemetrySettings
from interlock.errors import BadRequest, ConfigError
from interlock.observe.tracing import make_tracing, traced, traces_url
from interlock.pipeline import Completion, Pipeline, RequestContext, Result
from interlock.pipeline.runner import Next
from tests.support.answers import answered_by, chat
from tests.support.context import context as make_context


def context(body: dict[str, Any], stream: bool = False) -> RequestContext:
    return make_context(body, stream=stream, started=10.0)


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
    pipeline = Pipeline(stages, answered_by(Completion(chat(None))), traced(stages, spans=True))
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


class Answering:
    """Answers itself, as a cache hit does."""

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        return Completion(chat(None))


class Refusing:
    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        raise BadRequest("no")


async def traced_run(stages: list[Any], terminal: Any) -> tuple[dict[str, Any], list[str]]:
    """One traced request through `stages` with timed phases (the default): the request span's
    attributes and the names of every span made."""
    exporter = InMemorySpanExporter()
    tracing = make_tracing(TelemetrySettings(), exporter)
    assert tracing is not None
    ctx = context({"messages": []})
    ctx.trace = tracing.start_request("POST /v1/chat/completions", {})
    assert ctx.trace is not None
    error: BaseException | None = None
    try:
        await Pipeline(stages, terminal, traced(stages)).run(ctx)
    except BadRequest as exc:
        error = exc
    ctx.trace.finish(ctx, "m", 200 if error is None else 400, error)
    spans = exporter.get_finished_spans()
    tracing.shutdown()
    return dict(spans[-1].attributes or {}), [s.name for s in spans]


async def test_by_default_the_stage_phases_are_timed_onto_the_request_span() -> None:
    log: list[str] = []
    attributes, names = await traced_run([LimitStage(log), CacheStage(log)], answered_by(Completion(chat(None))))
    assert names == ["POST /v1/chat/completions"] and log == ["before", "before"]
    timed = {k: v for k, v in attributes.items() if k.startswith("interlock.stage.")}
    assert sorted(timed) == ["interlock.stage.cache.after_ms", "interlock.stage.cache.before_ms",
                             "interlock.stage.limit.after_ms", "interlock.stage.limit.before_ms"]  # fmt: skip
    assert all(isinstance(v, float) and v >= 0 for v in timed.values())
    assert "interlock.answered_by" not in attributes and "interlock.failed_stage" not in attributes

    # A stage that answers has its before phase only and is named; the ones inside it never ran.
    attributes, _ = await traced_run([LimitStage([]), Answering(), CacheStage([])], answered_by(Completion(chat(None))))
    assert attributes["interlock.answered_by"] == "answering"
    assert sorted(k for k in attributes if k.startswith("interlock.stage.")) == [
        "interlock.stage.answering.before_ms", "interlock.stage.limit.after_ms", "interlock.stage.limit.before_ms"]  # fmt: skip

    # The stage that raised is named; the ones it only let through are not.
    attributes, _ = await traced_run([LimitStage([]), Refusing(), CacheStage([])], answered_by(Completion(chat(None))))
    assert attributes["interlock.failed_stage"] == "refusing" and attributes["interlock.error_class"] == "client"
    assert "interlock.answered_by" not in attributes and "interlock.stage.limit.after_ms" in attributes


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
