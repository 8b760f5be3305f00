"""The semantic cache's nearest-neighbour index: one per partition, bounded, with expiry.

A partition is exact on everything but the last user turn (tenant, model group, parameters,
system prompt, earlier turns), so most partitions are small and a few, the popular one-turn
questions of a busy group, grow to tens of thousands of entries. The index serves both:

- Below `exact_limit` entries, exact search: one matrix-vector product over the stored rows and
  a partial sort. It is the fastest there and finds the true nearest neighbour.
- From there on, an HNSW graph (hnswlib). Exact search grows linearly (15.6 ms p50 at 100k here,
  fifteen times the 1 ms a lookup may take); the graph stays well under a millisecond. The graph
  is started at half the limit and fed the older entries two per `add`, so no single call builds
  it all at once, and search switches to it once it holds every entry.

Why hnswlib (measured by `bench/semantic/ann.py`, figures in `bench/semantic/README.md`): at
100k entries it searched in 0.20 ms p50 / 0.35 ms p99 against usearch's 0.85 / 1.60, built in a
third of the time, and replaced an entry in about the same 6 ms; faiss's HNSW cannot remove at
all. Graph labels are our row numbers: a removed entry is marked deleted and its row's next
entry re-adds the label, which hnswlib turns into moving that element and repairing its links
(`updatePoint`). That is the cost of an `add` into a full partition (one per miss that is
stored, each after an upstream call): several milliseconds at 100k entries, against a fraction
of one below. Tombstones are bounded: every deleted element is a row waiting for its next entry.
Vectors are kept here as well (float32 rows), so scores are exact cosines whichever search found
them, and expiry is checked against our own array.

Bounded: past `capacity` the oldest entry (by insertion) goes; re-adding an id replaces it and
makes it the newest. Removal frees the entry's row and graph node for the next add, so memory
is at most `capacity` rows (grown by doubling, not allocated up front: most partitions stay
small). Expired entries are skipped by `search`; the graph path also removes those it meets,
so they stop taking places in the candidate list.

No I/O and no locks: one index is used from one thread at a time (the event loop; search is
well under a millisecond and add about one).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_T = TypeVar("_T", bound=np.generic)

EXACT_LIMIT = 4096
_CATCH_UP = 2  # older entries fed to a graph under construction per add
_MIN_ROWS = 16
# HNSW parameters: 16 links a node, depth 100 when inserting, 64 when searching; recall@1 against
# exact search was 1.0 at 10k and 100k entries with these (bench/semantic/ann.py).
_LINKS = 16
_EF_CONSTRUCTION = 100
_EF_SEARCH = 64


class VectorIndex:
    __slots__ = (
        "_backlog",
        "_capacity",
        "_dimensions",
        "_exact_limit",
        "_expires",
        "_free",
        "_graph",
        "_ids",
        "_in_graph",
        "_rows",
        "_slots",
        "_vectors",
    )

    def __init__(self, dimensions: int, capacity: int, *, exact_limit: int = EXACT_LIMIT) -> None:
        if dimensions < 1 or capacity < 1 or exact_limit < 2:
            raise ValueError("dimensions and capacity must be positive, exact_limit at least 2")
        self._dimensions = dimensions
        self._capacity = capacity
        self._exact_limit = exact_limit
        self._vectors = np.zeros((0, dimensions), dtype=np.float32)
        self._expires = np.zeros(0, dtype=np.float64)  # -inf for a free row
        self._in_graph = np.zeros(0, dtype=np.bool_)
        self._ids: list[str | None] = []  # row -> entry id
        self._slots: dict[str, int] = {}  # entry id -> row, oldest first
        self._free: list[int] = []
        self._rows = 0  # rows ever used; free ones are in _free
        self._graph: Any = None  # hnswlib.Index, which has no type hints
        self._backlog: list[int] = []  # rows not yet in the graph under construction

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, entry_id: str, vector: NDArray[np.float32], expires: float) -> None:
        """Store `vector` (L2-normalised here if it is not) under `entry_id` until `expires`."""
        row_vector = self._unit(vector)
        if entry_id in self._slots:
            self.remove(entry_id)
        elif len(self._slots) >= self._capacity:
            self.remove(next(iter(self._slots)))
        row = self._take_row()
        self._vectors[row] = row_vector
        self._expires[row] = expires
        self._ids[row] = entry_id
        self._slots[entry_id] = row
        if self._graph is None and self._capacity >= self._exact_limit and len(self._slots) >= self._exact_limit // 2:
            self._graph = _new_graph(self._dimensions, len(self._vectors))
            self._backlog = [r for r in self._slots.values() if r != row]
        if self._graph is not None:
            self._graph_add(row)
            for _ in range(min(_CATCH_UP, len(self._backlog))):
                older = self._backlog.pop()
                if self._ids[older] is not None and not self._in_graph[older]:
                    self._graph_add(older)

    def remove(self, entry_id: str) -> None:
        row = self._slots.pop(entry_id, None)
        if row is None:
            return
        self._ids[row] = None
        self._expires[row] = -np.inf
        if self._graph is not None and self._in_graph[row]:
            self._graph.mark_deleted(row)
            self._in_graph[row] = False
        self._free.append(row)

    def search(self, vector: NDArray[np.float32], k: int, now: float) -> list[tuple[str, float]]:
        """Up to `k` entries not expired at `now`, as (id, cosine), best first."""
        if k < 1 or not self._slots:
            return []
        query = self._unit(vector)
        if self._graph is not None and not self._backlog and len(self._slots) >= self._exact_limit:
            return self._search_graph(query, k, now)
        return self._search_exact(query, k, now)

    def _search_exact(self, query: NDArray[np.float32], k: int, now: float) -> list[tuple[str, float]]:
        n = self._rows
        scores = self._vectors[:n] @ query
        scores[self._expires[:n] <= now] = -np.inf
        k = min(k, n)
        top = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._id(int(r)), float(scores[r])) for r in top if scores[r] > -np.inf]

    def _search_graph(self, query: NDArray[np.float32], k: int, now: float) -> list[tuple[str, float]]:
        # Ask for more than k: expired entries are dropped from the answer (and the graph).
        count = k + 8
        while True:
            count = min(count, len(self._slots))
            if count == 0:
                return []
            self._graph.set_ef(max(_EF_SEARCH, count))
            try:
                labels, _ = self._graph.knn_query(query, k=count, num_threads=1)
            except RuntimeError:
                # hnswlib raises when its search met fewer than `count` live elements (possible
                # with many deleted ones around the query); exact search has no such limit.
                return self._search_exact(query, k, now)
            rows = [int(r) for r in labels[0]]
            live = [r for r in rows if self._expires[r] > now]
            for r in rows:
                if self._expires[r] <= now:
                    self.remove(self._id(r))
            if len(live) >= k or count >= len(self._slots) + len(rows) - len(live):
                break  # enough, or every entry was seen
            count *= 4
        scores = self._vectors[live] @ query
        ranked = sorted(zip(scores.tolist(), live, strict=True), key=lambda s: -s[0])[:k]
        return [(self._id(r), score) for score, r in ranked]

    def _graph_add(self, row: int) -> None:
        if self._graph.get_current_count() >= self._graph.get_max_elements():
            self._graph.resize_index(len(self._vectors))  # rows are allocated by doubling, up to capacity
        self._graph.add_items(self._vectors[row : row + 1], np.array([row]), num_threads=1)
        self._in_graph[row] = True

    def _take_row(self) -> int:
        if self._free:
            return self._free.pop()
        row = self._rows
        if row == len(self._vectors):
            size = min(self._capacity, max(_MIN_ROWS, 2 * row))
            self._vectors = _grown(self._vectors, size)
            self._expires = _grown(self._expires, size, fill=-np.inf)
            self._in_graph = _grown(self._in_graph, size)
            self._ids.extend([None] * (size - len(self._ids)))
        self._rows += 1
        return row

    def _id(self, row: int) -> str:
        entry_id = self._ids[row]
        assert entry_id is not None
        return entry_id

    def _unit(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self._dimensions:
            raise ValueError(f"a vector of {v.shape[0]} dimensions for an index of {self._dimensions}")
        norm = float(np.linalg.norm(v))
        if not norm > 0.0 or not np.isfinite(norm):
            raise ValueError("a vector of zero or non-finite length has no direction")
        return v if abs(norm - 1.0) < 1e-4 else (v / norm).astype(np.float32)


def _new_graph(dimensions: int, size: int) -> Any:
    import hnswlib  # only partitions past half the exact limit need it

    graph = hnswlib.Index(space="ip", dim=dimensions)
    graph.init_index(max_elements=size, M=_LINKS, ef_construction=_EF_CONSTRUCTION, random_seed=100)
    graph.set_ef(_EF_SEARCH)
    graph.set_num_threads(1)
    return graph


def _grown(array: NDArray[_T], size: int, fill: float = 0) -> NDArray[_T]:
    grown = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown
