"""The streaming rows of bench/run.sh (BENCH_STREAM=1): a canned SSE upstream and a client that
times streams through it, directly and through the gateway. Standard library only.

    sse.py upstream PORT                 serve every POST with the same chat.completion.chunk
                                         stream: 200 events (chunked, one write), then [DONE]
    sse.py client URL CONNS SECONDS OUT  CONNS connections, each sending one streaming request
                                         after the other for SECONDS; OUT gets JSON: streams/s,
                                         events/s, time to first event and to the end (p50, p99)

Time to first byte is taken from the request's write to the arrival of the first `data:` event
(the status line and headers alone do not count: the gateway sends them with the first event).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

EVENTS = 200
_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def canned_stream() -> bytes:
    parts = [_HEAD]
    for i in range(EVENTS):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f"tok{i} "}
        finish = "stop" if i == EVENTS - 1 else None
        chunk = {
            "id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1730000000,
            "model": "bench-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip
        event = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
        parts.append(b"%x\r\n%b\r\n" % (len(event), event))
    done = b"data: [DONE]\n\n"
    parts.append(b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done))
    return b"".join(parts)


class _Upstream(asyncio.Protocol):
    answer = b""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.answer)


async def upstream(port: int) -> None:
    _Upstream.answer = canned_stream()
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _request(url: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    body = json.dumps(
        {"model": "stream", "stream": True, "messages": [{"role": "user", "content": "Stream something."}]}
    ).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer bench\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + body


async def _one_connection(url: str, until: float, ttfb: list[float], total: list[float], events: list[int]) -> None:
    host, port, request = _request(url)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            buffer = b""
            first = 0.0
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("the server closed the connection mid-stream")
                buffer += data
                if not first and b"data: " in buffer:
                    first = time.perf_counter()
                if buffer.endswith(b"0\r\n\r\n") and b"data: [DONE]" in buffer:
                    break
            ended = time.perf_counter()
            if not buffer.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"unexpected answer: {buffer[:200]!r}")
            ttfb.append(first - started)
            total.append(ended - started)
            events.append(buffer.count(b"data: "))
    finally:
        writer.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def client(url: str, conns: int, seconds: float) -> dict[str, float]:
    ttfb: list[float] = []
    total: list[float] = []
    events: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_one_connection(url, until, ttfb, total, events) for _ in range(conns)))
    elapsed = time.perf_counter() - started
    result = {
        "conns": conns, "streams": len(total), "streams_per_s": len(total) / elapsed,
        "events_per_s": sum(events) / elapsed, "events_per_stream": statistics.median(events),
        "ttfb_p50_ms": _pct(ttfb, 0.5), "ttfb_p99_ms": _pct(ttfb, 0.99),
        "total_p50_ms": _pct(total, 0.5), "total_p99_ms": _pct(total, 0.99),
    }  # fmt: skip
    return result


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "upstream":
        asyncio.run(upstream(int(argv[2])))
    elif len(argv) == 6 and argv[1] == "client":
        result = asyncio.run(client(argv[2], int(argv[3]), float(argv[4])))
        Path(argv[5]).write_text(json.dumps(result))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
