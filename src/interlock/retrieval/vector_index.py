"""One vector store's chunks in memory for search: their vectors, which file each belongs to, and
an HNSW graph (hnswlib) that can be saved beside the catalog and loaded back.

The SQLite catalog owns the truth (every chunk's text and vector are rows there); this is the
search structure built from it, one per store, used from the catalog's one worker thread only,
so it takes no locks. Chunks live in numbered slots, the graph's labels: a removed chunk's slot
is marked deleted in the graph and reused by a later chunk (re-adding a deleted label makes
hnswlib move that node and repair its links, several milliseconds at 100k, against a fraction of
one for a new label), so tombstones are bounded by the slots waiting for their next chunk.

Which search (figures from bench/rag/ann.py in bench/RESULTS.md, "Vector stores"):

- Below `EXACT_LIMIT` candidate chunks, exact search: one matrix-vector product over those rows and
  a partial sort, recall 1 by construction and about 1.5 ms at 10k.
- Above it, the graph, with `ef` at least 64 and at least k: at 100k vectors 0.44 ms p50 and
  4.6 ms p99 on a busy machine, where exact search took 14 and 34 ms, with recall@10 of 1.0
  against exact search on clustered vectors (bench/rag/run.py checks it on real embeddings).

Which chunks a search may return: those of files whose store file is `completed` (a file being
ingested, or failed part way, is not searched) and, with an attribute filter, whose store file's
attributes pass it. Filters are evaluated once per file, not per chunk. When the chunks that pass
are few (at most `EXACT_LIMIT`) they are searched exactly, gathered by slot: filter first, then
exact, so a selective filter still returns k results when k exist. Otherwise the graph is
searched with hnswlib's filter callback, which skips the chunks that do not pass while it walks;
at that size (more than `EXACT_LIMIT` passing) the walk still finds k neighbours.

Scores are always the exact cosines of our own float32 rows (unit vectors: the dot product),
whichever search found the slots.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from interlock.retrieval.types import Attribute

EXACT_LIMIT = 10_000
_LINKS = 16
_EF_CONSTRUCTION = 100
_EF_SEARCH = 64
_MIN_ROWS = 64


def chunk_rows(count: int, vectors: NDArray[Any], dimensions: int) -> NDArray[np.float32]:
    """What every catalog checks of `add_chunks`'s vectors: one finite row of `dimensions` a chunk."""
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    if rows.ndim != 2 or rows.shape != (count, dimensions):
        raise ValueError(f"vectors must be {count} rows of {dimensions}, one per chunk")
    if not np.isfinite(rows).all():
        raise ValueError("vectors must be finite")
    return rows


def query_row(vector: NDArray[Any], dimensions: int) -> NDArray[np.float32]:
    """A search's query vector as one float32 row, or ValueError."""
    query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if query.shape != (dimensions,):
        raise ValueError(f"the query vector must have {dimensions} dimensions")
    return query


@dataclass(slots=True)
class FileEntry:
    number: int  # small integer standing for the file in `_file_of`
    completed: bool
    attributes: dict[str, Attribute]
    slots: dict[int, int] = field(default_factory=dict)  # chunk index -> slot


