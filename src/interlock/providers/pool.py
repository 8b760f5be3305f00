"""The native upstream client: pooled HTTP/1.1 keep-alive connections on asyncio protocols,
parsed by httptools (the parser uvicorn uses).

Why not aiohttp's client: measured on the cache-miss path it was 38% of the gateway's CPU
(headers, per-request objects, timers); this client does one write and one parse per call.
It speaks what upstreams speak: HTTP/1.1, Content-Length or chunked bodies, TLS. It does not do
proxies, redirects, compression or HTTP/2 (`upstream.client: aiohttp` when a proxy is needed).

Pool state lives in one object with explicit limits: `limit` connections in all and
`limit_per_host` to one origin (waiters queue on semaphores), idle connections kept for
`keepalive_timeout` seconds and reused most-recent-first.

The races, and what this code does about them:
- An idle keep-alive connection can be closed by the server just as we reuse it. If it fails
  before a single response byte arrives, the request is sent once more on a new connection: the
  server closed it without reading our request.
- A caller cancelled while waiting (its client went away) must not leave a half-read response on
  a pooled connection: the connection is aborted, never reused, and the upstream sees the close.
- A caller cancelled while it queues for a place (the total limit, then its host's) must give back
  what it took: `_take_place` and `_give_place` are the one way in and out, for calls and streams.
- A timer, not `asyncio.timeout`, bounds each call: it aborts the connection, which wakes the
  waiter with a timeout error. One timer handle per call, re-armed per chunk for streams.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from ..config import UpstreamPool
from ..errors import InterlockError, UpstreamError
from .base import UpstreamAnswer
from .sse import SseStream
from .transport import RequestHeaders, Timeouts, status_error, timed_out, unreachable

HIGH_WATER = 1 << 20  # buffered stream bytes before we stop reading the socket
USER_AGENT = b"interlock"


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart once: where to connect and what to put on the request line."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    path: bytes
    host_header: bytes


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = port == (443 if tls else 80)
    host_header = parts.hostname if default else f"{parts.hostname}:{port}"
    return Target((parts.scheme, parts.hostname, port), parts.hostname, port, tls, path.encode(), host_header.encode())


class _Connection(asyncio.Protocol):
    """One upstream connection and the response being read on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        # The parser holds bound methods of this protocol: a reference cycle. It is replaced per
        # response and dropped when the connection is lost, so closed connections are freed by
        # reference counting, not left (with their transports) to the cycle collector.
        self.parser: httptools.HttpResponseParser | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.retry_after: str | None = None
        self.keep_alive = True
        self.got_bytes = False
        self.headers_done = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: InterlockError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.on_complete: Any = None  # set when a finished stream leaves the rest of the body to us
        self._header_name = b""

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport: create_connection made it

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.parser is None:
            return  # nothing was asked on this connection
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamError(f"upstream sent a malformed response ({type(exc).__name__})"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self.fail(UpstreamError("upstream closed the connection"))
        self.parser = None

    def pause_writing(self) -> None:  # request bodies are small; the kernel buffer suffices
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # called from inside feed_data
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()
        if self.on_complete is not None:
            self.on_complete(self)

    # -- used by the pool -------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: InterlockError) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def wait(self) -> None:
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def until_headers(self) -> None:
        while not self.headers_done and self.error is None:
            await self.wait()

    async def until_complete(self) -> None:
        while not self.complete and self.error is None:
            await self.wait()

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        return data

    def start(self, head: bytes, body: bytes) -> None:
        self._reset()
        if self.closed or self.transport is None:
            # Closed by the server after we took it from the pool: nothing will wake a waiter.
            self.error = UpstreamError("upstream closed the connection")
            return
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(head + body)  # one send() call; the two are small


class _Call:
    """One request's hold on a connection, and the single timer that bounds it."""

    __slots__ = ("conn", "expired", "loop", "timer", "where")

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, seconds: float) -> None:
        self.loop = loop
        self.where = where
        self.conn: _Connection | None = None
        self.expired = False
        self.timer = loop.call_later(seconds, self._expire)

    def bind(self, conn: _Connection) -> None:
        self.conn = conn  # learnt as soon as a connection is chosen, so the timer can abort it

    def _expire(self) -> None:
        self.expired = True
        if self.conn is not None:
            self.conn.fail(timed_out(self.where))

    def rearm(self, seconds: float) -> None:
        self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._expire)


