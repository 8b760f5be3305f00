"""OTLP/HTTP span export that does not hold the GIL against the event loop for long.

OpenTelemetry's `BatchSpanProcessor` queues finished spans and encodes a whole batch (up to 512
spans, 20-50 µs each) on its export thread without a pause. That thread then holds the GIL for
whole switch intervals (5 ms) while the event loop, which gives the GIL up at every socket call,
waits to get it back: every request in flight during an export pays, not only the traced ones.
Measured here with 10 % of cache hits traced: p99 22-33 ms against 4-7 ms untraced
(bench/RESULTS.md).

This processor's sender thread encodes the spans it takes `CHUNK` at a time and gives the GIL up
between chunks (`time.sleep(0)`; CPython then hands it to the thread waiting for it), so the
loop waits at most about a chunk's encoding (a few hundred µs). Encoding stays off the loop:
encoded on the loop one by one as they ended, spans cost more CPU (a single span's encoding runs
with cold caches) and throughput fell at 10 % traced. Each span becomes its serialized `Span`
message (the exporter package's own encoder of one span); a resource and an instrumentation
scope are encoded once, with the first span that has them; a request is framed from those
bytes: one `ResourceSpans` per resource and one `ScopeSpans` per scope, the spans' messages put
in as the length-delimited fields they are. Without that encoder (it is the package's internal
one) each span becomes a whole `ExportTraceServiceRequest` of its own, and the requests are
joined: a request's `resource_spans` is a repeated field and protobuf parses joined messages as
one, so that is one valid request too (encoding each span's resource and scope again).

The buffer is bounded (`max_queue` spans; a span that finds it full is dropped and counted). A
batch is posted when `max_batch` spans wait or every `delay_s`, retried with backoff on 429,
502, 503, 504 and connection errors within `timeout_s`, then dropped (counted, logged). Shutdown
sends what is left, within `timeout_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

log = logging.getLogger("interlock.tracing")

RETRIED = frozenset({429, 502, 503, 504})
CHUNK = 8  # spans encoded between two hand-overs of the GIL
MAX_GROUPS = 64  # (resource, scope) pairs whose encoding is kept; a provider has one resource
Group = tuple[int, int] | None  # a span's (resource, scope) by identity; None: a whole request
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


class OtlpSpanProcessor:
    """A span processor (the SDK's `SpanProcessor` interface) posting OTLP/HTTP protobuf."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_queue: int = 2048,
        max_batch: int = 512,
        delay_s: float = 2.0,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self._encoder = _Encoder()
        self._url = url
        self._headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        self._timeout_s = timeout_s
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._delay_s = delay_s
        self._session = session or requests.Session()
        self._sleep = sleep
        self._pending: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._sending = threading.Lock()  # one sender at a time: the thread, or a flush
        self._stopping = False
        self._full = 0  # spans that found the buffer full (counted on the ending thread)
        self._undelivered = 0  # spans not encoded, or in batches refused or late (the sender's)
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="interlock-otlp", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._full + self._undelivered

    # -- the SDK's SpanProcessor interface (on the thread that starts and ends spans) ------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def _on_ending(self, span: Span) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping:
            return
        pending = self._pending
        if len(pending) >= self._max_queue:
            self._full += 1
            return
        pending.append(span)
        if len(pending) >= self._max_batch:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send what waits, on the calling thread; True when nothing is left waiting. (Each post
        is bounded by `timeout_s`, not by `timeout_millis`.)"""
        self._send()
        return not self._pending

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(self._timeout_s)
        self._send()  # what the thread left, if it was late
        self._session.close()

    # -- the sender thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._send()

    def _send(self) -> None:
        with self._sending:
            while self._pending:
                count = min(len(self._pending), self._max_batch)
                spans = [self._pending.popleft() for _ in range(count)]
                encoded = []
                for i, span in enumerate(spans):
                    if i and not i % CHUNK:
                        time.sleep(0)  # the GIL to the event loop, if it waits for it
                    try:
                        encoded.append(self._encoder.span(span))
                    except Exception:  # one span that cannot be encoded must not lose the rest
                        self._undelivered += 1
                        log.exception("tracing: a span could not be encoded")
                if encoded:
                    self._post(self._encoder.request(encoded), len(encoded))

    def _post(self, body: bytes, count: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        for backoff in (*BACKOFF_S, None):
            try:
                response = self._session.post(self._url, data=body, headers=self._headers, timeout=self._timeout_s)
            except OSError as exc:  # requests' errors are OSErrors: refused, reset, timed out
                reason = type(exc).__name__
            else:
                status: int = response.status_code
                if status < 300:
                    self.sent += count
                    return
                reason = f"status {status}"
                if status not in RETRIED:
                    break
            if backoff is None or time.monotonic() + backoff > deadline:
                break
            self._sleep(backoff)
        self._undelivered += count
        log.warning("tracing: %d spans not delivered to the OTLP endpoint (%s)", count, reason)


class _Encoder:
    """Spans to OTLP/HTTP protobuf, on the sender thread: each span's `Span` message, its
    resource's and scope's once per pair, and a request framed from them (module docstring)."""

    def __init__(self) -> None:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        self._whole = encode_spans
        self._one: Callable[[ReadableSpan], Any] | None = None
        try:
            from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span

            self._one = _encode_span
        except ImportError:  # the package moved its internals: whole requests, joined
            pass
        # Per (resource, scope) by identity: the two objects (so the ids stay theirs), and the
        # encoded `ResourceSpans` without its scopes and `ScopeSpans` without its spans.
        self._groups: dict[tuple[int, int], tuple[object, object, bytes, bytes]] = {}

    def span(self, span: ReadableSpan) -> tuple[Group, bytes]:
        if self._one is None:
            return None, self._whole([span]).SerializePartialToString()
        key = (id(span.resource), id(span.instrumentation_scope))
        if key not in self._groups:
            if len(self._groups) >= MAX_GROUPS:
                return None, self._whole([span]).SerializePartialToString()
            self._groups[key] = self._envelope(span)
        return key, self._one(span).SerializePartialToString()

    def _envelope(self, span: ReadableSpan) -> tuple[object, object, bytes, bytes]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(self._whole([span]).SerializePartialToString())
        resource_spans = request.resource_spans[0]
        scope_spans = resource_spans.scope_spans[0]
        del scope_spans.spans[:]
        scope_part = scope_spans.SerializePartialToString()
        del resource_spans.scope_spans[:]
        return span.resource, span.instrumentation_scope, resource_spans.SerializePartialToString(), scope_part

    def request(self, items: list[tuple[Group, bytes]]) -> bytes:
        """One `ExportTraceServiceRequest` of `items`."""
        out: list[bytes] = []
        groups: dict[tuple[int, int], list[bytes]] = {}
        for key, data in items:
            if key is None:
                out.append(data)  # a whole request: joined as it is
            else:
                groups.setdefault(key, []).append(data)
        for key, spans in groups.items():
            _, _, resource_part, scope_part = self._groups[key]
            scope = scope_part + b"".join([_field(2, data) for data in spans])  # ScopeSpans.spans = 2
            out.append(_field(1, resource_part + _field(2, scope)))  # request.resource_spans = 1, scope_spans = 2
        return b"".join(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: its tag, its length, its bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
