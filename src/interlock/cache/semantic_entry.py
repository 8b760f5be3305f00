"""What the semantic cache keeps and shares: one answered question, with its vector.

The same record lives in each process's index (cache/semantic_memory.py) and travels through
Redis to the others (cache/semantic_share.py). `text` is the last user turn as DLP left it, so
the guard can compare it with a new question; it holds tokens, never the values they replace.
`expires` is wall-clock time (`time.time()`): processes on several machines compare it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from .entry import CachedAnswer


class SemanticEntry(msgspec.Struct, array_like=True, frozen=True):
    id: str
    group: str  # the model group, for invalidation
    partition: str
    text: str
    vector: bytes  # float32, L2-normalised, in native byte order (written and read on x86-64 alike)
    answer: CachedAnswer
    expires: float

    def array(self) -> NDArray[np.float32]:
        return np.frombuffer(self.vector, dtype=np.float32)


class Drop(msgspec.Struct, array_like=True, frozen=True, tag="drop"):
    """Every entry of a model group is invalidated (DELETE /admin/cache/semantic/{group})."""

    group: str
    origin: str  # the process that dropped it (and dropped its own copy at once)


class Added(msgspec.Struct, array_like=True, frozen=True, tag="add"):
    entry: SemanticEntry


Message = Added | Drop

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message | None:
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # written by another version: skipped


def vector_bytes(vector: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
