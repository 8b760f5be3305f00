"""Precomputed embeddings: text -> vector, computed once and kept, in memory and in Redis.

The same texts come back: the common queries of a support bot, the prompts the semantic cache
and drift embed, the chunks a retrieval index re-embeds. A vector is a pure function of the model
and the text, so it is kept under the model's name and a digest of the text (BLAKE2b, 16 bytes:
the text itself never becomes a key, and a collision is as likely as guessing a 128-bit key).

Two tiers, as for cached answers (`cache/memory.py`, `cache/redis_tier.py`, reused here): an LRU
in the process bounded in bytes, and Redis shared by workers and replicas, which degrades to
misses when it fails. Lookups take the memory tier first and send what it misses to Redis in one
MGET; a vector found in Redis is kept in memory too. The store is warmed from a file of common
queries (`interlock embeddings warm FILE`, or `embeddings.warm_file` at start) and fills as
traffic flows. A memory hit costs microseconds (`bench/embeddings.py` prints how many).

Stored with each vector: the word pieces the model read, so `usage` is right on a hit too.
The Redis value is those as a little-endian uint32, then the float32 row.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ..cache.memory import MemoryCache
from ..cache.redis_tier import RedisTier
from ..observe.metrics import Metrics

F32 = NDArray[np.float32]
_TOKENS = struct.Struct("<I")
ENTRY_OVERHEAD = 120  # bytes an entry costs beyond its vector: the key, the tuple, the object


class Embedded:
    __slots__ = ("tokens", "vector")

    def __init__(self, vector: F32, tokens: int) -> None:
        self.vector = vector
        self.tokens = tokens

    def size(self) -> int:
        return self.vector.nbytes + ENTRY_OVERHEAD

    def pack(self) -> bytes:
        return _TOKENS.pack(self.tokens) + self.vector.astype("<f4", copy=False).tobytes()

    @classmethod
    def unpack(cls, raw: bytes, dimensions: int) -> Embedded | None:
        if len(raw) != _TOKENS.size + 4 * dimensions:
            return None  # another model's or a damaged value: a miss, and it will be rewritten
        (tokens,) = _TOKENS.unpack_from(raw)
        return cls(np.frombuffer(raw, dtype="<f4", offset=_TOKENS.size).astype(np.float32), tokens)


def text_key(model: str, text: str) -> str:
    return f"emb:{model}:{hashlib.blake2b(text.encode(), digest_size=16).hexdigest()}"


class EmbeddingStore:
    def __init__(
        self,
        dimensions: int,
        memory: MemoryCache[Embedded],
        redis: RedisTier | None,
        metrics: Metrics,
        ttl: int,
    ) -> None:
        self._dimensions = dimensions
        self._memory = memory
        self._redis = redis
        self._metrics = metrics
        self._ttl = ttl

    def __len__(self) -> int:
        return len(self._memory)

    async def get(self, model: str, texts: Sequence[str]) -> list[Embedded | None]:
        """Each text's stored vector, or None: memory first, then one Redis round trip."""
        keys = [text_key(model, t) for t in texts]
        found = [self._memory.get(k) for k in keys]
        missed = [i for i, f in enumerate(found) if f is None]
        self._metrics.embedding_lookups("memory", len(found) - len(missed), len(missed))
        if not missed or self._redis is None:
            return found
        raws = await self._redis.get_many([keys[i] for i in missed])
        hits = 0
        for i, raw in zip(missed, raws, strict=True):
            entry = Embedded.unpack(raw, self._dimensions) if raw is not None else None
            if entry is not None:
                hits += 1
                found[i] = entry
                self._memory.put(keys[i], entry, self._ttl)
        self._metrics.embedding_lookups("redis", hits, len(missed) - hits)
        return found

    def put(self, model: str, texts: Sequence[str], vectors: F32, tokens: Sequence[int]) -> None:
        """Keep computed vectors in both tiers (the Redis writes leave the caller's path)."""
        for key, entry in self._keep(model, texts, vectors, tokens):
            if self._redis is not None:
                self._redis.set_later(key, entry.pack(), self._ttl)

    async def put_now(self, model: str, texts: Sequence[str], vectors: F32, tokens: Sequence[int]) -> bool:
        """`put`, waiting for Redis to take them (one pipeline): for the warm command. False if
        Redis did not."""
        kept = self._keep(model, texts, vectors, tokens)
        if self._redis is None:
            return True
        return await self._redis.set_many([(key, entry.pack()) for key, entry in kept], self._ttl)

    def _keep(
        self, model: str, texts: Sequence[str], vectors: F32, tokens: Sequence[int]
    ) -> list[tuple[str, Embedded]]:
        kept = []
        for text, vector, n in zip(texts, vectors, tokens, strict=True):
            key = text_key(model, text)
            entry = Embedded(np.array(vector, dtype=np.float32), n)  # a copy: the batch's array is shared
            self._memory.put(key, entry, self._ttl)
            kept.append((key, entry))
        return kept
