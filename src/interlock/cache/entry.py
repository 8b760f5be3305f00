"""What the cache stores: a JSON body, or the events of a stream to replay."""

from __future__ import annotations

from typing import Literal

import msgspec


class CachedAnswer(msgspec.Struct, array_like=True, frozen=True):
    kind: Literal["json", "sse"]
    body: bytes = b""
    events: list[bytes] = []

    def size(self) -> int:
        # Payload bytes plus a rough per-object overhead, so many tiny events are not free.
        return len(self.body) + sum(len(e) + 40 for e in self.events) + 120


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedAnswer)


def encode(answer: CachedAnswer) -> bytes:
    return _encoder.encode(answer)


def decode(data: bytes) -> CachedAnswer | None:
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # written by another version: treat as a miss
