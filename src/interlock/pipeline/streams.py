"""Watching a stream of events go by without owning it.

Stages and the router wrap a stream to count tokens, time the first event or collect events for
the cache. They use StreamTap rather than an async generator because an async generator that
was never started does not run its `finally` when closed: a request cancelled between opening a
stream and reading it would leak its in-flight count and its upstream connection. A tap calls
`on_end` exactly once, whatever way the stream ends, and `aclose()` always reaches the inner
stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol


class Closeable(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class StreamClosed(Exception):
    """Passed to `on_end` when the consumer stopped reading before the end."""


class StreamTap:
    __slots__ = ("_ended", "_inner", "_on_end", "_on_event")

    def __init__(
        self,
        inner: AsyncIterator[bytes],
        on_event: Callable[[bytes], None] | None = None,
        on_end: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._inner = inner
        self._on_event = on_event
        self._on_end = on_end
        self._ended = False

    def __aiter__(self) -> StreamTap:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        try:
            event = await self._inner.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        if self._on_event is not None:
            self._on_event(event)
        return event

    async def aclose(self) -> None:
        self._end(StreamClosed())
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            if self._on_end is not None:
                self._on_end(error)


async def aclose_quietly(events: AsyncIterator[bytes]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


class MappedStream:
    """Each event passed through `fn` on its way out; `aclose()` reaches the inner stream."""

    __slots__ = ("_fn", "_inner")

    def __init__(self, inner: AsyncIterator[bytes], fn: Callable[[bytes], bytes]) -> None:
        self._inner = inner
        self._fn = fn

    def __aiter__(self) -> MappedStream:
        return self

    async def __anext__(self) -> bytes:
        return self._fn(await self._inner.__anext__())

    async def aclose(self) -> None:
        await aclose_quietly(self._inner)
