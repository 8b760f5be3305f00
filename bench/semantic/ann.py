"""Which nearest-neighbour search the semantic cache's `VectorIndex` uses, chosen by measurement.

    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1   # plus a directory holding hnswlib, usearch, faiss-cpu
    flock /tmp/interlock-bench.lock .venv/bin/python bench/semantic/ann.py [--sizes 10000 100000]

Each (library, size) runs in a subprocess of its own, so its resident memory is its own: build time,
the resident-memory growth over the vectors alone (numpy keeps nothing else), single-query lookup
p50/p99 (k=4, one query at a time, as a request asks), recall@1 against exact search, and recall@1
after a quarter of the entries were replaced (removal and re-adding, the cache's churn).

The vectors are synthetic but shaped like a cache's: unit vectors in clusters (cosine about 0.7 to
their centre, like texts on one topic), queries half near a stored entry (cosine about 0.93, a
paraphrase: the hit a cache wants) and half new texts from the same topics (the near miss).
Embedding 100k real prompts with MiniLM would take half an hour of this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

DIM = 384
K = 4
QUERIES = 2000


def clustered(n: int, rng: np.random.Generator, centres: NDArray[np.float32], spread: float) -> NDArray[np.float32]:
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(0.0, spread, (n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def dataset(n: int, seed: int = 7) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (max(n // 50, 20), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = clustered(n, rng, centres, 0.052)
    near = data[rng.integers(0, n, QUERIES // 2)] + rng.normal(0.0, 0.02, (QUERIES // 2, DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    queries = np.concatenate([near, clustered(QUERIES - QUERIES // 2, rng, centres, 0.052)]).astype(np.float32)
    return data, queries


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class Exact:
    def __init__(self, data: NDArray[np.float32]) -> None:
        self.data = np.ascontiguousarray(data)

    def search(self, q: NDArray[np.float32]) -> int:
        scores = self.data @ q
        top = np.argpartition(scores, -K)[-K:]
        return int(top[np.argmax(scores[top])])

    def replace(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        self.data[labels] = vectors


class Hnsw:
    def __init__(self, data: NDArray[np.float32]) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=DIM)
        self.index.init_index(max_elements=len(data), M=16, ef_construction=100, allow_replace_deleted=True)
        self.next = len(data)
        self.slots: dict[int, int] = {}  # hnswlib label -> the entry's original position
        self.index.set_num_threads(1)
        self.index.add_items(data, np.arange(len(data)))
        self.index.set_ef(64)

    def search(self, q: NDArray[np.float32]) -> int:
        labels, _ = self.index.knn_query(q, k=K)
        return self.slots.get(int(labels[0][0]), int(labels[0][0]))

    def replace(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        for label, v in zip(labels, vectors, strict=True):
            # A new label into the deleted one's place: re-adding a deleted label moves the point
            # in the graph instead (updatePoint), 20 times slower measured here.
            self.index.mark_deleted(int(label))
            self.index.add_items(v, self.next, replace_deleted=True)
            self.slots[self.next] = int(label)
            self.next += 1


class USearch:
    def __init__(self, data: NDArray[np.float32]) -> None:
        from usearch.index import Index

        self.index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_add=100, expansion_search=64)
        self.index.add(np.arange(len(data)), data, threads=1)

    def search(self, q: NDArray[np.float32]) -> int:
        return int(self.index.search(q, K, threads=1).keys[0])

    def replace(self, labels: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        for label, v in zip(labels, vectors, strict=True):
            self.index.remove(int(label))
            self.index.add(int(label), v, threads=1)


class Faiss:
    """IndexHNSWFlat cannot remove entries, so churn is not measured for it."""

    def __init__(self, data: NDArray[np.float32]) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = 100
        self.index.add(data)
        self.index.hnsw.efSearch = 64

    def search(self, q: NDArray[np.float32]) -> int:
        _, labels = self.index.search(q[None, :], K)
        return int(labels[0][0])

    replace = None


KINDS: dict[str, Any] = {"numpy": Exact, "hnswlib": Hnsw, "usearch": USearch, "faiss": Faiss}


def one(kind: str, n: int) -> dict[str, Any]:
    data, queries = dataset(n)
    truth = Exact(data.copy())
    before = rss_bytes()
    t = time.perf_counter()
    index = KINDS[kind](data.copy())
    build_s = time.perf_counter() - t
    memory = rss_bytes() - before
    for q in queries[:100]:
        index.search(q)
    times = []
    got = []
    for q in queries:
        t0 = time.perf_counter_ns()
        got.append(index.search(q))
        times.append(time.perf_counter_ns() - t0)
    hits = sum(g == truth.search(q) for g, q in zip(got, queries, strict=True))
    out: dict[str, Any] = {"kind": kind, "n": n, "build_s": round(build_s, 2), "memory_mb": round(memory / 2**20, 1)}
    out["p50_us"] = round(float(np.percentile(times, 50)) / 1000, 1)
    out["p99_us"] = round(float(np.percentile(times, 99)) / 1000, 1)
    out["recall1"] = hits / len(queries)
    if index.replace is not None:
        rng = np.random.default_rng(11)
        labels = rng.choice(n, n // 4, replace=False)
        fresh, _ = dataset(n // 4, seed=13)
        t = time.perf_counter()
        index.replace(labels, fresh)
        out["replace_us"] = round((time.perf_counter() - t) / len(labels) * 1e6, 1)
        truth.replace(labels, fresh)
        out["recall1_churned"] = sum(index.search(q) == truth.search(q) for q in queries) / len(queries)
    return out


def each_in_subprocess(script: str, kinds: list[str], sizes: list[int]) -> list[dict[str, Any]]:
    """`script --one KIND N` for every size and kind, each in a process of its own (so its memory is
    its own): the JSON rows they print, in order; a failing one is reported and left out."""
    rows = []
    for n in sizes:
        for kind in kinds:
            done = subprocess.run([sys.executable, script, "--one", kind, str(n)], capture_output=True, text=True)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout))
            print(rows[-1], file=sys.stderr)
    return rows


def rows_from_arguments(script: str, kinds: list[str], one: Any) -> list[dict[str, Any]] | None:
    """The command line both ANN benchmarks take: `--one KIND N` runs `one(kind, n)` here and prints
    its row (returning None); otherwise every `--kinds` at every `--sizes`, each in a subprocess."""
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--kinds", nargs="+", default=kinds)
    p.add_argument("--one", nargs=2, metavar=("KIND", "N"))
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], int(a.one[1]))))
        return None
    return each_in_subprocess(script, a.kinds, a.sizes)


def main() -> None:
    rows = rows_from_arguments(__file__, list(KINDS), one)
    if rows is None:
        return
    print(
        "| library | entries | build s | memory MB | lookup p50 us | p99 us | recall@1 | replace us | recall@1 after churn |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = [
            r["kind"],
            r["n"],
            r["build_s"],
            r["memory_mb"],
            r["p50_us"],
            r["p99_us"],
            r["recall1"],
            r.get("replace_us", "-"),
            r.get("recall1_churned", "-"),
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
