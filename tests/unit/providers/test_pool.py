"""The native pool: targets parsed once into what goes on the wire, and its connection limits against
a real socket server on this machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from interlock.config import UpstreamPool
from interlock.providers.pool import NativeTransport, parse_target
from interlock.providers.transport import RequestHeaders, Timeouts

STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
async def holding_server() -> AsyncIterator[str]:
    """Answers every request with the head of an event stream, then holds the stream open."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(STREAM_HEAD)
        held.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1/chat/completions"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_stream_cancelled_while_waiting_for_its_host_gives_back_its_place_in_the_total(
    holding_server: str,
) -> None:
    pool = NativeTransport(UpstreamPool(limit=2, limit_per_host=1))
    headers, timeouts = RequestHeaders({}), Timeouts(connect=2.0, read=30.0)
    first = await pool.open_stream(holding_server, b"{}", headers, timeouts, "d")  # holds the host's one place
    waiting = asyncio.ensure_future(pool.open_stream(holding_server, b"{}", headers, timeouts, "d"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # queued behind the per-host limit
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await first.aclose()
    total, host = pool._limits(pool._target(holding_server))
    assert (total._value, host._value) == (2, 1)  # every place is free again
    # And so the whole limit serves again: two streams to two hosts at once.
    other = holding_server.replace("127.0.0.1", "localhost")
    streams = [await pool.open_stream(url, b"{}", headers, timeouts, "d") for url in (holding_server, other)]
    for stream in streams:
        await stream.aclose()
    await pool.close()


def test_targets_are_parsed_once_into_what_goes_on_the_wire() -> None:
    t = parse_target("https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1")
    assert (t.host, t.port, t.tls) == ("x.openai.azure.com", 443, True)
    assert t.path == b"/openai/deployments/d/chat/completions?api-version=1"
    assert t.host_header == b"x.openai.azure.com"
    assert parse_target("http://10.0.0.5:8000/v1/models").host_header == b"10.0.0.5:8000"
    with pytest.raises(ValueError):
        parse_target("ftp://host/x")
