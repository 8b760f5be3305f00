"""The native HTTP server (edge/server.py) against clients that break the rules, on the wire.

Each test talks raw HTTP/1.1 over a socket to `interlock serve --http native` and checks what
comes back, and that the gateway keeps serving a well-behaved request meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, http_get

pytestmark = pytest.mark.integration

LIMITS = {
    "max_header_bytes": 4096,
    "max_headers": 20,
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.0,
    "keepalive_timeout_s": 120.0,
    "send_timeout_s": 2.0,
    "graceful_timeout_s": 5.0,
}
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "q"}]}).encode()


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "server": {"http": "native", "limits": LIMITS},
        "models": [
            {"name": "m", "deployments": [{"id": "ok", "backend": "openai", "api_base": upstream.base("ok")}]},
            {"name": "slow", "deployments": [{"id": "slow", "backend": "openai", "api_base": upstream.base("slow")}]},
            {"name": "echo", "deployments": [{"id": "echo", "backend": "openai", "api_base": upstream.base("echo")}]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 25_000):  # the gateway inherits this: 10,000 connections need as many fds
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 25_000), hard))
    gw = Gateway(session_tmp, config(upstream), env={"INTERLOCK_TEST_HTTP": "native"})
    yield gw
    gw.stop()


class Conn:
    """One raw client connection, with a reader that parses answers (Content-Length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, gw: Gateway) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), timeout)
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)).strip(), 16)
                data = await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        else:
            body = b""
        return status, headers, body

    async def closed(self, timeout: float = 10.0) -> bool:
        """Whether the server closes the connection (EOF or reset) within `timeout`."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return rest == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def conn(gateway: Gateway) -> AsyncIterator[Conn]:
    c = await Conn.open(gateway)
    yield c
    c.close()


def chat_request(body: bytes = CHAT, *extra: bytes) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return head + b"".join(extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def still_serves(gw: Gateway) -> None:
    c = await Conn.open(gw)
    try:
        await c.send(chat_request())
        status, _, body = await c.response()
        assert status == 200, body
        assert json.loads(body)["choices"][0]["message"]["content"] == "answer from ok"
    finally:
        c.close()


async def test_malformed_request_line_is_refused_with_400_and_closed(gateway: Gateway, conn: Conn) -> None:
    await conn.send(b"THIS IS NOT HTTP\r\n\r\n")
    status, headers, body = await conn.response()
    assert status == 400
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert await conn.closed()
    await still_serves(gateway)


async def test_oversized_header_is_refused_with_431(gateway: Gateway, conn: Conn) -> None:
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    status, _, body = await conn.response()
    assert status == 431
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert await conn.closed()
    await still_serves(gateway)


async def test_a_header_that_never_ends_is_refused_before_it_is_all_buffered(gateway: Gateway, conn: Conn) -> None:
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    answer = asyncio.create_task(conn.response())
    sent = 0
    while not answer.done() and sent < 64 * 1024:  # never a line end: the parser would keep it all
        conn.writer.write(b"b" * 1024)
        sent += 1024
        await asyncio.sleep(0.02)
    status, _, _ = await answer
    assert sent <= 4096 + 3 * 1024  # refused once past max_header_bytes (4096), not at the end
    assert status == 431
    assert await conn.closed()


async def test_a_refusal_behind_a_pipelined_request_comes_after_its_answer(gateway: Gateway, conn: Conn) -> None:
    slow = json.dumps({"model": "slow", "messages": [{"role": "user", "content": "q"}]}).encode()
    await conn.send(
        chat_request(slow, b"X-Request-Id: first\r\n")
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 5000
        + b"\r\n\r\n"
    )
    status, headers, body = await conn.response()  # the slow answer (2 s) first, in order
    assert (status, headers["x-request-id"]) == (200, "first"), body
    status, _, _ = await conn.response()
    assert status == 431
    assert await conn.closed()


async def test_too_many_headers_are_refused_with_431(gateway: Gateway, conn: Conn) -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    status, _, body = await conn.response()
    assert status == 431
    assert "Too many" in json.loads(body)["error"]["message"]
    assert await conn.closed()


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"Content-Length: 4\r\nContent-Length: 40\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
    ],
    ids=["cl-then-te", "te-then-cl", "two-lengths", "te-not-chunked"],
)
async def test_ambiguous_body_framing_is_refused_and_closed(gateway: Gateway, conn: Conn, framing: bytes) -> None:
    # The request smuggling shapes: a proxy in front and we could disagree where the body ends.
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n"
    )
    status, _, _ = await conn.response()
    assert status == 400
    assert await conn.closed()  # and nothing after it was read as a second request
    await still_serves(gateway)


async def test_slowloris_headers_are_cut_off_by_the_header_timeout(gateway: Gateway, conn: Conn) -> None:
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()

    async def trickle() -> None:  # a header byte every 0.2 s: never idle, never done
        for i in range(50):
            await conn.send(b"X-Slow-%d: v\r\n" % i)
            await asyncio.sleep(0.2)

    trickling = asyncio.create_task(trickle())
    try:
        await still_serves(gateway)  # meanwhile
        status, _, body = await conn.response()
        assert status == 408
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 5  # header_timeout_s is 1: well before the trickle ends
        assert await conn.closed()
    finally:
        trickling.cancel()


async def test_a_stalled_body_is_cut_off_by_the_body_timeout(gateway: Gateway, conn: Conn) -> None:
    await conn.send(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model"')
    status, _, _ = await conn.response()
    assert status == 408
    assert await conn.closed()


async def test_pipelined_requests_are_answered_in_order(gateway: Gateway, conn: Conn) -> None:
    requests = [
        chat_request(CHAT, b"X-Request-Id: first\r\n"),
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n",
        chat_request(json.dumps({"model": "slow", "messages": [{"role": "user", "content": "q"}]}).encode(),
                     b"X-Request-Id: third\r\n"),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: fourth\r\n\r\n",
    ]  # fmt: skip
    await conn.send(b"".join(requests))  # one write: the server parses all four at once
    answers = [await conn.response() for _ in requests]
    assert [h["x-request-id"] for _, h, _ in answers] == ["first", "second", "third", "fourth"]
    assert [s for s, _, _ in answers] == [200, 200, 200, 200]
    assert json.loads(answers[2][2])["choices"][0]["message"]["content"] == "answer from slow"
    assert json.loads(answers[1][2])["object"] == "list"


async def test_expect_100_continue_is_answered_before_the_body_is_sent(gateway: Gateway, conn: Conn) -> None:
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(CHAT)
    )
    interim = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    await conn.send(CHAT)
    status, _, body = await conn.response()
    assert status == 200, body


async def test_expect_100_continue_answered_first_gets_no_continue_and_closes(gateway: Gateway, conn: Conn) -> None:
    # The app answers (404) without reading the body: no 100 Continue, and the connection closes,
    # since the client may never send the body (RFC 9110 10.1.1) and what it sends next could be
    # taken as it. The gateway keeps serving on a new connection.
    await conn.send(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    status, headers, _ = await conn.response()
    assert status == 404 and headers.get("connection") == "close"
    assert await conn.closed()
    again = await Conn.open(gateway)
    try:
        await again.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await again.response()
        assert status == 200
    finally:
        again.close()


async def test_a_chunked_request_body_is_read_whole(gateway: Gateway, conn: Conn) -> None:
    pieces = [CHAT[:10], CHAT[10:30], CHAT[30:]]
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for piece in pieces:
        await conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
        await asyncio.sleep(0.05)
    await conn.send(b"0\r\n\r\n")
    status, _, body = await conn.response()
    assert status == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == "answer from ok"


async def test_a_body_over_the_limit_is_413_and_the_connection_stays_usable(gateway: Gateway, conn: Conn) -> None:
    big = b"x" * (4 * 1024 * 1024 + 10)  # server.max_body_bytes is 4 MiB by default
    await conn.send(chat_request(big))
    status, _, body = await conn.response()
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    await conn.send(chat_request())
    status, _, _ = await conn.response()
    assert status == 200


async def test_keep_alive_and_http_1_0_close(gateway: Gateway, conn: Conn) -> None:
    for _ in range(3):
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.response())[0] == 200
    await conn.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, _ = await conn.response()
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed()


async def test_a_half_closed_client_gets_what_does_not_wait_on_it_and_cancels_the_rest(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # EOF is taken as the client leaving (as nginx and uvicorn take it): an upstream call is
    # cancelled, but answers that are ready are still written before the connection closes.
    slow = json.dumps({"model": "slow", "messages": [{"role": "user", "content": "q"}]}).encode()
    upstream.state.disconnected.clear()
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    waiting = socket.create_connection(("127.0.0.1", gateway.port))
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)  # done sending; still reading
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 200 ") == 2  # then closed
        waiting.sendall(chat_request(slow))
        await asyncio.sleep(0.5)  # the slow upstream is answering (2 s)
        waiting.shutdown(socket.SHUT_WR)
        for _ in range(50):
            if "slow" in upstream.state.disconnected:
                break
            await asyncio.sleep(0.1)
    finally:
        sock.close()
        waiting.close()
    assert "slow" in upstream.state.disconnected  # the upstream call was cancelled


async def test_10000_idle_keep_alive_connections_and_the_gateway_keeps_serving(gateway: Gateway) -> None:
    idle: list[Conn] = []
    try:
        for _ in range(20):
            batch = await asyncio.gather(*(Conn.open(gateway) for _ in range(500)))
            for c in batch:
                c.writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses = await asyncio.gather(*(c.response(timeout=30) for c in batch))
            assert all(s == 200 for s, _, _ in statuses)
            idle += batch
        assert len(idle) == 10_000
        await still_serves(gateway)
        for c in idle[::1000]:  # the idle ones are still open and still answer
            await c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await c.response())[0] == 200
    finally:
        for c in idle:
            c.close()
        await asyncio.sleep(0.5)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_client_that_stops_reading_a_stream_is_dropped_and_memory_stays_bounded(gateway: Gateway) -> None:
    # The echo upstream streams the text back three characters a chunk: about 70 MB of events
    # for this request, far more than the socket buffers and our high-water mark hold.
    text = "abcdefghij" * 30_000
    body = json.dumps({"model": "echo", "stream": True, "messages": [{"role": "user", "content": text}]}).encode()
    before = rss_kb(gateway.proc.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    try:
        sock.sendall(chat_request(body))
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")  # the stream started; now read nothing
        await asyncio.sleep(1.0)
        await still_serves(gateway)  # while the stuck stream is paused
        during = rss_kb(gateway.proc.pid)
        await asyncio.sleep(3.0)  # send_timeout_s is 2: the server drops the connection
        received = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionError:
            pass
        assert received < 20_000_000, "the stream was not cut off"  # what buffers held, not 70 MB
        assert during - before < 60_000, f"RSS grew by {during - before} KiB while the client did not read"
    finally:
        sock.close()
    await still_serves(gateway)


async def test_graceful_shutdown_finishes_the_request_in_flight(session_tmp: Path, upstream: FakeUpstream) -> None:
    gw = Gateway(session_tmp, config(upstream), env={"INTERLOCK_TEST_HTTP": "native"})
    try:
        c = await Conn.open(gw)
        idle = await Conn.open(gw)
        await idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle.response())[0] == 200
        slow = json.dumps({"model": "slow", "messages": [{"role": "user", "content": "q"}]}).encode()
        await c.send(chat_request(slow))  # the slow upstream takes 2 s
        await asyncio.sleep(0.3)
        gw.proc.send_signal(signal.SIGINT)
        assert await idle.closed(timeout=3)  # idle connections close at once
        status, headers, body = await c.response(timeout=10)
        assert status == 200, body
        assert headers["connection"] == "close"
        assert json.loads(body)["choices"][0]["message"]["content"] == "answer from slow"
        assert gw.proc.wait(10) == 0
        with pytest.raises(OSError):
            http_get(gw.url + "/healthz", timeout=1)
        c.close()
        idle.close()
    finally:
        gw.stop()
