"""The native HTTP/1.1 server: httptools on asyncio protocols, serving the Gateway's ASGI app.

Why not uvicorn: measured on the cache-hit path, uvicorn's `send` (header validation, per-message
objects) was the largest single cost. This server speaks the part of ASGI the gateway uses
(`http` and `lifespan` scopes, `http.request`, `http.disconnect`, `http.response.start` and
`.body`) and trusts its app: headers from the app are written as they are (lower-case bytes), the
status line is precomputed per status and the `date`/`server` block once a second. The Gateway
stays a plain ASGI app (uvicorn, granian or any ASGI server can mount it).

What it does (docs/edge.md is the reference for operators):
- Keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`) and pipelining:
  requests parsed while an earlier one is answered wait in a queue, answers go out in order; past
  `max_pipelined` queued requests the socket is not read.
- Request bodies, Content-Length or chunked, buffered up to `read_buffer_bytes` before the socket
  stops being read (the app reads them through `receive`, or takes one that has all arrived
  with the direct call's `whole_body`); `Expect: 100-continue` is answered when the app first
  asks for the body and has not answered yet. Body size limits (413) are the app's
  (`Exchange.body`); a body the app never read is read and dropped after the answer, up to
  `max_body_bytes`, so the connection can be reused (past that, the connection is closed).
- Refused, with an answer and the connection closed: a request line or header the parser rejects
  (400), a header block past `max_header_bytes` or more than `max_headers` fields (431), both
  Content-Length and Transfer-Encoding, several differing Content-Lengths, or a Transfer-Encoding
  other than chunked (400: the request smuggling cases, where a proxy in front and this server
  could disagree on where the request ends).
- Timeouts, checked by one sweep every half second (no timer per request): the headers must be
  complete `header_timeout_s` after the request's first byte (slowloris; 408), a body may be
  silent at most `body_timeout_s` (408), an idle keep-alive connection is closed after
  `keepalive_timeout_s`, and a client that reads nothing for `send_timeout_s` while we have data
  queued for it is dropped.
- Stream chunks after the first are corked: written at the end of the loop iteration (or once
  64 KiB wait), so events that arrived together leave in one system call; the header block and
  the first event, and every last chunk, are written at once.
- Flow control toward the client: the transport's write buffer has a high-water mark of
  `write_buffer_bytes`; past it, `send` of a streaming body waits (the producer, an upstream
  stream, is paused with it) until the client reads; a client that never reads is dropped by the
  sweep, which wakes the app with `http.disconnect` (the Exchange's watch then cancels it).
- Half-closed sockets: an EOF from the client while a request is answered is taken as the client
  leaving, as nginx and uvicorn take it (`receive` returns `http.disconnect` once the body was
  read, so the Exchange's watch cancels upstream work), but the connection stays open for what
  the app still writes, then closes; an EOF inside a request's headers or body closes at once.
- Graceful shutdown (SIGINT/SIGTERM): stop accepting, close idle connections, let in-flight
  requests finish within `graceful_timeout_s` (their answers carry `connection: close`), then
  abort what is left and run the lifespan shutdown.
- `--workers N`: the parent binds one listening socket per worker (SO_REUSEPORT, Linux: the
  kernel spreads new connections among them by a hash of their addresses; elsewhere one shared
  socket) and forks N workers; each builds its own app. The parent forwards SIGINT/SIGTERM and
  waits for them.

The races, and what this code does about them:
- The response can finish before the request body does (the app answered 401 without reading
  it): the cycle is marked complete, the rest of the body is dropped as it arrives, and the next
  pipelined request starts only once the parser has seen the end of this one.
- The client can go away while the app waits in `receive` or `send`: `connection_lost` wakes
  every waiter; `receive` then returns `http.disconnect` and `send` returns without writing.
- `receive` after the body was read (the Exchange's disconnect watch) blocks until the client
  disconnects or the response is complete, and then returns `http.disconnect`; the Exchange
  ignores that wake-up once it marked itself done.
- A request queued behind another (pipelining) is never started if the connection is lost.
- A request refused while earlier pipelined ones are still answered (its headers too large, its
  body late): the refusal waits until their answers are out, or the client would take it for the
  first request's answer; the socket is not read again.
- Shutdown while a request is queued behind an in-flight one: if the in-flight answer's headers
  are already written (without `connection: close`), the queued request is answered too; if not,
  that answer gets `connection: close` and the queued requests are dropped with the close, which
  HTTP allows (the client may retry them). No new request is read after the last answer.
- `max_pipelined` is checked after each read: httptools parses a whole read, so one read of many
  tiny requests can queue more than it (bounded by the socket's receive buffer), then reading stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from ..config import HttpLimits
from ..errors import BadRequest, HeadersTooLarge, InterlockError, RequestTimeout
from .http import DirectApp, Message, Receive, Scope, Send

log = logging.getLogger("interlock.edge.server")

App = Callable[[Scope, Receive, Send], Awaitable[None]]
SWEEP_S = 0.5
CORK_BYTES = 64 * 1024  # corked stream bytes written at once, without waiting for the loop
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_DISCONNECT: Message = {"type": "http.disconnect"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_IDLE, _HEADERS, _BODY = 0, 1, 2  # what a connection's deadline is for


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line if line is not None else _status_line(status)


class _Refused(Exception):
    """Raised inside a parser callback: answer `error` and close the connection."""

    def __init__(self, error: InterlockError) -> None:
        super().__init__(error.message)
        self.error = error


class _Cycle:
    """One request and its answer: the ASGI `receive` and `send` of one `http` scope, and the
    direct call's `whole_body` and `respond` (edge/http.py `Direct`)."""

    __slots__ = (
        "body", "buffered", "chunked", "complete", "conn", "discarded", "disconnected", "eof",
        "expect_continue", "gone", "head", "keep_alive", "more_body", "out_headers", "read_all", "scope",
        "started", "status", "task", "waiters",
    )  # fmt: skip

    def __init__(self, conn: HttpConnection, scope: Scope, keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.head = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.buffered = 0
        self.discarded = 0
        self.more_body = True  # the parser has not seen the end of the request yet
        self.read_all = False  # the app has received the last body message
        self.started = False  # http.response.start seen
        self.complete = False  # the last body message written
        self.chunked = False
        self.disconnected = False  # the connection is gone: nothing more is written
        self.eof = False  # the client closed its side: taken as leaving, but what we write is sent
        self.status = 200
        self.out_headers: Any = ()
        self.waiters: list[asyncio.Future[None]] = []
        self.task: asyncio.Task[None] | None = None
        self.gone: Callable[[], None] | None = None  # `on_client_gone`'s callback, until the app returns

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self.conn.loop.create_future()
        self.waiters.append(waiter)
        await waiter

    async def receive(self) -> Message:
        if self.disconnected:
            return _DISCONNECT
        if self.read_all:
            # The body was read: what is left to say is that the client went away (or, once we
            # answered, that there is nothing more; the Exchange ignores that wake-up).
            while not self.disconnected and not self.eof and not self.complete:
                await self._wait()
            return _DISCONNECT
        if self.expect_continue:
            self.expect_continue = False
            if not self.started and self.more_body:
                self.conn.write(_CONTINUE)
        while not self.body and self.more_body and not self.disconnected:
            await self._wait()
        if self.disconnected:
            return _DISCONNECT
        return {"type": "http.request", "body": self._take(), "more_body": self.more_body}

    def whole_body(self) -> bytes | None:
        """The direct call's `receive` (edge/http.py `Direct`): once all of the body has arrived
        (a small request's comes in the read that held its headers, before the app runs), what
        of it `receive` has not given yet, taken as `receive` would; None: read it through
        `receive`."""
        if self.more_body or self.read_all or self.disconnected:
            return None
        self.expect_continue = False  # the body is here: no 100 to send
        return self._take()

    def on_client_gone(self, callback: Callable[[], None]) -> bool:
        """The direct call's disconnect watch (edge/http.py `Direct`): `callback` is called once
        if the client goes away (the connection is lost, or the client closed its side) while the
        app runs, which is when `receive` would say `http.disconnect` once the body was read; no
        task waits in `receive` for it. False: the body was not all read (watch `receive`)."""
        if not self.read_all:
            return False
        if self.disconnected or self.eof:
            callback()
        else:
            self.gone = callback
        return True

    def _tell_gone(self) -> None:
        callback = self.gone
        if callback is not None:
            self.gone = None
            callback()

    def _take(self) -> bytes:
        body = self.body
        chunk = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        self.conn.body_read()
        if not self.more_body:
            self.read_all = True
        return chunk

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = message["status"]
            self.out_headers = message.get("headers", ())
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        await self._body(message.get("body", b""), message.get("more_body", False))

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The direct call's whole answer (edge/http.py `Direct`): `http.response.start` and its
        one `http.response.body` in one call, without the two messages."""
        if self.started:
            raise RuntimeError("http.response.start sent twice")
        self.started = True
        self.status = status
        self.out_headers = headers
        await self._body(body, False)

    async def _body(self, body: bytes, more: bool) -> None:
        if not self.started or self.complete:
            raise RuntimeError("http.response.body outside a response")
        if self.disconnected:
            return
        conn = self.conn
        if self.status:  # the header block is not written yet (`_head` sets it to 0)
            data = self._head(len(body), more)
            if not self.head:
                data += self._frame(body, more) if self.chunked else body
            conn.write(data)  # at once: the first event's latency is what a caller waits on
        elif not self.head:
            data = self._frame(body, more) if self.chunked else body
            if more:
                conn.cork(data)  # later events: one write per loop iteration, not one per event
            else:
                conn.write(data)
        if not more:
            self.complete = True
            self.wake()
            if conn.write_paused:
                # A whole answer waits for the client to read too, before the next pipelined
                # request starts: otherwise a client that pipelines and never reads grows the
                # write buffer by an answer a request (measured: 600 MB in 1.5 s of 100 KB ones).
                await conn.drain()
                if conn.gone:
                    return
            conn.cycle_done(self)
        elif conn.write_paused:
            await conn.drain()

    def _head(self, size: int, more: bool) -> bytes:
        conn = self.conn
        parts = [status_line(self.status), conn.server.date_block]
        self.status = 0
        framed = False
        extend = parts.extend
        for name, value in self.out_headers:
            if name == b"content-length" or name == b"transfer-encoding":
                framed = True
            extend((name, b": ", value, b"\r\n"))  # joined once below: no bytes made per header
        old = self.scope["http_version"] == "1.0"
        if not framed:
            if not more:
                parts.append(b"content-length: %d\r\n" % size)
            elif old:
                self.keep_alive = False  # no chunked encoding in HTTP/1.0: the close ends the body
            else:
                self.chunked = True
                parts.append(_CHUNKED)
        if conn.closing:
            self.keep_alive = False
        if self.expect_continue and self.more_body:
            # Answered before the body was asked for: no 100 was sent, so the client may never
            # send the body (RFC 9110 10.1.1), and bytes that follow could be its next request
            # or the body. Only a close keeps the framing certain (as uvicorn and h11 do).
            self.keep_alive = False
        if not self.keep_alive:
            parts.append(_CLOSE)
        elif old:
            parts.append(_KEEP_ALIVE)
        parts.append(b"\r\n")
        return b"".join(parts)

    @staticmethod
    def _frame(body: bytes, more: bool) -> bytes:
        data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
        return data if more else data + _LAST_CHUNK

    def lost(self) -> None:
        self.disconnected = True
        self.wake()
        self._tell_gone()


class HttpConnection(asyncio.Protocol):
    """One client connection: parser callbacks, timeouts, flow control, the queue of cycles."""

    __slots__ = (
        "began", "client", "closing", "content_lengths", "corked", "corked_bytes", "cycles", "deadline",
        "drainers", "expect", "flush_scheduled", "gone", "header_bytes", "headers", "in_headers", "kind",
        "limits", "local", "loop", "parser", "parsing", "raw_bytes", "read_paused", "refusal", "server",
        "transfer_encoding", "transport", "url", "write_paused", "write_paused_at",
    )  # fmt: skip

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.cycles: deque[_Cycle] = deque()  # the head is being answered, the rest wait their turn
        self.parsing: _Cycle | None = None  # the request whose body the parser is reading
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0  # request line and complete headers, as the callbacks saw them
        self.raw_bytes = 0  # bytes received since the request began, while its headers are incomplete
        self.began = False  # a request began in the chunk being fed
        self.in_headers = False
        self.content_lengths: set[bytes] = set()
        self.transfer_encoding: bytes | None = None
        self.expect = False
        self.deadline = 0.0  # when the connection's current wait (`kind`) runs out; 0: none
        self.kind = _IDLE
        self.read_paused = False
        self.write_paused = False
        self.write_paused_at = 0.0
        self.drainers: list[asyncio.Future[None]] = []
        self.corked: list[bytes] = []  # stream chunks waiting for the end of this loop iteration
        self.corked_bytes = 0
        self.flush_scheduled = False
        self.closing = False  # answer what was accepted, then close
        self.refusal: InterlockError | None = None  # to write once the answers before it are out
        self.gone = False
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.local = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        self.server.connections.add(self)
        self._idle()

    def data_received(self, data: bytes) -> None:
        if self.closing and not self.cycles and self.parsing is None:
            return  # shutting down: no new request is read
        parser = self.parser
        if parser is None:
            return  # closed: nothing more is read
        self.began = False
        try:
            parser.feed_data(data)
        except _Refused as exc:
            self.refuse(exc.error)
            return
        except httptools.HttpParserUpgrade:
            self.refuse(BadRequest("Protocol upgrades are not supported"))
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            self.refuse(refused.error if refused else BadRequest("Malformed HTTP request"))
            return
        if self.in_headers:
            # Headers not complete yet: the parser keeps a partial header itself, unbounded, and
            # calls back only once it is complete. Count what arrived since the request began
            # (within the first chunk, only what the callbacks saw: at most one read is held).
            self.raw_bytes = self.header_bytes if self.began else self.raw_bytes + len(data)
            if self.raw_bytes > self.limits.max_header_bytes:
                self.refuse(HeadersTooLarge("Request header block is too large"))
                return
        if self.parsing is not None and not self.in_headers:
            self._arm(_BODY, self.limits.body_timeout_s)

    def eof_received(self) -> bool | None:
        if self.parsing is not None or self.in_headers:
            return None  # the request was cut short: a disconnect (the transport closes)
        if self.cycles:
            # Half-closed: as nginx and uvicorn do, taken as the client leaving (the app's
            # `receive` says http.disconnect, so upstream work is cancelled); whatever the app
            # still answers is written, then the connection closes.
            self.closing = True
            for cycle in self.cycles:
                cycle.eof = True
                cycle.wake()
                cycle._tell_gone()
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self.deadline = 0.0
        self.server.connections.discard(self)
        for cycle in self.cycles:
            cycle.lost()
        if self.parsing is not None:
            self.parsing.lost()
        self._wake_drainers()
        self.server.connection_closed()
        # What refers back to this protocol is let go, or every closed connection would be a
        # reference cycle (the parser calls back into it, the transport and each request hold
        # it) left for the collector, which runs rarely here (server.gc_*). A request still
        # running keeps its own `_Cycle`, which answers nothing more once lost.
        self.cycles.clear()
        self.parsing = None
        self.transport = None
        self.parser = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_at = self.loop.time()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers()

    # -- httptools callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.began = self.in_headers = True
        self.content_lengths = set()
        self.transfer_encoding = None
        self.expect = False
        self._arm(_HEADERS, self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.limits
        self.header_bytes += len(name) + len(value) + 4
        if len(self.headers) >= limits.max_headers:
            raise _Refused(HeadersTooLarge(f"Too many request header fields (limit {limits.max_headers})"))
        if self.header_bytes > limits.max_header_bytes:
            raise _Refused(HeadersTooLarge("Request header block is too large"))
        name = name.lower()
        if name == b"content-length":
            self.content_lengths.add(value.strip())
        elif name == b"transfer-encoding":
            if self.transfer_encoding is not None:
                self.transfer_encoding += b"," + value
            else:
                self.transfer_encoding = value
        elif name == b"expect":
            self.expect = value.strip().lower() == b"100-continue"
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_headers = False
        if self.transfer_encoding is not None:
            if self.content_lengths:
                raise _Refused(BadRequest("Both Content-Length and Transfer-Encoding are present"))
            if self.transfer_encoding.strip().lower() != b"chunked":
                raise _Refused(BadRequest("Only Transfer-Encoding: chunked is supported"))
        elif len(self.content_lengths) > 1:
            raise _Refused(BadRequest("Differing Content-Length headers"))
        parser = self.parser
        assert parser is not None  # it is the one calling
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("latin-1")
        if b"%" in raw_path:
            path = unquote(path)
        version = parser.get_http_version()
        scope: Scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
        }
        cycle = _Cycle(self, scope, parser.should_keep_alive(), self.expect and version == "1.1")
        self.parsing = cycle
        cycles = self.cycles
        cycles.append(cycle)
        if len(cycles) == 1:
            self._start(cycle)
        elif len(cycles) > self.limits.max_pipelined:
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is None:
            return
        if cycle.complete:  # answered without reading it: drop what arrives
            cycle.discarded += len(body)
            if cycle.discarded > self.server.max_discard:
                raise _Refused(BadRequest("Request body left unread"))
            return
        cycle.body.append(body)
        cycle.buffered += len(body)
        if cycle.buffered > self.limits.read_buffer_bytes:
            self._pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        self.in_headers = False
        if cycle is None:
            return
        cycle.more_body = False
        cycle.wake()
        if cycle.complete and self.cycles and self.cycles[0] is cycle:
            self._next()  # its answer went out before its body ended
        elif self.deadline and self.kind == _BODY:
            self.deadline = 0.0

    # -- cycles -------------------------------------------------------------------------------------
    def _start(self, cycle: _Cycle) -> None:
        self.deadline = 0.0 if self.kind == _IDLE else self.deadline
        task = self.loop.create_task(self._run(cycle))
        cycle.task = task
        if not task.done():  # (done already under an eager task factory: `_run` ran inside create_task)
            self.server.tasks.add(task)  # `_run` takes it out as it ends: no done callback to schedule

    async def _run(self, cycle: _Cycle) -> None:
        try:
            direct = self.server.direct
            if direct is not None:
                await direct(cycle.scope, cycle.receive, cycle.send, cycle)
            else:
                await self.server.app(cycle.scope, cycle.receive, cycle.send)
        except Exception:
            log.exception("unhandled error in the ASGI app")
            if not cycle.started and not self.gone:
                cycle.keep_alive = False
                self.refuse(InterlockError("Internal error", code="internal_error"), for_head=True)
                return
        finally:
            self.server.tasks.discard(cycle.task)  # set by `_start`, before this runs
            cycle.gone = None  # the callback refers to the app's exchange: no cycle through it
        if not cycle.complete and not self.gone:
            if cycle.eof and not cycle.started:
                cycle.complete = True  # the client left and the app, told so, answered nothing
                self.cycle_done(cycle)
            # The app returned without finishing its answer: nothing sensible can follow.
            elif not cycle.started:
                self.refuse(InterlockError("Internal error", code="internal_error"), for_head=True)
            elif self.transport is not None:
                self.transport.abort()

    def cycle_done(self, cycle: _Cycle) -> None:
        """The answer's last byte is written (called from `send`)."""
        if not cycle.keep_alive:
            self.closing = True
        if self.closing and (len(self.cycles) <= 1 or not cycle.keep_alive):
            self._close()
            return
        if cycle.more_body:
            # The body is still arriving: drop it as it comes, then go on with the next request.
            cycle.body.clear()
            cycle.discarded = cycle.buffered
            self._resume_reading()
            return
        self._next()

    def _next(self) -> None:
        self.cycles.popleft()
        if self.cycles:
            self._start(self.cycles[0])
            if len(self.cycles) <= self.limits.max_pipelined:
                self._resume_reading()
        elif self.closing:
            self._close()
        else:
            self._idle()
            self._resume_reading()

    def body_read(self) -> None:
        if self.read_paused and len(self.cycles) <= self.limits.max_pipelined:
            self._resume_reading()

    # -- writing ------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Write now (after anything corked)."""
        if self.corked:
            self.corked.append(data)
            data = b"".join(self.corked)
            self.corked.clear()
            self.corked_bytes = 0
        if self.transport is not None and not self.gone:
            self.transport.write(data)

    def cork(self, data: bytes) -> None:
        """Write at the end of this loop iteration, with whatever else is corked by then (or now,
        once CORK_BYTES are waiting): a stream whose upstream delivered many events in one read
        goes out in one system call, while one event per read still leaves at once."""
        self.corked.append(data)
        self.corked_bytes += len(data)
        if self.corked_bytes >= CORK_BYTES:
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.corked:
            self.write(b"")

    async def drain(self) -> None:
        while self.write_paused and not self.gone:
            waiter = self.loop.create_future()
            self.drainers.append(waiter)
            await waiter

    def _wake_drainers(self) -> None:
        drainers, self.drainers = self.drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    def refuse(self, error: InterlockError, for_head: bool = False) -> None:
        """Answer `error` and close. It is about the request being parsed (its headers or its
        body; `for_head`: the one being answered). Written at once when no earlier request still
        waits for its answer; otherwise after theirs, since pipelined answers go out in order and
        a client would take an early one for the answer to its first request."""
        self.closing = True
        self._pause_reading()
        cycles = self.cycles
        broken = cycles[0] if for_head and cycles else self.parsing  # None: its headers never ended
        self.parsing = None
        if broken is not None:
            broken.lost()
            if broken is not cycles[0]:
                cycles.remove(broken)  # queued behind others: never started
        if cycles and cycles[0] is not broken:
            self.refusal = error  # written by `_close` once the earlier answers are out
            return
        if not cycles or not cycles[0].started:
            self._write_error(error)
        for cycle in cycles:
            cycle.lost()
        self._close()

    def _write_error(self, error: InterlockError) -> None:
        body = error.body()
        self.write(
            b"".join(
                (
                    status_line(error.status),
                    self.server.date_block,
                    b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
                    _CLOSE,
                    b"\r\n",
                    body,
                )
            )
        )

    def _close(self) -> None:
        self.deadline = 0.0
        self.flush()
        if self.refusal is not None and len(self.cycles) <= 1:  # every earlier answer is out
            self._write_error(self.refusal)
        self.refusal = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # after the buffer is flushed

    # -- timeouts and reading -------------------------------------------------------------------------
    def _idle(self) -> None:
        self._arm(_IDLE, self.limits.keepalive_timeout_s)

    def _arm(self, kind: int, seconds: float) -> None:
        self.kind = kind
        self.deadline = self.loop.time() + seconds

    def sweep(self, now: float) -> None:
        if self.gone:
            return
        if self.write_paused and now - self.write_paused_at > self.limits.send_timeout_s:
            if self.transport is not None:
                self.transport.abort()  # a client that does not read: drop it
            return
        if self.read_paused:
            return  # our own back-pressure: the client is not the one who is late
        deadline = self.deadline
        if not deadline or now < deadline:
            return
        self.deadline = 0.0
        if self.kind == _IDLE:
            if not self.cycles:
                self._close()
        elif self.kind == _HEADERS and self.in_headers:
            self.refuse(RequestTimeout("Request headers were not received in time"))
        elif self.kind == _BODY and self.parsing is not None:
            self.refuse(RequestTimeout("Request body was not received in time"))

    def shutdown(self) -> None:
        """Graceful: close now when idle, else after the answers already accepted."""
        self.closing = True
        if not self.cycles and self.parsing is None:
            self._close()

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None and not self.gone:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.refusal is not None:
            return  # the parser failed: nothing more is read on this connection
        if self.read_paused and self.transport is not None and not self.gone:
            self.read_paused = False
            self.transport.resume_reading()
            if self.parsing is not None:
                self._arm(_BODY, self.limits.body_timeout_s)


class HttpServer:
    """The listening side: connections, the sweep (timeouts, the cached date), shutdown."""

    def __init__(self, app: App, limits: HttpLimits, max_discard: int) -> None:
        self.app = app
        # The Gateway's direct call, when the app has one: the same handling as through ASGI,
        # with the body and the answer passed without messages (edge/http.py `Direct`).
        self.direct = app.direct if isinstance(app, DirectApp) else None
        self.limits = limits
        self.max_discard = max_discard
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.date_block = b""
        self._second = -1
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Future[None] | None = None
        self._tick()

    def _tick(self) -> None:
        now = self.loop.time()
        wall = int(time.time())
        if wall != self._second:
            self._second = wall
            self.date_block = b"date: " + formatdate(wall, usegmt=True).encode() + b"\r\nserver: interlock\r\n"
        for conn in list(self.connections):
            conn.sweep(now)
        self._sweeper = self.loop.call_later(SWEEP_S, self._tick)

    async def start(self, sock: socket.socket) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self), sock=sock, backlog=self.limits.backlog
        )

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections and not self._all_closed.done():
            self._all_closed.set_result(None)

    async def shutdown(self) -> None:
        if self._server is not None:
            self._server.close()  # stop accepting
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._all_closed = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_closed), self.limits.graceful_timeout_s)
            except TimeoutError:
                log.warning("graceful shutdown timed out", extra={"connections": len(self.connections)})
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        if self._sweeper is not None:
            self._sweeper.cancel()


