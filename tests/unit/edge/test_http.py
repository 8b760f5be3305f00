"""The ASGI helpers: a body read within its limit (an oversized one drained before the 413), request
ids, and the headers and body of an answer."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.edge.http import (
    DRAIN_CAP,
    JSON_CONTENT,
    ClientGone,
    Message,
    RequestIds,
    encode_headers,
    header_map,
    read_body,
    send_bytes,
    valid_request_id,
)
from interlock.errors import BadRequest, PayloadTooLarge


class Incoming:
    """ASGI `receive` over a list of messages; counts what was read."""

    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages)
        self.read = 0

    async def __call__(self) -> Message:
        self.read += 1
        return self.messages.pop(0)


def chunks(*parts: bytes) -> Incoming:
    """The body as `http.request` messages, `more_body` on all but the last."""
    last = len(parts) - 1
    return Incoming(*({"type": "http.request", "body": p, "more_body": i < last} for i, p in enumerate(parts)))


async def test_a_body_in_several_chunks_is_joined_and_one_chunk_is_returned_as_it_came() -> None:
    assert await read_body(chunks(b'{"a":', b"1", b"}"), {}, 100) == b'{"a":1}'
    one = b'{"model":"m"}'
    assert await read_body(chunks(one), {}, 100) is one
    assert await read_body(Incoming({"type": "http.request"}), {}, 100) == b""  # no body at all
    assert await read_body(chunks(b"x" * 10), {b"content-length": b"10"}, 10) == b"x" * 10  # the limit itself


async def test_a_body_past_the_limit_is_read_to_its_end_then_refused() -> None:
    incoming = chunks(b"x" * 6, b"x" * 6, b"x" * 6)
    with pytest.raises(PayloadTooLarge) as err:
        await read_body(incoming, {}, 10)
    assert err.value.status == 413 and "10 bytes" in err.value.message
    assert incoming.read == 3 and not incoming.messages  # drained: the client is not reset mid-send


async def test_a_content_length_over_the_limit_is_refused_after_draining() -> None:
    incoming = chunks(b"x" * 4, b"x" * 4)  # declared larger than what comes: still read to the end
    with pytest.raises(PayloadTooLarge):
        await read_body(incoming, {b"content-length": b"11"}, 10)
    assert not incoming.messages
    beyond = chunks(b"x")
    with pytest.raises(PayloadTooLarge):  # too large to be worth draining: refused before reading
        await read_body(beyond, {b"content-length": str(DRAIN_CAP + 1).encode()}, 10)
    assert beyond.read == 0


async def test_reading_stops_once_a_body_passes_the_drain_cap() -> None:
    incoming = chunks(b"x" * (DRAIN_CAP + 1), b"never read")
    with pytest.raises(PayloadTooLarge):
        await read_body(incoming, {}, 10)
    assert incoming.read == 1 and len(incoming.messages) == 1


@pytest.mark.parametrize("value", [b"ten", b"", b"1.5", b"0x10"])
async def test_an_invalid_content_length_is_a_bad_request(value: bytes) -> None:
    incoming = chunks(b"{}")
    with pytest.raises(BadRequest, match="Invalid Content-Length header"):
        await read_body(incoming, {b"content-length": value}, 100)
    assert incoming.read == 0


async def test_a_client_that_disconnects_mid_body_is_gone() -> None:
    incoming = Incoming({"type": "http.request", "body": b'{"a"', "more_body": True}, {"type": "http.disconnect"})
    with pytest.raises(ClientGone):
        await read_body(incoming, {}, 100)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"req-1", "req-1"),
        (b"A.b_c:d-9", "A.b_c:d-9"),
        (b"x" * 128, "x" * 128),
        (b"x" * 129, None),
        (b"", None),
        (None, None),
        (b"has space", None),
        (b"a/b", None),
        (b"line\nbreak", None),
        ("caf\u00e9".encode(), None),
    ],
)
def test_request_ids_from_the_caller_are_kept_only_when_safe_to_echo(value: bytes | None, expected: str | None) -> None:
    assert valid_request_id(value) == expected


def test_request_ids_are_unique_and_each_process_has_its_own_prefix() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    prefix, counter = made[0].split("-")
    assert len(prefix) == 12 and counter == "1" and made[15] == f"{prefix}-10"  # the counter in hex
    assert all(valid_request_id(i.encode()) == i for i in made[:100])  # safe to echo and to pass on
    assert RequestIds().new().split("-")[0] != prefix


def test_the_header_map_keeps_the_last_of_duplicates() -> None:
    assert header_map({"headers": [(b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3")]}) == {b"x-a": b"3", b"x-b": b"2"}


async def test_an_answer_carries_its_request_id_extra_headers_and_the_body_length() -> None:
    headers = encode_headers("req-7", [(b"x-ratelimit-limit-requests", b"10"), (b"x-interlock-cache", b"hit")])
    assert headers == [
        (b"x-request-id", b"req-7"),
        (b"x-ratelimit-limit-requests", b"10"),
        (b"x-interlock-cache", b"hit"),
    ]
    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(dict(message))

    body = '{"text":"café ☕"}'.encode()  # counted in bytes (20), not characters (17)
    await send_bytes(send, 201, body, headers, JSON_CONTENT)
    start, whole = sent
    assert start == {
        "type": "http.response.start",
        "status": 201,
        "headers": [
            (b"x-request-id", b"req-7"), (b"x-ratelimit-limit-requests", b"10"), (b"x-interlock-cache", b"hit"),
            (b"content-type", b"application/json"), (b"content-length", b"20"),
        ],
    }  # fmt: skip
    assert whole == {"type": "http.response.body", "body": body, "more_body": False}
