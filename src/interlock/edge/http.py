"""Small ASGI helpers: reading a bounded body, sending a response, request ids."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol, runtime_checkable

from ..errors import BadRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_CONTENT = (b"content-type", b"application/json")
DRAIN_CAP = 64 * 1024 * 1024  # past this, an oversized body is not read to its end
_REQUEST_ID_OK = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class Direct(Protocol):
    """What the native server (edge/server.py) hands the Gateway beside ASGI's `receive` and
    `send`, for the exchange it serves most: a body that has all arrived, and a whole answer in
    one call. ASGI stays the interface (the same app mounts on uvicorn or granian); this only
    saves the messages."""

    def whole_body(self) -> bytes | None:
        """The whole request body when it has arrived and none was read; None: use `receive`."""
        ...

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """`http.response.start` with `headers` and one last `http.response.body`."""
        ...

    def on_client_gone(self, callback: Callable[[], None]) -> bool:
        """Call `callback` once if the client leaves while the app runs (what `receive` would say
        with `http.disconnect` once the body was read), without a task waiting in `receive`.
        False when the body was not all read: then watch `receive`."""
        ...


@runtime_checkable
class DirectApp(Protocol):
    """An ASGI app that also takes the direct call: the same `http` handling, plus `Direct`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def direct(self, scope: Scope, receive: Receive, send: Send, native: Direct) -> None: ...


class ClientGone(Exception):
    """The client disconnected before we finished reading its request."""


class RequestIds:
    """Unique across processes (random prefix) and cheap (a counter)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


def header_map(scope: Scope) -> dict[bytes, bytes]:
    # ASGI servers lower-case header names. Later duplicates win, which is fine for the few we read.
    return dict(scope["headers"])


def valid_request_id(value: bytes | None) -> str | None:
    if value and _REQUEST_ID_OK.fullmatch(value):
        return value.decode()
    return None


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The whole body, or PayloadTooLarge once it passes `limit`.

    An oversized body is still read to its end (and dropped) up to DRAIN_CAP bytes: answering
    while the client is still sending makes the kernel reset the connection, and the client
    would see "connection reset" instead of our 413.
    """
    declared = headers.get(b"content-length")
    too_large = False
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest("Invalid Content-Length header") from None
        if length > DRAIN_CAP:
            raise too_large_error(limit)
        too_large = length > limit
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                too_large = True
                chunks.clear()
                if size > DRAIN_CAP:
                    break
            if not too_large:
                chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if too_large:
        raise too_large_error(limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large_error(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")


def encode_headers(request_id: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    """The answer's headers: the request id, then `extra`, which stages build as bytes already
    (names are constants, values mostly cached)."""
    out = [(b"x-request-id", request_id.encode())]
    out += extra
    return out


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: tuple[bytes, bytes],
) -> None:
    headers.append(content_type)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
