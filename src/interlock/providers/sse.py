"""Server-sent events from an upstream, whatever HTTP client carried them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from ..errors import InterlockError, StreamBroken, StreamTimedOut, UpstreamTimeout

DONE = b"[DONE]"


class SseDecoder:
    """Splits a byte stream into the payloads of its `data:` events. Pure: bytes in, payloads out.

    Lines end in LF or CRLF; an empty line ends an event; several `data:` lines in one event are
    joined with LF; `event:`, `id:`, `retry:` and `:` comments carry nothing we forward.
    """

    __slots__ = ("_data", "_partial")

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[bytes]:
        """`feed`, lazily: each payload as soon as its lines are read, so the first event of a
        large chunk (an upstream that sent many at once) is forwarded before the rest is decoded.
        Exhaust it before the next call."""
        buffer = self._partial + chunk if self._partial else chunk
        lines = buffer.split(b"\n")
        self._partial = lines.pop()  # an unfinished line waits for the next chunk
        return self._decode(lines)

    def _decode(self, lines: list[bytes]) -> Iterator[bytes]:
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    payload = b"\n".join(self._data)
                    self._data = []
                    yield payload
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)

    def finish(self) -> list[bytes]:
        """At the end of the stream: an event the upstream did not terminate with a blank line."""
        out = self.feed(b"\n") if self._partial else []
        if self._data:
            out.append(b"\n".join(self._data))
            self._data = []
        return out


class SseStream:
    """Event payloads without the final `[DONE]`, from a source of body chunks.

    `read_chunk` returns b"" at the end of the body and raises an InterlockError when the
    connection fails. A body that ends without `[DONE]` is a broken stream. `release` is called
    once: with True after `[DONE]` (the connection may be reused), False otherwise (it must be
    closed, so an upstream still generating sees the caller has gone).
    """

    __slots__ = ("_decoder", "_finished", "_pending", "_read", "_release", "_where")

    def __init__(self, read_chunk: Callable[[], Awaitable[bytes]], release: Callable[[bool], None], where: str) -> None:
        self._read = read_chunk
        self._release = release
        self._where = where
        self._decoder = SseDecoder()
        self._pending: Iterator[bytes] = iter(())  # the payloads of the last chunk, decoded as taken
        self._finished = False

    def __aiter__(self) -> SseStream:
        return self

    async def __anext__(self) -> bytes:
        while (payload := next(self._pending, None)) is None:
            if self._finished:
                raise StopAsyncIteration
            try:
                chunk = await self._read()
            except InterlockError as exc:
                self._end(False)
                broken = StreamTimedOut if isinstance(exc, UpstreamTimeout) else StreamBroken
                raise broken(f"stream from deployment {self._where} failed ({exc.message})") from None
            except BaseException:
                self._end(False)
                raise
            if chunk:
                self._pending = self._decoder.events(chunk)
            else:
                rest = self._decoder.finish()
                if not rest or rest[-1] != DONE:
                    self._end(False)
                    raise StreamBroken(f"stream from deployment {self._where} ended before it was complete")
                self._pending = iter(rest)
        if payload == DONE:
            self._pending = iter(())
            self._end(True)
            raise StopAsyncIteration
        return payload

    def _end(self, complete: bool) -> None:
        if not self._finished:
            self._finished = True
            self._release(complete)

    async def aclose(self) -> None:
        self._end(False)