class Lifespan:
    """The ASGI lifespan protocol toward the app: startup before serving, shutdown after."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: Message) -> None:
        await self._outbox.put(message)

    async def _reply(self) -> Message:
        assert self._task is not None
        getter = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        exc = self._task.exception()
        raise RuntimeError(f"the app's lifespan ended without a reply ({type(exc).__name__ if exc else 'returned'})")

    async def _run(self, scope: Scope) -> None:
        await self._app(scope, self._inbox.get, self._send)

    async def startup(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._reply()
        await self._task


REUSE_PORT = getattr(socket, "SO_REUSEPORT", None) if sys.platform == "linux" else None


def bind(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; with `reuse_port` (Linux), one of a group on the same address among
    which the kernel spreads new connections by a hash of their addresses."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and REUSE_PORT is not None:
            sock.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_workers(host: str, port: int, backlog: int, workers: int) -> list[socket.socket]:
    """The listening sockets of `workers` processes. On Linux one each (SO_REUSEPORT), so the
    kernel gives each worker its share of new connections: on one shared socket the worker that
    wakes first accepts a whole burst (wrk's 64 connections all went to one of two workers).
    Elsewhere one socket that all of them accept on. All bound here, before any fork. A socket
    without SO_REUSEPORT is bound first and closed: an address in use fails there, where a
    SO_REUSEPORT socket would join another gateway's group on the port (the same user's) and
    share its connections; it also turns a port of 0 into the one the group takes."""
    probe = bind(host, port, backlog)
    if workers <= 1 or REUSE_PORT is None:
        return [probe]
    port = probe.getsockname()[1]
    probe.close()
    socks: list[socket.socket] = []
    try:
        socks += [bind(host, port, backlog, reuse_port=True) for _ in range(workers)]
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


async def serve(app: App, sock: socket.socket, limits: HttpLimits, max_discard: int) -> None:
    """Run the lifespan startup, serve until SIGINT or SIGTERM, shut down gracefully."""
    loop = asyncio.get_running_loop()
    lifespan = Lifespan(app)
    await lifespan.startup()
    server = HttpServer(app, limits, max_discard)
    await server.start(sock)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving", extra={"address": str(sock.getsockname()), "pid": os.getpid()})
    await stop.wait()
    log.info("shutting down", extra={"pid": os.getpid()})
    await server.shutdown()
    await lifespan.shutdown()


def _worker(factory: Callable[[], App], sock: socket.socket, limits: HttpLimits, max_discard: int) -> int:
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(factory(), sock, limits, max_discard))
    except Exception:
        log.exception("the server stopped on an error")
        return 1
    return 0


def run(factory: Callable[[], App], host: str, port: int, workers: int, limits: HttpLimits, max_discard: int) -> int:
    """Bind, then serve in this process (one worker) or in `workers` forked processes, each on
    its own listening socket of one SO_REUSEPORT group (Linux) or all on one (`bind_workers`)."""
    try:
        socks = bind_workers(host, port, limits.backlog, workers)
    except OSError as exc:
        print(f"interlock: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if workers <= 1:
        return _worker(factory, socks[0], limits, max_discard)
    children: list[int] = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                mine = socks[i % len(socks)]
                for sock in socks:  # the others' sockets are theirs to accept on
                    if sock is not mine:
                        sock.close()
                code = _worker(factory, mine, limits, max_discard)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    for sock in socks:
        sock.close()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    worst = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as shells say
    return worst
