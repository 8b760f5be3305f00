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
) -> InterlockError | None:
    """Send the stream; return None, or the error that cut it short (sent as an `error` event)."""
    headers.extend(SSE_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    broken: InterlockError | None = None
    try:
        if first is not None:
            await send({"type": "http.response.body", "body": frame(first), "more_body": True})
            async for payload in events:
                await send({"type": "http.response.body", "body": frame(payload), "more_body": True})
        tail = DONE_EVENT
    except InterlockError as exc:
        # Without its traceback: that holds this frame, which holds `broken`, a cycle only the
        # garbage collector would free. The caller needs its class and status, not where it rose.
        broken = exc.with_traceback(None)
        tail = frame(exc.body())
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    return broken
