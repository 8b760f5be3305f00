"""One model group's semantic entries in this process: a vector index per partition, bounded.

Bounds: `max_entries` per partition (the oldest entry goes first, after any that expired) and
`max_partitions` (the least recently used partition goes first, whole). Expired entries are
never returned (the index compares `expires` with the time of the search) and are swept when a
full partition needs room. Everything here runs on the event loop and is quick: a search over a
partition of at most `max_entries` vectors of 384 floats.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from numpy.typing import NDArray

from .semantic_entry import SemanticEntry
from .semantic_index import VectorIndex


class _Partition:
    __slots__ = ("entries", "index")

    def __init__(self, dimensions: int, capacity: int) -> None:
        self.index = VectorIndex(dimensions, capacity)
        self.entries: dict[str, SemanticEntry] = {}  # in the order they were added

    def remove(self, entry_id: str) -> None:
        del self.entries[entry_id]
        self.index.remove(entry_id)


class SemanticMemory:
    __slots__ = ("_dimensions", "_max_entries", "_max_partitions", "_partitions")

    def __init__(self, dimensions: int, max_entries: int, max_partitions: int) -> None:
        self._dimensions = dimensions
        self._max_entries = max_entries
        self._max_partitions = max_partitions
        self._partitions: OrderedDict[str, _Partition] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(p.entries) for p in self._partitions.values())

    @property
    def partitions(self) -> int:
        return len(self._partitions)

    def search(self, partition: str, vector: NDArray[Any], k: int, now: float) -> list[tuple[SemanticEntry, float]]:
        """The `k` nearest live entries of the partition, most similar first."""
        part = self._partitions.get(partition)
        if part is None:
            return []
        self._partitions.move_to_end(partition)
        found = part.index.search(vector, k, now)
        return [(part.entries[i], score) for i, score in found if i in part.entries]

    def add(self, entry: SemanticEntry, now: float) -> bool:
        """Keep `entry` (False: it expired already, its vector is another model's, or it is known:
        a process reads its own entries back from Redis)."""
        if entry.expires <= now or len(entry.vector) != self._dimensions * 4:  # float32: another model's
            return False
        part = self._partitions.get(entry.partition)
        if part is None:
            part = self._partitions[entry.partition] = _Partition(self._dimensions, self._max_entries)
            while len(self._partitions) > self._max_partitions:
                self._partitions.popitem(last=False)
        elif entry.id in part.entries:
            return False
        self._partitions.move_to_end(entry.partition)
        if len(part.entries) >= self._max_entries:
            for expired in [i for i, e in part.entries.items() if e.expires <= now]:
                part.remove(expired)
            if len(part.entries) >= self._max_entries:
                part.remove(next(iter(part.entries)))
        part.index.add(entry.id, entry.array(), entry.expires)
        part.entries[entry.id] = entry
        return True

    def clear(self) -> int:
        """Forget every entry; how many there were."""
        n = len(self)
        self._partitions.clear()
        return n
