"""The OTLP span processor against a real HTTP server on loopback, decoding what it receives with
OpenTelemetry's own protobuf classes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from interlock.observe.otlp import OtlpSpanProcessor, _Encoder
from tests.support.procs import free_port


class Receiver:
    """Answers each POST with the next status of `statuses` (then 200) and keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(body)
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[list[str]]:
        """The span names of each request received."""
        out = []
        for body in self.bodies:
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            out.append([s.name for r in message.resource_spans for scope in r.scope_spans for s in scope.spans])
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def tracer(processor: OtlpSpanProcessor) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
    provider.add_span_processor(processor)
    return provider


def end_spans(provider: TracerProvider, names: list[str]) -> None:
    t = provider.get_tracer("test")
    for name in names:
        t.start_span(name).end()


def test_spans_encoded_one_by_one_arrive_as_one_request(receiver: Receiver) -> None:
    processor = OtlpSpanProcessor(receiver.url, {"x-tenant": "t1"}, max_batch=3, delay_s=60)
    provider = tracer(processor)
    end_spans(provider, ["a", "b", "c"])  # the third fills a batch: the sender posts it at once
    for _ in range(200):
        if receiver.bodies:
            break
        threading.Event().wait(0.01)
    assert receiver.spans() == [["a", "b", "c"]]  # the framed bytes are one valid request
    message = ExportTraceServiceRequest()
    message.ParseFromString(receiver.bodies[0])
    # One resource and one scope, each encoded once, holding the three spans.
    assert len(message.resource_spans) == 1 and len(message.resource_spans[0].scope_spans) == 1
    resource = {a.key: a.value.string_value for a in message.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "otlp-test"
    assert message.resource_spans[0].scope_spans[0].scope.name == "test"
    spans = message.resource_spans[0].scope_spans[0].spans
    assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 and s.end_time_unix_nano >= s.start_time_unix_nano
               for s in spans)  # fmt: skip
    assert receiver.headers[0]["Content-Type"] == "application/x-protobuf" and receiver.headers[0]["x-tenant"] == "t1"
    end_spans(provider, ["d"])
    provider.shutdown()  # sends what waits
    assert receiver.spans() == [["a", "b", "c"], ["d"]] and processor.sent == 4 and processor.dropped == 0


def test_a_busy_endpoint_is_retried_and_a_refusal_is_not(receiver: Receiver) -> None:
    slept: list[float] = []
    processor = OtlpSpanProcessor(receiver.url, delay_s=60, sleep=slept.append)
    provider = tracer(processor)
    receiver.statuses = [503, 429]
    end_spans(provider, ["a"])
    assert processor.force_flush()
    assert slept == [0.5, 1.0] and receiver.spans() == [["a"]] * 3 and processor.sent == 1

    receiver.statuses = [400]
    end_spans(provider, ["b", "c"])
    assert processor.force_flush()
    assert len(receiver.bodies) == 4 and slept == [0.5, 1.0]  # not retried: the request itself is refused
    assert processor.dropped == 2
    provider.shutdown()


def test_an_unreachable_endpoint_drops_the_batch_within_its_timeout() -> None:
    slept: list[float] = []
    processor = OtlpSpanProcessor(f"http://127.0.0.1:{free_port()}/v1/traces", timeout_s=2.0, delay_s=60,
                                  sleep=slept.append)  # fmt: skip
    provider = tracer(processor)
    end_spans(provider, ["a", "b"])
    processor.force_flush()
    assert slept == [0.5, 1.0] and processor.dropped == 2 and processor.sent == 0  # 4 s more would pass 2 s
    provider.shutdown()


def test_a_full_buffer_drops_and_counts_new_spans(receiver: Receiver) -> None:
    processor = OtlpSpanProcessor(receiver.url, max_queue=2, max_batch=10, delay_s=60)
    provider = tracer(processor)
    end_spans(provider, ["a", "b", "c", "d", "e"])
    assert processor.dropped == 3
    provider.shutdown()
    assert receiver.spans() == [["a", "b"]]
    end_spans(provider, ["f"])  # after shutdown: nothing more is kept
    assert processor.dropped == 3 and len(receiver.bodies) == 1


def test_without_the_one_span_encoder_whole_requests_are_joined() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    end_spans(provider, ["a", "b"])
    encoder = _Encoder()
    encoder._one = None  # as if the package had moved its internal encoder
    body = encoder.request([encoder.span(s) for s in exporter.get_finished_spans()])
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    assert [s.name for r in message.resource_spans for scope in r.scope_spans for s in scope.spans] == ["a", "b"]
    assert len(message.resource_spans) == 2  # each span's own request, joined: a resource entry each
