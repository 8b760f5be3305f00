"""One group's semantic entries: bounded per partition and in partitions, with expiry."""

from __future__ import annotations

import numpy as np

from interlock.cache.entry import CachedAnswer
from interlock.cache.semantic_entry import SemanticEntry, vector_bytes
from interlock.cache.semantic_memory import SemanticMemory


def entry(entry_id: str, partition: str = "p", expires: float = 100.0, axis: int = 0) -> SemanticEntry:
    vector = np.zeros(4, dtype=np.float32)
    vector[axis] = 1.0
    return SemanticEntry(entry_id, "m", partition, "q", vector_bytes(vector), CachedAnswer("json", b"{}"), expires)


QUERY = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)


def ids(memory: SemanticMemory, partition: str = "p", now: float = 0.0) -> set[str]:
    return {e.id for e, _ in memory.search(partition, QUERY, 10, now)}


def test_a_full_partition_drops_expired_entries_then_its_oldest() -> None:
    memory = SemanticMemory(4, max_entries=2, max_partitions=10)
    assert memory.add(entry("a", expires=5.0), 0.0) and memory.add(entry("b"), 0.0)
    assert not memory.add(entry("b"), 0.0)  # known already (read back from Redis)
    assert memory.add(entry("c"), 6.0)  # "a" expired: it makes the room
    assert ids(memory, now=6.0) == {"b", "c"}
    memory.add(entry("d"), 6.0)  # none expired: the oldest goes
    assert ids(memory, now=6.0) == {"c", "d"} and len(memory) == 2


def test_expired_entries_are_never_found_and_never_added() -> None:
    memory = SemanticMemory(4, max_entries=5, max_partitions=10)
    memory.add(entry("a", expires=5.0), 0.0)
    assert ids(memory, now=4.0) == {"a"} and ids(memory, now=5.0) == set()
    assert not memory.add(entry("b", expires=5.0), 5.0)


def test_the_least_recently_used_partition_goes_first() -> None:
    memory = SemanticMemory(4, max_entries=5, max_partitions=2)
    memory.add(entry("a", "p1"), 0.0)
    memory.add(entry("b", "p2"), 0.0)
    ids(memory, "p1")  # p1 used: p2 is now the least recent
    memory.add(entry("c", "p3"), 0.0)
    assert memory.partitions == 2 and ids(memory, "p1") == {"a"} and ids(memory, "p2") == set()
    assert memory.clear() == 2 and len(memory) == 0


def test_a_vector_of_another_size_is_not_kept() -> None:
    memory = SemanticMemory(4, max_entries=5, max_partitions=10)
    other = SemanticEntry("x", "m", "p", "q", vector_bytes(np.ones(3)), CachedAnswer("json", b"{}"), 100.0)
    assert not memory.add(other, 0.0) and len(memory) == 0
