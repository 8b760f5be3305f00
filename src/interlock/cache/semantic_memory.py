"""One model group's semantic entries in this process: a vector index per partition, bounded.

Bounds: `max_entries` per partition (the oldest entry goes first, after any that expired),
`max_partitions` (the least recently used partition goes first, whole), and `max_bytes` over all
of them (answers, texts and vectors; the least recently used partition's oldest entries go
first), so ten thousand partitions of a thousand entries cannot hold the process's memory. Expired entries are
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

ENTRY_OVERHEAD = 256  # bytes an entry costs beyond its text, vector and answer (objects, index slot)


def entry_bytes(entry: SemanticEntry) -> int:
    return len(entry.text) + len(entry.vector) + entry.answer.size() + ENTRY_OVERHEAD


class _Partition:
    __slots__ = ("bytes", "entries", "index")

    def __init__(self, dimensions: int, capacity: int) -> None:
        self.index = VectorIndex(dimensions, capacity)
        self.entries: dict[str, SemanticEntry] = {}  # in the order they were added
        self.bytes = 0

    def remove(self, entry_id: str) -> int:
        """Forget one entry; the bytes it held."""
        size = entry_bytes(self.entries.pop(entry_id))
        self.index.remove(entry_id)
        self.bytes -= size
        return size


class SemanticMemory:
    __slots__ = ("_dimensions", "_max_bytes", "_max_entries", "_max_partitions", "_partitions", "bytes")

    def __init__(self, dimensions: int, max_entries: int, max_partitions: int, max_bytes: int = 1 << 62) -> None:
        self._dimensions = dimensions
        self._max_entries = max_entries
        self._max_partitions = max_partitions
        self._max_bytes = max_bytes
        self._partitions: OrderedDict[str, _Partition] = OrderedDict()
        self.bytes = 0

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
        size = entry_bytes(entry)
        if size > self._max_bytes:
            return False
        part = self._partitions.get(entry.partition)
        if part is None:
            part = self._partitions[entry.partition] = _Partition(self._dimensions, self._max_entries)
            while len(self._partitions) > self._max_partitions:
                self.bytes -= self._partitions.popitem(last=False)[1].bytes
        elif entry.id in part.entries:
            return False
        self._partitions.move_to_end(entry.partition)
        if len(part.entries) >= self._max_entries:
            for expired in [i for i, e in part.entries.items() if e.expires <= now]:
                self.bytes -= part.remove(expired)
            if len(part.entries) >= self._max_entries:
                self.bytes -= part.remove(next(iter(part.entries)))
        part.index.add(entry.id, entry.array(), entry.expires)
        part.entries[entry.id] = entry
        part.bytes += size
        self.bytes += size
        self._shrink(keep=entry.partition)
        return True

    def _shrink(self, keep: str) -> None:
        """Within max_bytes: the oldest entries of the least recently used partitions go first
        (the one just added to, last)."""
        while self.bytes > self._max_bytes:
            name, part = next(iter(self._partitions.items()))
            if name == keep and len(self._partitions) > 1:
                self._partitions.move_to_end(name)
                continue
            self.bytes -= part.remove(next(iter(part.entries)))
            if not part.entries:
                del self._partitions[name]

    def clear(self) -> int:
        """Forget every entry; how many there were."""
        n = len(self)
        self._partitions.clear()
        self.bytes = 0
        return n