class StoreIndex:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._vectors = np.zeros((0, dimensions), dtype=np.float32)
        self._file_of = np.zeros(0, dtype=np.int32)  # slot -> file number, -1 when free
        self._visible = np.zeros(0, dtype=np.bool_)  # slot holds a chunk of a completed file
        self._chunk_of: list[tuple[str, int] | None] = []  # slot -> (file id, chunk index)
        self._free: list[int] = []
        self._used = 0  # slots ever used; free ones below it are in _free
        self._files: dict[str, FileEntry] = {}
        self._numbers: dict[int, str] = {}
        self._next_number = 0
        self._graph: Any = None  # hnswlib.Index (no type hints)
        self._in_graph = np.zeros(0, dtype=np.bool_)

    def __len__(self) -> int:
        return self._used - len(self._free)

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory: its vectors twice (ours and the graph's copy) and
        the graph's base-layer links (2 * M ids of 4 bytes a row)."""
        return 2 * self._vectors.nbytes + len(self._vectors) * 2 * _LINKS * 4

    @property
    def visible(self) -> int:
        return int(self._visible[: self._used].sum())

    # Files: their status and attributes, which decide what a search may return.

    def set_file(self, file_id: str, completed: bool, attributes: Mapping[str, Attribute]) -> None:
        entry = self._files.get(file_id)
        if entry is None:
            entry = self._files[file_id] = FileEntry(self._next_number, completed, dict(attributes))
            self._numbers[entry.number] = file_id
            self._next_number += 1
        entry.completed, entry.attributes = completed, dict(attributes)
        if entry.slots:
            self._visible[list(entry.slots.values())] = completed

    def drop_file(self, file_id: str) -> list[int]:
        """Forget the file and remove its chunks; their slots, which the catalog deletes too."""
        entry = self._files.pop(file_id, None)
        if entry is None:
            return []
        del self._numbers[entry.number]
        slots = list(entry.slots.values())
        self.remove(slots)
        return slots

    def file_slots(self, file_id: str) -> list[int]:
        """The slots of every chunk the file has in this store."""
        entry = self._files.get(file_id)
        return [] if entry is None else list(entry.slots.values())

    # Chunks

    def take_slots(self, n: int) -> list[int]:
        """Slots for `n` new chunks (free ones first). Not used until `put`; `give_back` if the
        catalog's write fails."""
        reused = [self._free.pop() for _ in range(min(n, len(self._free)))]
        fresh = list(range(self._used, self._used + n - len(reused)))
        self._used += len(fresh)
        self._grow(self._used)
        for slot in fresh:
            self._file_of[slot] = -1
        return reused + fresh

    def give_back(self, slots: Sequence[int]) -> None:
        self._free.extend(s for s in slots if self._chunk_of[s] is None)

    def put(self, slots: Sequence[int], file_id: str, indexes: Sequence[int], vectors: NDArray[np.float32]) -> None:
        """Chunks of a file, into slots from `take_slots`; the file must have been `set_file`."""
        entry = self._files[file_id]
        rows = np.asarray(slots, dtype=np.int64)
        self._vectors[rows] = vectors
        self._file_of[rows] = entry.number
        self._visible[rows] = entry.completed
        for slot, index in zip(slots, indexes, strict=True):
            self._chunk_of[slot] = (file_id, index)
            entry.slots[index] = slot
        self._graph_add(rows)

    def remove(self, slots: Sequence[int]) -> None:
        for slot in slots:
            chunk = self._chunk_of[slot]
            if chunk is None:
                continue
            entry = self._files.get(chunk[0])
            if entry is not None:
                entry.slots.pop(chunk[1], None)
            self._chunk_of[slot] = None
            self._file_of[slot] = -1
            self._visible[slot] = False
            if self._in_graph[slot]:
                self._graph.mark_deleted(slot)
                self._in_graph[slot] = False
            self._free.append(slot)

    def chunk(self, slot: int) -> tuple[str, int]:
        chunk = self._chunk_of[slot]
        assert chunk is not None
        return chunk

    def attributes(self, file_id: str) -> dict[str, Attribute]:
        return self._files[file_id].attributes

    # Search

    def search(
        self, query: NDArray[np.float32], k: int, passes: Callable[[Mapping[str, Attribute]], bool] | None = None
    ) -> list[tuple[int, float]]:
        """Up to `k` (slot, cosine) of visible chunks whose file's attributes `passes`, best first."""
        n = self._used
        if k < 1 or n == 0:
            return []
        if passes is None:
            mask = self._visible[:n]
        else:
            allowed = [e.number for e in self._files.values() if e.completed and e.slots and passes(e.attributes)]
            mask = self._visible[:n] & np.isin(self._file_of[:n], allowed)
        count = int(mask.sum())
        if count == 0:
            return []
        if count <= EXACT_LIMIT or self._graph is None:
            return self._exact(query, k, np.flatnonzero(mask))
        everything_visible = passes is None and count == len(self)
        found = self._search_graph(query, min(k, count), None if everything_visible else mask)
        if found is None:
            return self._exact(query, k, np.flatnonzero(mask))
        scores = self._vectors[found] @ query
        order = np.argsort(-scores, kind="stable")
        return [(int(found[i]), float(scores[i])) for i in order]

    def _exact(self, query: NDArray[np.float32], k: int, rows: NDArray[np.intp]) -> list[tuple[int, float]]:
        scores = self._vectors[rows] @ query if len(rows) < self._used else self._vectors[: self._used] @ query
        k = min(k, len(rows))
        top = np.argpartition(scores, len(scores) - k)[len(scores) - k :] if k < len(scores) else np.arange(len(rows))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(rows[i]), float(scores[i])) for i in top]

    def _search_graph(
        self, query: NDArray[np.float32], k: int, mask: NDArray[np.bool_] | None
    ) -> NDArray[np.intp] | None:
        self._graph.set_ef(max(_EF_SEARCH, k))
        keep = None if mask is None else (lambda label: bool(mask[label]))
        try:
            labels, _ = self._graph.knn_query(query, k=k, num_threads=1, filter=keep)
        except RuntimeError:  # fewer than k reachable through the filter: exact over what passes
            return None
        found: NDArray[np.intp] = labels[0].astype(np.intp)
        return found

    # The graph

    def _grow(self, rows: int) -> None:
        if rows <= len(self._vectors):
            return
        size = max(_MIN_ROWS, len(self._vectors))
        while size < rows:
            size *= 2
        extra = size - len(self._vectors)
        self._vectors = np.concatenate([self._vectors, np.zeros((extra, self.dimensions), dtype=np.float32)])
        self._file_of = np.concatenate([self._file_of, np.full(extra, -1, dtype=np.int32)])
        self._visible = np.concatenate([self._visible, np.zeros(extra, dtype=np.bool_)])
        self._in_graph = np.concatenate([self._in_graph, np.zeros(extra, dtype=np.bool_)])
        self._chunk_of.extend([None] * extra)
        if self._graph is not None:
            self._graph.resize_index(size)

    def _graph_add(self, rows: NDArray[np.int64], threads: int = 1) -> None:
        if self._graph is None:
            self._graph = _new_graph(self.dimensions, len(self._vectors))
        if len(rows):
            self._graph.add_items(self._vectors[rows], rows, num_threads=threads)
            self._in_graph[rows] = True

    def save(self, path: Path) -> None:
        """The graph to `path` (through a temporary file and a rename, so a crash leaves the old one)."""
        if self._graph is None:
            return
        tmp = path.with_name(path.name + ".tmp")
        self._graph.save_index(str(tmp))
        os.replace(tmp, path)

    @classmethod
    def build(
        cls,
        dimensions: int,
        files: Mapping[str, tuple[bool, Mapping[str, Attribute]]],
        chunks: Sequence[tuple[int, str, int, bytes]],
        graph: Path | None,
    ) -> StoreIndex:
        """The index of a store from the catalog's rows: its files (completed, attributes) and its
        chunks (slot, file id, chunk index, float32 vector bytes). `graph` is a saved graph of
        exactly these chunks, or None to build one (all cores: this is a restart's one-off)."""
        index = cls(dimensions)
        for file_id, (completed, attributes) in files.items():
            index.set_file(file_id, completed, attributes)
        top = max((slot for slot, _, _, _ in chunks), default=-1) + 1
        index._used = top
        index._grow(top)
        used = np.zeros(top, dtype=np.bool_)
        for slot, file_id, chunk_index, vector in chunks:
            entry = index._files[file_id]
            index._vectors[slot] = np.frombuffer(vector, dtype=np.float32)
            index._file_of[slot] = entry.number
            index._visible[slot] = entry.completed
            index._chunk_of[slot] = (file_id, chunk_index)
            entry.slots[chunk_index] = slot
            used[slot] = True
        index._free = [int(s) for s in np.flatnonzero(~used)][::-1]
        rows = np.flatnonzero(used)
        if graph is not None and graph.exists():
            # Saved at this very version: it holds exactly these slots (freed ones marked deleted).
            index._graph = _new_graph(dimensions, len(index._vectors), load=graph)
            index._in_graph[rows] = True
        else:
            index._graph_add(rows.astype(np.int64), threads=-1)
        return index


def _new_graph(dimensions: int, capacity: int, *, load: Path | None = None) -> Any:
    import hnswlib

    graph = hnswlib.Index(space="ip", dim=dimensions)
    if load is not None:
        graph.load_index(str(load), max_elements=capacity)
    else:
        graph.init_index(max_elements=max(capacity, _MIN_ROWS), M=_LINKS, ef_construction=_EF_CONSTRUCTION)
    graph.set_ef(_EF_SEARCH)
    return graph
