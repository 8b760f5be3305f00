"""What telemetry costs per request, measured in process (no sockets, no wrk): run it alone on an
idle machine, and compare figures from one run only.

    PYTHONPATH=src .venv/bin/python bench/telemetry_cost.py [--requests N]

1. The metrics of one cache hit (`Metrics.request_done`), timed with timeit.
2. A whole cache hit through the ASGI app (edge, pipeline, cache), called in a loop on uvloop:
   tracing off, tracing on with every request sampled (spans encoded as the OTLP exporter does,
   then dropped), the same with a span per stage phase (`telemetry.stage_spans`), tracing on with
   none sampled (ratio 0).
3. The telemetry stage on a cache miss: a JSON answer, a 100-event stream, a sampled JSON answer.
4. What "tracing off" saves: eight stage phases behind an `is None` test against the same eight
   phases through OpenTelemetry's own no-op tracer.

Run the same script with PYTHONPATH pointing at an older tree to compare (2 needs only
`interlock.app.build`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from collections.abc import Sequence
from typing import Any

import orjson
import uvloop

from interlock.app import build
from interlock.config import parse_settings
from interlock.observe.metrics import Metrics

ANSWER = orjson.dumps(
    {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
     "finish_reason": "stop", "logprobs": None}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
)  # fmt: skip
BODY = orjson.dumps({"model": "hit", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]})
SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
         "headers": [(b"content-type", b"application/json")]}  # fmt: skip


def per_call_us(fn: Any, number: int = 200_000, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


# -- 1 ----------------------------------------------------------------------------------------------
def metrics_of_a_hit() -> float:
    m = Metrics()
    try:
        m.request_done("hit", "chat/completions", 200, "hit", 0.0001, 0.0, "_none", "_none")
        return per_call_us(lambda: m.request_done("hit", "chat/completions", 200, "hit", 0.0001, 0.0, "_none", "_none"))
    except TypeError:  # an older tree: request_done without deployment and version
        return per_call_us(lambda: m.request_done("hit", "chat/completions", 200, "hit", 0.0001, 0.0))


def context_of_a_request() -> float:
    from interlock.pipeline.context import Endpoint, Request, RequestContext

    body = {"model": "hit", "messages": []}
    return per_call_us(lambda: RequestContext(Request("r", Endpoint.CHAT, "hit", body)))


def unsampled_request() -> float:
    """Tracing on, the request not sampled: the draw that decides it, and nothing else."""
    from opentelemetry.sdk.trace import TracerProvider

    from interlock.observe.tracing import Tracing

    provider = TracerProvider()
    tracing = Tracing(provider.get_tracer("bench"), provider.shutdown, 0.0)
    headers: dict[bytes, bytes] = {}
    return per_call_us(lambda: tracing.start_request("POST /v1/chat/completions", headers))


# -- 2 ----------------------------------------------------------------------------------------------
async def upstream() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(ANSWER), ANSWER))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def call(app: Any, scope: dict[str, Any] = SCOPE, body: bytes = BODY) -> None:
    """One request through the ASGI app, as uvicorn would hand it over; it must answer 200."""
    sent = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)


async def hit_path(telemetry: dict[str, Any] | None, requests: int, rounds: int) -> float:
    server = await upstream()
    port = server.sockets[0].getsockname()[1]
    raw: dict[str, Any] = {"models": [{"name": "hit", "deployments": [
        {"id": "d", "backend": "openai", "api_base": f"http://127.0.0.1:{port}/v1"}]}],
        "server": {"gc_freeze": False}}  # fmt: skip
    if telemetry is not None and telemetry.get("stage_spans"):
        raw["telemetry"] = {"stage_spans": True}
    settings = parse_settings(raw)
    if telemetry is None:
        app = build(settings)
    else:
        # As with an OTLP exporter: a batch processor, encoding each batch as the OTLP/HTTP
        # exporter does before it posts it (here: then dropped), on its thread.
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        from interlock.observe.tracing import Tracing

        class Discard(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                encode_spans(spans).SerializePartialToString()
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=100_000))
        tracing = Tracing(provider.get_tracer("bench"), provider.shutdown, telemetry["trace_sample_ratio"])
        app = build(settings, tracing=tracing)
    await app._on_startup()
    try:
        for _ in range(200):
            await call(app)  # the first fills the cache
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(requests):
                await call(app)
            samples.append((time.perf_counter() - started) / requests * 1e6)
        return min(samples)  # the least disturbed round: this machine is shared
    finally:
        await app._on_shutdown()
        server.close()


# -- 3 ----------------------------------------------------------------------------------------------
def stage_on_a_miss() -> dict[str, float]:
    from interlock.observe.stage import StreamObserver, TelemetryStage
    from interlock.pipeline import Completion, Endpoint, RequestContext
    from interlock.pipeline.context import Request

    metrics = Metrics()
    stage = TelemetryStage(metrics)

    def run(coro: Any) -> None:
        """The stage's coroutines never suspend: drive them without an event loop's overhead."""
        try:
            coro.send(None)
        except StopIteration:
            return
        raise AssertionError("suspended")

    def ctx(body: dict[str, Any]) -> RequestContext:
        c = RequestContext(Request("r", Endpoint.CHAT, "m", body))
        c.routing.deployment, c.routing.served_model, c.routing.version = "d", "m", "v1"
        return c

    async def answering(c: RequestContext) -> Completion:
        return answer

    async def answering_sampled(c: RequestContext) -> Completion:
        return sampled_answer

    answer = Completion(ANSWER)
    lp = {"content": [{"token": f"t{i}", "logprob": -0.1 * i, "bytes": None, "top_logprobs": []} for i in range(50)]}
    sampled_answer = Completion(orjson.dumps({**orjson.loads(ANSWER), "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi " * 50}, "finish_reason": "stop",
         "logprobs": lp}]}))  # fmt: skip

    async def json_answer() -> None:
        await stage(ctx({}), answering)

    async def sampled() -> None:
        c = ctx({})
        c.telemetry.logprobs_sampled = True
        await stage(c, answering_sampled)

    events = [orjson.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": f"w{i} "}, "logprobs": None, "finish_reason": None}]}) for i in range(99)]  # fmt: skip
    events.append(b'{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')

    def stream() -> None:
        observer = StreamObserver(ctx({}), metrics, time.perf_counter)
        for e in events:
            observer.on_event(e)
        observer.on_end(None)

    return {
        "JSON answer: the stage's call": per_call_us(lambda: run(json_answer()), 50_000),
        "JSON answer, sampled (50 tokens of logprobs stripped)": per_call_us(lambda: run(sampled()), 10_000),
        "stream of 100 events: per event": per_call_us(stream, 2_000) / 100,
    }


# -- 4 ----------------------------------------------------------------------------------------------
def tracing_off_branch() -> tuple[float, float]:
    from opentelemetry import trace

    noop = trace.NoOpTracer()
    trace_attr: Any = None

    def branch() -> None:
        for _ in range(8):
            if trace_attr is not None:
                raise AssertionError

    def noop_spans() -> None:
        for _ in range(8):
            span = noop.start_span("stage.before")
            span.end()

    return per_call_us(branch), per_call_us(noop_spans, 50_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"1. Metrics.request_done of a hit: {metrics_of_a_hit():.2f} us")
    print(f"   RequestContext(...) of a request: {context_of_a_request():.2f} us")
    off = uvloop.run(hit_path(None, args.requests, args.rounds))
    print(f"2. cache hit through the ASGI app, tracing off: {off:.1f} us/request")
    try:
        import opentelemetry.sdk  # noqa: F401

        from interlock.config import TelemetrySettings  # noqa: F401  # a tree with telemetry
    except ImportError:
        return
    print(f"   tracing on, a request not sampled: {unsampled_request():.3f} us to decide")
    sampled = uvloop.run(hit_path({"trace_sample_ratio": 1.0}, args.requests, args.rounds))
    dropped = uvloop.run(hit_path({"trace_sample_ratio": 0.0}, args.requests, args.rounds))
    print(f"   tracing on, every request sampled: {sampled:.1f} us/request (+{sampled - off:.1f})")
    try:
        spans = uvloop.run(hit_path({"trace_sample_ratio": 1.0, "stage_spans": True}, args.requests, args.rounds))
        print(f"   the same with stage spans:         {spans:.1f} us/request (+{spans - off:.1f})")
    except Exception as exc:  # an older tree: no telemetry.stage_spans (every phase a span)
        print(f"   stage spans: not in this tree ({type(exc).__name__})")
    print(f"   tracing on, none sampled:          {dropped:.1f} us/request (+{dropped - off:.1f})")
    try:
        for name, us in stage_on_a_miss().items():
            print(f"3. telemetry stage, {name}: {us:.2f} us")
    except ImportError:
        pass
    branch, noop = tracing_off_branch()
    print(f"4. eight stage phases, tracing off: `is None` {branch:.3f} us; OTel no-op spans {noop:.2f} us")


if __name__ == "__main__":
    main()