class NativeTransport:
    def __init__(self, settings: UpstreamPool) -> None:
        self._settings = settings
        self._targets: dict[str, Target] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._per_host: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._total: asyncio.Semaphore | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Looked up once, not per call: on Python 3.11 each lookup is a getpid() system call,
        # measured at 5% of the miss path. A transport lives and dies with its process's loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = parse_target(url)
        return target

    # -- connections ------------------------------------------------------------------------------
    async def _acquire(self, target: Target, connect_timeout: float) -> _Connection:
        idle = self._idle.get(target.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed
            if not conn.closed and now - conn.idle_since < self._settings.keepalive_timeout:
                conn.reused = True
                return conn
            conn.abort()
        return await self._connect(target, connect_timeout)

    async def _connect(self, target: Target, connect_timeout: float) -> _Connection:
        loop = self._running_loop()
        tls: ssl.SSLContext | None = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), target.host, target.port, ssl=tls,
                    server_hostname=target.host if tls else None,
                )  # fmt: skip
        except TimeoutError:
            raise UpstreamError(f"connecting to {target.host}:{target.port} timed out") from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect ({type(exc).__name__})") from None
        return conn

    def _release(self, target: Target, conn: _Connection) -> None:
        """Back to the pool if the response was read to its end and the server keeps it open."""
        if conn.closed or not conn.complete or not conn.keep_alive or conn.error is not None or self._closed:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(target.key, []).append(conn)

    def _limits(self, target: Target) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        if self._total is None:
            self._total = asyncio.Semaphore(self._settings.limit)
        host = self._per_host.get(target.key)
        if host is None:
            host = self._per_host[target.key] = asyncio.Semaphore(self._settings.limit_per_host)
        return self._total, host

    async def _take_place(self, target: Target) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        """A place in the total limit and one in the target host's, in that order. A caller
        cancelled (or failing) while it waits for the host's gives the total's back: otherwise
        every client that went away in that queue would shrink the pool for good."""
        total, host = self._limits(target)
        await total.acquire()
        try:
            await host.acquire()
        except BaseException:
            total.release()
            raise
        return total, host

    @staticmethod
    def _give_place(places: tuple[asyncio.Semaphore, asyncio.Semaphore]) -> None:
        total, host = places
        host.release()
        total.release()

    def _head(self, method: bytes, target: Target, headers: RequestHeaders, length: int) -> bytes:
        return b"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            method, target.path, target.host_header, USER_AGENT, length, headers.encoded,
        )  # fmt: skip

    async def _exchange(
        self, method: bytes, target: Target, body: bytes, headers: RequestHeaders, connect: float, call: _Call
    ) -> _Connection:
        """Send the request; return the connection once the response headers are in."""
        head = self._head(method, target, headers, len(body))
        for attempt in (0, 1):
            try:
                conn = await self._acquire(target, connect)
            except UpstreamError as exc:
                raise unreachable(call.where, exc) from None
            call.bind(conn)
            conn.start(head, body)
            try:
                await conn.until_headers()
            except BaseException:
                conn.abort()
                raise
            if conn.error is None:
                return conn
            stale = conn.reused and not conn.got_bytes and not call.expired
            if attempt == 0 and stale:
                continue  # a stale keep-alive connection: the server closed it before reading
            raise conn.error
        raise AssertionError("unreachable")

    # -- Transport --------------------------------------------------------------------------------
    async def post(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> UpstreamAnswer:
        target = self._target(url)
        places = await self._take_place(target)
        call = _Call(self._running_loop(), where, timeouts.read)
        try:
            conn = await self._exchange(b"POST", target, body, headers, timeouts.connect, call)
            await conn.until_complete()
            if conn.error is not None:
                raise conn.error
            data = conn.take()
            if conn.status >= 300:
                raise status_error(conn.status, data, conn.retry_after, where)
            return UpstreamAnswer(data, conn.status)
        except InterlockError:
            if call.expired:
                raise timed_out(where) from None
            raise
        except BaseException:
            if call.conn is not None:
                call.conn.abort()  # cancelled part way: never pool a half-read response
            raise
        finally:
            call.timer.cancel()
            if call.conn is not None:
                self._release(target, call.conn)
            self._give_place(places)

    async def open_stream(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> SseStream:
        target = self._target(url)
        places = await self._take_place(target)
        loop = self._running_loop()
        call = _Call(loop, where, timeouts.connect + timeouts.read)
        released = False

        def release(complete: bool) -> None:
            nonlocal released
            if released:
                return
            released = True
            call.timer.cancel()
            self._give_place(places)
            conn = call.conn
            if conn is None:
                return
            if complete and not conn.complete and not conn.closed:
                # [DONE] came before the end of the body (the chunked terminator): pool the
                # connection when the rest arrives, or drop it if that takes too long.
                conn.on_complete = lambda c: self._release(target, c)
                loop.call_later(timeouts.read, lambda: None if conn.complete else conn.abort())
                return
            if not complete:
                conn.abort()
            self._release(target, conn)

        try:
            conn = await self._exchange(b"POST", target, body, headers, timeouts.connect, call)
            if conn.status >= 300:
                await conn.until_complete()
                raise status_error(conn.status, conn.take(), conn.retry_after, where)
        except BaseException:
            release(False)
            raise

        async def read_chunk() -> bytes:
            while not conn.chunks:
                if conn.error is not None:
                    raise conn.error
                if conn.complete:
                    return b""
                call.rearm(timeouts.read)  # the gap between chunks, not the whole stream
                await conn.wait()
            return conn.take()

        return SseStream(read_chunk, release, where)

    async def get_ok(self, url: str, headers: RequestHeaders, timeout_s: float) -> bool:
        target = self._target(url)
        call = _Call(self._running_loop(), url, timeout_s)
        try:
            conn = await self._exchange(b"GET", target, b"", headers, timeout_s, call)
            await conn.until_complete()
            ok = conn.error is None and conn.status < 500
            conn.take()
            return ok
        except InterlockError:
            return False
        finally:
            call.timer.cancel()
            if call.conn is not None:
                self._release(target, call.conn)

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
        self._idle.clear()
