"""Server-sent events toward the caller.

The first event is read before the response starts, so a failure to produce any answer still
gets a proper status code. After that, the status is sent and a failure can only be reported
in the stream: it ends with an `error` event (which the openai client raises as APIError) and
without `[DONE]`, so it never looks like a complete answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import InterlockError
from .http import Send

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def first_event(events: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await events.__anext__()
    except StopAsyncIteration:
        return None


async def send_stream(
    send: Send, first: bytes | None, events: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]]
) -> int:
    """Send the stream; return 200, or the status of the error that cut it short."""
    headers.extend(SSE_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    status = 200
    try:
        if first is not None:
            await send({"type": "http.response.body", "body": frame(first), "more_body": True})
            async for payload in events:
                await send({"type": "http.response.body", "body": frame(payload), "more_body": True})
        tail = DONE_EVENT
    except InterlockError as exc:
        status = exc.status
        tail = frame(exc.body())
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    return status
