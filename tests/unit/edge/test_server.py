"""The native HTTP server in process: a small ASGI app behind it, raw HTTP over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from interlock.config import HttpLimits
from interlock.edge.http import Direct, Message, Receive, Scope, Send
from interlock.edge.server import HttpServer, Lifespan, bind, bind_workers, status_line

LIMITS = HttpLimits(header_timeout_s=1, body_timeout_s=1, keepalive_timeout_s=1, send_timeout_s=1)


class App:
    """Answers by path: /stream (three chunks, no length: chunked), /echo (the body back),
    /watch (reads the body, then waits on receive for the disconnect), anything else `ok`."""

    def __init__(self) -> None:
        self.disconnects = 0
        self.big = 0
        self.streamed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if path == "/endless":  # as fast as the client reads, for as long as it is there
            await send({"type": "http.response.start", "status": 200, "headers": []})
            loop = asyncio.get_running_loop()
            for _ in range(2000):  # 128 MiB if nothing stopped it (send returns at once once the client is gone)
                before = loop.time()
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                if loop.time() - before > 0.5:
                    self.streamed.set()  # send waited: the producer was paused
            return
        if path == "/big":  # 100 KB at once, the request's body unread
            self.big += 1
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * 100_000})
            return
        if path == "/refuse":  # answers before asking for the body (a 401 before an upload)
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        if path == "/sleep":  # longer than every timeout of LIMITS, then an answer
            await asyncio.sleep(2.5)
        body = b""
        more = True
        while more:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if path == "/watch":
            message = await receive()
            assert message["type"] == "http.disconnect"
            self.disconnects += 1
            return
        answer = body if path == "/echo" else b"ok"
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-path", path.encode())]})
        await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[tuple[HttpServer, int]]:
    """The server on a free port, serving `app`; shut down after."""
    sock = bind("127.0.0.1", 0, 64)
    server = HttpServer(app, LIMITS, max_discard=1024)
    await server.start(sock)
    try:
        yield server, sock.getsockname()[1]
    finally:
        await server.shutdown()


@pytest.fixture
async def served() -> AsyncIterator[tuple[App, int]]:
    app = App()
    async with running(app) as (_, port):
        yield app, port


async def exchange(port: int, data: bytes, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        if until_close:
            return await asyncio.wait_for(reader.read(), 5)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


def test_status_lines_are_precomputed_and_unknown_ones_built() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(431) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"


async def test_a_response_without_length_is_chunked(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert b"connection: close" in head
    assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"


async def test_http_1_0_gets_no_chunks_and_keep_alive_only_when_asked(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"GET /stream HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert body == b"one two three"  # the close ends it
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"connection: keep-alive" in head
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
    writer.close()


async def test_head_gets_the_headers_without_the_body(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 201 Created\r\n")
    assert raw.endswith(b"content-length: 2\r\nconnection: close\r\n\r\n")


async def test_date_and_server_headers_come_from_the_cached_block(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"GET /x HTTP/1.0\r\n\r\n")
    lines = raw.split(b"\r\n")
    assert lines[1].startswith(b"date: ") and lines[1].endswith(b" GMT")
    assert lines[2] == b"server: interlock"
    assert b"x-path: /x" in raw


async def test_a_percent_encoded_path_is_decoded(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"GET /a%20b?q=1 HTTP/1.0\r\n\r\n")
    assert b"x-path: /a b\r\n" in raw


async def test_a_body_arriving_in_pieces_is_delivered_whole(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello")
    await asyncio.sleep(0.05)
    writer.write(b"world")
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert raw.endswith(b"\r\n\r\nhelloworld")


async def test_receive_after_the_body_returns_disconnect_when_the_client_leaves(served: tuple[App, int]) -> None:
    app, port = served
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /watch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    await asyncio.sleep(0.1)
    assert app.disconnects == 0  # still waiting in receive
    writer.close()
    for _ in range(50):
        if app.disconnects:
            break
        await asyncio.sleep(0.02)
    assert app.disconnects == 1


async def test_a_half_closed_client_is_told_disconnect_and_still_gets_what_is_written(served: tuple[App, int]) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /watch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.write_eof()
    rest = await asyncio.wait_for(reader.read(), 5)  # /x (queued behind) is answered, then closed
    writer.close()
    assert app.disconnects == 1
    assert rest.startswith(b"HTTP/1.1 201 ") and rest.endswith(b"ok")


async def test_an_unread_body_past_the_discard_bound_closes_the_connection(served: tuple[App, int]) -> None:
    _, port = served
    # /stream answers without reading: 2,000 bytes of body follow, past max_discard (1,024).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
    writer.write(b"y" * 2000)
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 400 ") or rest == b""


async def test_no_timeout_cuts_a_request_the_app_takes_long_to_answer(served: tuple[App, int]) -> None:
    _, port = served
    raw = await exchange(port, b"GET /sleep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 201 ") and raw.endswith(b"ok")


async def test_a_body_arriving_slowly_but_steadily_is_not_cut_off(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
    for piece in b"abcde":  # 2.5 s in all, past header_timeout_s (1), never silent for body_timeout_s (1)
        await asyncio.sleep(0.5)
        writer.write(bytes([piece]))
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 201 ") and raw.endswith(b"abcde")


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(served: tuple[App, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"ok"), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # keepalive_timeout_s is 1
    writer.close()


async def test_a_client_that_does_not_read_pauses_the_producer_then_is_dropped(served: tuple[App, int]) -> None:
    app, port = served
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    await asyncio.get_running_loop().sock_sendall(sock, b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(app.streamed.wait(), 5)  # send waited on the full buffer
    await asyncio.sleep(2.0)  # send_timeout_s is 1: the sweep drops the connection
    received = 0
    try:
        while chunk := await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1 << 20), 5):
            received += len(chunk)
    except ConnectionError:
        pass
    sock.close()
    assert received < 8 * 1024 * 1024  # what the buffers held, then the end


async def test_lifespan_startup_failure_is_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": "boom"})

    with pytest.raises(RuntimeError, match="boom"):
        await Lifespan(app).startup()


async def test_lifespan_runs_startup_then_shutdown() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    lifespan = Lifespan(app)
    await lifespan.startup()
    await lifespan.shutdown()
    assert seen == ["lifespan.startup", "lifespan.shutdown"]


async def test_a_client_that_pipelines_and_never_reads_gets_no_more_answers_than_fit(served: tuple[App, int]) -> None:
    app, port = served
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    try:
        await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n" * 400)
        await asyncio.sleep(0.5)  # nothing read: what is answered is what the buffers hold
        # Before the fix every request was answered into the write buffer (400 here, 40 MB).
        assert app.big < 100
    finally:
        sock.close()


async def test_an_answer_before_a_100_continue_body_closes_the_connection(served: tuple[App, int]) -> None:
    _, port = served
    answer = await exchange(
        port, b"POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n"
    )  # read until the server closes: the client need not send the body, so nothing can follow
    assert answer.startswith(b"HTTP/1.1 401") and b"connection: close" in answer.lower()
    assert b"100 Continue" not in answer


class DirectApp(App):
    """The same app, plus the direct call the Gateway offers: /direct takes the body with
    `whole_body` (through `receive` when it is not all there) and answers with `respond`."""

    def __init__(self) -> None:
        super().__init__()
        self.whole: list[bool] = []  # per /direct request: whether whole_body had the body
        self.direct_calls = 0

    async def direct(self, scope: Scope, receive: Receive, send: Send, native: Direct) -> None:
        self.direct_calls += 1
        if scope["path"] != "/direct":
            await self(scope, receive, send)
            return
        body = native.whole_body()
        self.whole.append(body is not None)
        if body is None:
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        await native.respond(200, [(b"x-direct", b"1")], body.upper())


@pytest.fixture
async def direct() -> AsyncIterator[tuple[DirectApp, int]]:
    app = DirectApp()
    async with running(app) as (_, port):
        yield app, port


async def test_an_app_with_a_direct_call_is_called_through_it(direct: tuple[DirectApp, int]) -> None:
    app, port = direct
    answer = await exchange(port, b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 201 ") and answer.endswith(b"ok")
    assert app.direct_calls == 1


async def test_a_direct_answer_is_framed_and_keeps_the_connection(direct: tuple[DirectApp, int]) -> None:
    app, port = direct
    two = (
        b"POST /direct HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /direct HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )  # pipelined: both answers, in order, on one connection
    answer = await exchange(port, two)
    first, _, second = answer.partition(b"HELLO")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"x-direct: 1\r\n" in first and b"content-length: 5\r\n" in first
    assert b"connection: close" not in first
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(
        b"content-length: 3\r\nconnection: close\r\n\r\nABC"
    )
    assert app.whole == [True, True]  # each body came with its headers: no receive needed


async def test_a_body_still_arriving_is_read_through_receive(direct: tuple[DirectApp, int]) -> None:
    app, port = direct
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /direct HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nab")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"cdef")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.endswith(b"\r\n\r\nABCDEF")
    assert app.whole == [False]


async def test_a_direct_answer_to_head_has_no_body(direct: tuple[DirectApp, int]) -> None:
    _, port = direct
    answer = await exchange(port, b"HEAD /direct HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.endswith(b"content-length: 0\r\nconnection: close\r\n\r\n")


async def test_respond_after_a_start_is_refused() -> None:
    failures: list[BaseException] = []

    class Twice(App):
        async def direct(self, scope: Scope, receive: Receive, send: Send, native: Direct) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            try:
                await native.respond(200, [], b"again")
            except RuntimeError as exc:
                failures.append(exc)
            await send({"type": "http.response.body", "body": b"once"})

    async with running(Twice()) as (_, port):
        answer = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.endswith(b"\r\n\r\nonce") and len(failures) == 1


async def test_a_finished_request_leaves_no_task_behind() -> None:
    async with running(App()) as (server, port):
        for path in (b"/plain", b"/stream", b"/refuse"):
            await exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(0)
        assert server.tasks == set()


class GoneApp:
    """A direct-call app that takes the body whole, asks to be told when the client leaves, then
    waits (`/wait`) or answers at once (`/now`); `/part` asks before the body has all come."""

    def __init__(self) -> None:
        self.gone: list[str] = []
        self.registered: list[bool] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the native server makes the direct call")

    async def direct(self, scope: Scope, receive: Receive, send: Send, native: Direct) -> None:
        path = scope["path"]
        if path != "/part":
            assert native.whole_body() is not None
        self.registered.append(native.on_client_gone(lambda: self.gone.append(path)))
        if path in ("/wait", "/part"):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.release.wait(), 2)
        await native.respond(200, [], b"ok")


async def test_the_direct_call_is_told_once_when_the_client_leaves_without_a_task_in_receive() -> None:
    app = GoneApp()
    async with running(app) as (server, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        await asyncio.sleep(0.1)
        assert app.registered == [True] and app.gone == []
        assert len(server.tasks) == 1  # the request's own task only: nothing waits in receive
        writer.close()
        for _ in range(50):
            if app.gone:
                break
            await asyncio.sleep(0.02)
        assert app.gone == ["/wait"]

        # Half-closed: taken as leaving, as `receive` takes it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        writer.write_eof()
        for _ in range(50):
            if len(app.gone) == 2:
                break
            await asyncio.sleep(0.02)
        app.release.set()  # and what it still answers is written
        assert (await asyncio.wait_for(reader.read(), 5)).endswith(b"ok")
        writer.close()
        assert app.gone == ["/wait", "/wait"]

        # Answered first: a client that leaves afterwards is nobody's news.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        writer.close()
        await asyncio.sleep(0.1)
        assert app.gone == ["/wait", "/wait"]

        # A body still arriving: not registered (the caller watches `receive` instead).
        app.release.clear()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /part HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nhi")
        await asyncio.sleep(0.1)
        assert app.registered[-1] is False
        app.release.set()
        writer.close()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT groups are Linux's")
def test_workers_get_a_socket_each_and_a_port_in_use_is_refused_not_joined() -> None:
    socks = bind_workers("127.0.0.1", 0, 16, 2)
    try:
        port = socks[0].getsockname()[1]
        assert len(socks) == 2 and socks[1].getsockname()[1] == port
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        with pytest.raises(OSError):  # another gateway on the port: refused, not a third member
            bind_workers("127.0.0.1", port, 16, 2)
        with pytest.raises(OSError):
            bind_workers("127.0.0.1", port, 16, 1)
    finally:
        for s in socks:
            s.close()
    one = bind_workers("127.0.0.1", 0, 16, 1)
    assert len(one) == 1 and not one[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    one[0].close()
