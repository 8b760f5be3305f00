"""Which nearest-neighbour index the embedded vector store (retrieval/sqlite_catalog.py) uses.

    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1   # plus usearch, sqlite-vec and apsw for those kinds
    flock /tmp/interlock-bench.lock .venv/bin/python bench/rag/ann.py [--sizes 10000 100000]

Each (library, size) runs in a subprocess of its own. For each: the build time, the time to save the
index to disk and load it back (a store must survive restarts without a rebuild), single-query
search p50/p99 at k=10 (one query at a time, as a request asks), and recall@10 against exact search.
The vectors are bench/semantic/ann.py's clustered unit vectors (texts on topics), queries half near
a stored vector and half new texts from the same topics.

sqlite-vec is loaded through apsw: the CPython here (and many others) is built without
`enable_load_extension`, so the standard library's sqlite3 cannot load it at all.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "semantic"))
from ann import DIM, dataset, rows_from_arguments

K = 10


def exact_top(data: NDArray[np.float32], q: NDArray[np.float32]) -> set[int]:
    scores = data @ q
    return {int(i) for i in np.argpartition(scores, -K)[-K:]}


class Exact:
    def __init__(self, data: NDArray[np.float32], tmp: Path) -> None:
        self.data, self.path = data, tmp / "vectors.npy"

    def search(self, q: NDArray[np.float32]) -> list[int]:
        scores = self.data @ q
        top = np.argpartition(scores, -K)[-K:]
        return [int(i) for i in top[np.argsort(-scores[top])]]

    def persist(self) -> None:
        np.save(self.path, self.data)
        self.data = np.load(self.path)


class Hnsw:
    def __init__(self, data: NDArray[np.float32], tmp: Path, ef: int = 64) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=DIM)
        self.index.init_index(max_elements=len(data), M=16, ef_construction=100, allow_replace_deleted=True)
        self.index.set_num_threads(1)
        self.index.add_items(data, np.arange(len(data)))
        self.index.set_ef(ef)
        self.ef, self.path, self.n = ef, tmp / "index.hnsw", len(data)

    def search(self, q: NDArray[np.float32]) -> list[int]:
        labels, _ = self.index.knn_query(q, k=K, num_threads=1)
        return [int(x) for x in labels[0]]

    def persist(self) -> None:
        import hnswlib

        self.index.save_index(str(self.path))
        self.index = hnswlib.Index(space="ip", dim=DIM)
        self.index.load_index(str(self.path), max_elements=self.n, allow_replace_deleted=True)
        self.index.set_ef(self.ef)


class Hnsw128(Hnsw):
    def __init__(self, data: NDArray[np.float32], tmp: Path) -> None:
        super().__init__(data, tmp, ef=128)


class USearch:
    def __init__(self, data: NDArray[np.float32], tmp: Path) -> None:
        from usearch.index import Index

        self.index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_add=100, expansion_search=64)
        self.index.add(np.arange(len(data)), data, threads=1)
        self.path = tmp / "index.usearch"

    def search(self, q: NDArray[np.float32]) -> list[int]:
        return [int(x) for x in self.index.search(q, K, threads=1).keys]

    def persist(self) -> None:
        from usearch.index import Index

        self.index.save(str(self.path))
        self.index = Index.restore(str(self.path))
        self.index.expansion_search = 64


class SqliteVec:
    """vec0's KNN is exact (a scan over the stored vectors), so its recall is 1 by construction."""

    def __init__(self, data: NDArray[np.float32], tmp: Path) -> None:
        import apsw
        import sqlite_vec

        self.path = tmp / "vec.sqlite3"
        self.db = apsw.Connection(str(self.path))
        self.db.enable_load_extension(True)
        self.db.load_extension(sqlite_vec.loadable_path())
        self.db.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIM}] distance_metric=cosine)")
        with self.db:
            self.db.executemany(
                "INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, row.tobytes()) for i, row in enumerate(data))
            )

    def search(self, q: NDArray[np.float32]) -> list[int]:
        rows = self.db.execute(
            "SELECT rowid FROM v WHERE embedding MATCH ? AND k = ? ORDER BY distance", (q.tobytes(), K)
        )
        return [int(r[0]) for r in rows]

    def persist(self) -> None:
        import apsw
        import sqlite_vec

        self.db.close()
        self.db = apsw.Connection(str(self.path))
        self.db.enable_load_extension(True)
        self.db.load_extension(sqlite_vec.loadable_path())


KINDS: dict[str, Any] = {
    "numpy": Exact,
    "hnswlib": Hnsw,
    "hnswlib-ef128": Hnsw128,
    "usearch": USearch,
    "sqlite-vec": SqliteVec,
}


def one(kind: str, n: int) -> dict[str, Any]:
    data, queries = dataset(n)
    queries = queries[:1000]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index = KINDS[kind](data.copy(), Path(tmp))
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        index.persist()
        persist_s = time.perf_counter() - t
        for q in queries[:50]:
            index.search(q)
        times, hits = [], 0
        for q in queries:
            t0 = time.perf_counter_ns()
            got = index.search(q)
            times.append(time.perf_counter_ns() - t0)
            hits += len(set(got) & exact_top(data, q))
    return {
        "kind": kind, "n": n, "build_s": round(build_s, 1), "save_load_s": round(persist_s, 2),
        "p50_ms": round(float(np.percentile(times, 50)) / 1e6, 3), "p99_ms": round(float(np.percentile(times, 99)) / 1e6, 3),
        "recall10": round(hits / (K * len(queries)), 4),
    }  # fmt: skip


def main() -> None:
    rows = rows_from_arguments(__file__, list(KINDS), one)
    if rows is None:
        return
    print("| index | vectors | build s | save+load s | search p50 ms | p99 ms | recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = [r["kind"], r["n"], r["build_s"], r["save_load_s"], r["p50_ms"], r["p99_ms"], r["recall10"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
