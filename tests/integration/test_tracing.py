"""OpenTelemetry traces from a running gateway, with the real SDK.

In process: the gateway served by uvicorn on this test's loop, with the SDK's in-memory exporter
added through the composition root, DLP tokenizing an email and the cache on, called with the
`openai` client: a span per request with its stages' timings, one per upstream attempt (and,
with `stage_spans`, one per stage phase), and no prompt or answer text (nor a token or an email)
in any attribute.

Out of process: `interlock serve` with `telemetry.otlp_endpoint` pointing at a stand-in OTLP/HTTP
collector that decodes the protobuf export requests the SDK's exporter sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlock.app import build
from interlock.config import parse_settings
from interlock.observe.tracing import make_tracing
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, free_port

pytestmark = pytest.mark.integration
SECRET_TEXT = "the purple walrus recites Kafka at midnight"
EMAIL = "walrus.owner@example.com"
PROMPT = f"{SECRET_TEXT}, write to {EMAIL}"


def settings(upstream: FakeUpstream, stage_spans: bool) -> Any:
    return parse_settings({
        "models": [{"name": "echo", "deployments": [
            {"id": "echo-dep", "backend": "openai", "api_base": upstream.base("echo"), "version": "v9"}]}],
        "dlp": {"tokenization_key": "t" * 40, "policies": {"default": {"actions": {"EMAIL": "tokenize"}}}},
        "telemetry": {"service_name": "interlock-test", "stage_spans": stage_spans},
    })  # fmt: skip


Traces = tuple[list[ReadableSpan], list[ReadableSpan], list[ReadableSpan]]


async def three_requests(app: Any, exporter: InMemorySpanExporter) -> Traces:
    """A miss, a hit and a stream of the same request, each one trace (by start time)."""
    # One conversation: the email gets the same token each time, so the protected request (what
    # the cache keys on) is the same too.
    headers = {"x-interlock-conversation": "conv-1"}
    async with (
        serving(app) as url,
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, default_headers=headers) as c,
    ):
        request: dict[str, Any] = {"model": "echo", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
        first = await c.chat.completions.with_raw_response.create(**request)
        hit = await c.chat.completions.with_raw_response.create(**request)
        stream = await c.chat.completions.create(**request, stream=True, max_tokens=50)
        streamed = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert first.headers["x-interlock-cache"] == "miss" and hit.headers["x-interlock-cache"] == "hit"
    assert SECRET_TEXT in (first.parse().choices[0].message.content or "") and SECRET_TEXT in streamed
    traces: dict[int, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        traces.setdefault(span.context.trace_id, []).append(span)
    assert len(traces) == 3
    miss, cached, streamed_trace = sorted(traces.values(), key=lambda t: min(s.start_time or 0 for s in t))
    return miss, cached, streamed_trace


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def attribute_values(spans: tuple[ReadableSpan, ...]) -> list[str]:
    return [str(v) for s in spans for v in (s.attributes or {}).values()] + [s.name for s in spans]


def traced_app(upstream: FakeUpstream, stage_spans: bool) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    config = settings(upstream, stage_spans)
    return build(config, tracing=make_tracing(config.telemetry, exporter)), exporter


def root_of(trace: list[ReadableSpan]) -> ReadableSpan:
    root = next(s for s in trace if s.parent is None)
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in trace if s is not root)
    return root


async def test_a_span_per_request_and_upstream_call_with_the_stage_timings_and_no_text(
    upstream: FakeUpstream,
) -> None:
    app, exporter = traced_app(upstream, stage_spans=False)
    miss, cached, streamed_trace = await three_requests(app, exporter)
    assert [s.name for s in sorted(miss, key=lambda s: s.end_time or 0)] == [
        "upstream echo-dep", "POST /v1/chat/completions"]  # fmt: skip
    attributes = root_of(miss).attributes
    assert attributes is not None and attributes["interlock.deployment"] == "echo-dep"
    phases = [f"interlock.stage.{stage}.{phase}_ms" for stage in ("limit", "dlp", "cache", "telemetry")
              for phase in ("before", "after")]  # fmt: skip
    assert sorted(k for k in attributes if k.startswith("interlock.stage.")) == sorted(phases)
    assert all(isinstance(attributes[k], float) and attributes[k] >= 0 for k in phases)
    assert "interlock.answered_by" not in attributes
    # A hit stops at the cache: it answered (no after phase of its own), the telemetry stage never ran.
    assert [s.name for s in cached] == ["POST /v1/chat/completions"]
    hit = cached[0].attributes
    assert hit is not None and hit["interlock.answered_by"] == "cache" and hit["interlock.cache"] == "hit"
    assert sorted(k for k in hit if k.startswith("interlock.stage.")) == sorted(
        ["interlock.stage.limit.before_ms", "interlock.stage.limit.after_ms", "interlock.stage.dlp.before_ms",
         "interlock.stage.dlp.after_ms", "interlock.stage.cache.before_ms"])  # fmt: skip
    stream_root = root_of(streamed_trace)
    assert stream_root.attributes is not None and stream_root.attributes["interlock.stream"] is True
    values = attribute_values(exporter.get_finished_spans())
    for text in (SECRET_TEXT, "walrus", EMAIL, "<EMAIL_", "example.com"):
        assert not any(text in v for v in values), text


async def test_spans_per_request_stage_and_upstream_call_without_any_text(upstream: FakeUpstream) -> None:
    app, exporter = traced_app(upstream, stage_spans=True)
    miss, cached, streamed_trace = await three_requests(app, exporter)
    spans = exporter.get_finished_spans()
    phases = ["limit.before", "dlp.before", "cache.before", "telemetry.before", "upstream echo-dep",
              "telemetry.after", "cache.after", "dlp.after", "limit.after", "POST /v1/chat/completions"]  # fmt: skip
    assert [s.name for s in sorted(miss, key=lambda s: s.end_time or 0)] == phases
    root = root_of(miss)
    assert root.attributes is not None
    assert {k: root.attributes[k] for k in ("interlock.model", "interlock.deployment", "interlock.version",
                                            "http.response.status_code", "interlock.cache", "interlock.data_class")} == {
        "interlock.model": "echo", "interlock.deployment": "echo-dep", "interlock.version": "v9",
        "http.response.status_code": 200, "interlock.cache": "miss", "interlock.data_class": "internal"}  # fmt: skip
    assert not any(k.startswith("interlock.stage.") for k in root.attributes)  # spans instead
    upstream_span = next(s for s in miss if s.name == "upstream echo-dep")
    assert upstream_span.attributes is not None and upstream_span.attributes["interlock.version"] == "v9"

    # A hit stops at the cache: no upstream call, no telemetry stage.
    assert [s.name for s in sorted(cached, key=lambda s: s.end_time or 0)] == [
        "limit.before", "dlp.before", "cache.before", "cache.after", "dlp.after", "limit.after",
        "POST /v1/chat/completions"]  # fmt: skip
    cache_before = next(s for s in cached if s.name == "cache.before")
    assert cache_before.attributes is not None and cache_before.attributes["interlock.answered"] is True
    # A stream's upstream span lasts until its last event.
    stream_upstream = next(s for s in streamed_trace if s.name == "upstream echo-dep")
    assert root_of(streamed_trace).attributes is not None
    assert (stream_upstream.end_time or 0) > (next(s for s in streamed_trace if s.name == "cache.after").end_time or 0)

    values = attribute_values(spans)
    for text in (SECRET_TEXT, "walrus", EMAIL, "<EMAIL_", "example.com"):
        assert not any(text in v for v in values), text


class Collector:
    """A stand-in for an OpenTelemetry collector's OTLP/HTTP receiver (protobuf)."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        started = threading.Event()
        self._started = started
        self._thread.start()
        started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def receive(request: web.Request) -> web.Response:
            assert request.content_type == "application/x-protobuf"
            message = ExportTraceServiceRequest()
            message.ParseFromString(await request.read())
            self.requests.append(message)
            return web.Response(body=b"", content_type="application/x-protobuf")

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/traces", receive)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self._loop.run_until_complete(serve())
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def spans(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, attributes, resource attributes) of every span received."""
        out = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                        out.append((span.name, attributes, resource))
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.stop()


def test_spans_reach_an_otlp_collector(session_tmp: Path, upstream: FakeUpstream, collector: Collector) -> None:
    config = {
        "models": [{"name": "echo", "deployments": [
            {"id": "echo-dep", "backend": "openai", "api_base": upstream.base("echo"), "version": "v9"}]}],
        "telemetry": {"otlp_endpoint": f"http://127.0.0.1:{collector.port}", "service_name": "interlock-otlp"},
    }  # fmt: skip
    gw = Gateway(session_tmp, config)
    try:
        with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0) as c:
            out = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": PROMPT}])
        assert SECRET_TEXT in (out.choices[0].message.content or "")
    finally:
        gw.stop()  # shutting down flushes the exporter's batch
    spans = collector.spans()
    names = sorted(name for name, _, _ in spans)
    assert names == ["POST /v1/chat/completions", "upstream echo-dep"]
    assert {resource["service.name"] for _, _, resource in spans} == {"interlock-otlp"}
    root = next(attrs for name, attrs, _ in spans if name == "POST /v1/chat/completions")
    assert root["interlock.version"] == "v9" and root["http.response.status_code"] == 200
    assert isinstance(root["interlock.stage.cache.before_ms"], float)  # an OTLP double
    assert not any(SECRET_TEXT in str(v) or "walrus" in str(v) for _, attrs, _ in spans for v in attrs.values())
