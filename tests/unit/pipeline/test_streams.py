from __future__ import annotations

from collections.abc import AsyncIterator

from interlock.pipeline.streams import StreamClosed, StreamTap


async def test_stream_tap_reports_the_end_exactly_once() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"1"
        yield b"2"

    seen: list[bytes] = []
    ends: list[BaseException | None] = []
    tap = StreamTap(events(), seen.append, ends.append)
    assert [e async for e in tap] == [b"1", b"2"]
    await tap.aclose()
    assert seen == [b"1", b"2"] and ends == [None]

    closed: list[BaseException | None] = []
    unread = StreamTap(events(), None, closed.append)
    await unread.aclose()  # never started: still ends, exactly once
    assert len(closed) == 1 and isinstance(closed[0], StreamClosed)
