"""One HTTP exchange: the request as the edge read it, and the ways to answer it.

It also owns the disconnect watch. Once armed (right before the first upstream call), a task
waits on `receive()`; if the client disconnects before we answer, it cancels the request's task,
which cancels the upstream call. The server (edge/server.py, or uvicorn) also wakes `receive()`
once the response is complete, so `done` is set before the last body message is sent and the
watch ignores that wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..errors import InterlockError
from ..security.roles import OPEN, Identity
from .http import (
    JSON_CONTENT,
    Direct,
    Message,
    Receive,
    Scope,
    Send,
    encode_headers,
    read_body,
    send_bytes,
    too_large_error,
)
from .sse import send_stream


class Exchange:
    __slots__ = (
        "_task", "_watcher", "client_gone", "direct", "done", "headers", "identity", "loop", "model", "receive",
        "request_id", "response_headers", "scope", "send", "started",
    )  # fmt: skip

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
        loop: asyncio.AbstractEventLoop,
        direct: Direct | None = None,
    ) -> None:
        self.loop = loop
        self.direct = direct  # the native server's direct call (edge/http.py), None under another server
        self.identity: Identity = OPEN  # set by the gateway once the caller is identified
        self.model: str | None = None  # set by the parser once the body names a group the caller may call
        # Headers every answer of this exchange carries (the rate limit's, on the Files and Vector
        # Stores routes; inference handlers carry their pipeline's own).
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers = headers
        self.request_id = request_id
        self.started = False  # response start sent
        self.done = False  # last body message about to be sent
        self.client_gone = False
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None

    # -- disconnects --------------------------------------------------------------------------------
    def arm_disconnect_watch(self) -> None:
        """From now on, a client that leaves cancels the task that armed this (upstream work
        stops). The native server says so itself (`Direct.on_client_gone`); on another ASGI
        server a task waits in `receive` for `http.disconnect`."""
        if self._task is None and not self.done:
            # With the loop passed explicitly, neither call looks the running loop up, which on
            # Python 3.11 costs a getpid() system call each time.
            self._task = asyncio.current_task(self.loop)
            direct = self.direct
            if direct is None or not direct.on_client_gone(self._client_left):
                self._watcher = self.loop.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
        self._client_left()

    def _client_left(self) -> None:
        if not self.done and self._task is not None:
            self.client_gone = True
            self._task.cancel()

    def close(self) -> None:
        self.done = True
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    # -- the request body ----------------------------------------------------------------------------
    async def body(self, limit: int) -> bytes:
        """The whole request body, or PayloadTooLarge past `limit` (`read_body`)."""
        if self.direct is not None:
            whole = self.direct.whole_body()
            if whole is not None:
                if len(whole) > limit:
                    raise too_large_error(limit)
                return whole
        return await read_body(self.receive, self.headers, limit)

    # -- answers ------------------------------------------------------------------------------------
    async def json(self, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = encode_headers(self.request_id, extra or ())
        headers += self.response_headers
        self.started = self.done = True
        if self.direct is not None:
            headers.append(JSON_CONTENT)  # the server adds content-length
            await self.direct.respond(status, headers, body)
        else:
            await send_bytes(self.send, status, body, headers, JSON_CONTENT)

    async def error(self, exc: InterlockError) -> None:
        await self.json(exc.status, exc.body(), [(k.encode(), v.encode()) for k, v in exc.headers.items()])

    async def stream(
        self, first: bytes | None, events: AsyncIterator[bytes], extra: list[tuple[bytes, bytes]]
    ) -> InterlockError | None:
        """Send a stream; the error that cut it short, if one did."""
        self.started = True
        return await send_stream(self._send_marking_done, first, events, encode_headers(self.request_id, extra))

    async def _send_marking_done(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.done = True
        await self.send(message)
