"""The precomputed store's memory tier and its Redis value format (the Redis tier itself runs
against a real Redis in tests/integration/test_embeddings.py)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.embeddings.store import ENTRY_OVERHEAD, Embedded, EmbeddingStore, text_key
from interlock.observe.metrics import Metrics


def unit(seed: int, d: int = 4) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d).astype(np.float32)
    return v / np.linalg.norm(v)


def test_the_key_is_a_digest_under_the_models_name() -> None:
    key = text_key("all-minilm-l6-v2", "jane.doe@example.com wants a refund")
    assert key.startswith("emb:all-minilm-l6-v2:") and "jane" not in key and len(key.rsplit(":", 1)[1]) == 32
    assert text_key("other", "same") != text_key("all-minilm-l6-v2", "same")


def test_a_value_round_trips_and_a_value_of_another_size_is_a_miss() -> None:
    entry = Embedded(unit(1), 7)
    back = Embedded.unpack(entry.pack(), 4)
    assert back is not None and back.tokens == 7
    np.testing.assert_array_equal(back.vector, entry.vector)
    assert Embedded.unpack(entry.pack(), 8) is None  # a 384-dimension reader never takes a 4-dimension value


async def test_memory_is_bounded_in_bytes_and_lookups_count_hits_and_misses() -> None:
    metrics = Metrics(CollectorRegistry())
    per_entry = 4 * 4 + ENTRY_OVERHEAD + len(text_key("m", "a"))  # the vector, the overhead, the key
    store = EmbeddingStore(4, MemoryCache[Embedded](3 * per_entry, per_entry), None, metrics, ttl=60)
    texts = ["a", "b", "c", "d"]
    store.put("m", texts, np.stack([unit(i) for i in range(4)]), [1, 2, 3, 4])
    assert len(store) == 3  # the oldest went
    found = await store.get("m", texts)
    assert found[0] is None and [f.tokens for f in found[1:] if f is not None] == [2, 3, 4]
    assert metrics.embedding_store.labels("memory", "hit")._value.get() == 3
    assert metrics.embedding_store.labels("memory", "miss")._value.get() == 1
    assert await store.get("other-model", ["b"]) == [None]


async def test_a_stored_vector_is_a_copy_of_the_batch_row() -> None:
    store = EmbeddingStore(4, MemoryCache[Embedded](1 << 16, 1 << 16), None, Metrics(CollectorRegistry()), ttl=60)
    batch = np.stack([unit(1), unit(2)])
    store.put("m", ["x", "y"], batch, [1, 1])
    batch[:] = 0  # the caller's array is reused for the next answer
    found = (await store.get("m", ["x"]))[0]
    assert found is not None and np.linalg.norm(found.vector) > 0.99
