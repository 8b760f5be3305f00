"""Vector stores: retrieval quality on a corpus with known answers, ingestion speed, search latency.

    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1
    flock /tmp/interlock-bench.lock .venv/bin/python bench/rag/run.py            # everything
    ... run.py --chunking 128/32 192/48 254/64 --stores exact                    # choosing `auto`
    ... run.py --skip-quality --sizes 10000 100000                               # latency only

Quality: `corpus.py`'s documents are chunked (`retrieval/chunking.py`, the MiniLM tokenizer) and
embedded with the real all-MiniLM-L6-v2 (`MiniLmEmbedder` directly, batches of 32, one BLAS
thread), its questions too; each question retrieves 10 chunks from each store: exact brute force
(numpy over every chunk vector, the ceiling), the SQLite catalog and the pgvector catalog, both
through `Catalog.search` with the same vectors. The corpus is a few hundred chunks, which both
catalogs search exactly (below their 10k limit), so `sqlite-hnsw` and `pg-hnsw` run the same
search with that limit at 0: the graph, as a store past 10k chunks would use it. A chunk answers when it is from the question's
document and contains the answer as written. recall@5: some answering chunk in the first 5; MRR:
the mean of 1/rank of the first answering chunk in the 10 (0 when none).

Ingestion: chunks per second of chunking plus embedding (the catalog's own write is timed apart).

Latency: `Catalog.search` (k=10, one query at a time, the asyncio hop to the worker thread or the
pool included) over stores of 10k and 100k chunks whose vectors are bench/semantic/ann.py's
clustered unit vectors (embedding 100k real chunks would take hours of this machine's cores), 100
chunks a file; p50 and p99 over 500 queries, and which search path served them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "semantic"))
from ann import dataset
from corpus import Question, build

from interlock.embeddings.minilm import MiniLmEmbedder
from interlock.retrieval import pg_catalog, vector_index
from interlock.retrieval.chunking import AUTO, Chunker, ChunkingStrategy, static
from interlock.retrieval.pg_catalog import PgCatalog
from interlock.retrieval.sqlite_catalog import SqliteCatalog
from interlock.retrieval.types import Catalog, Chunk, FileRecord, StoreFileRecord, StoreRecord

EXACT_LIMITS = (vector_index.EXACT_LIMIT, pg_catalog.EXACT_LIMIT)
DSN = "postgresql://postgres@127.0.0.1:5432/test"
TENANT = "bench"
K = 10


def answers(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value)}(?!\w|\.\d)", text) is not None


def metrics(ranked: Sequence[Sequence[tuple[str, str]]], questions: Sequence[Question]) -> tuple[float, float]:
    """recall@5 and MRR@10 from each question's (document id, chunk text) list, best first."""
    recall = mrr = 0.0
    for hits, q in zip(ranked, questions, strict=True):
        ranks = [i for i, (doc, text) in enumerate(hits[:K]) if doc == q.document and answers(text, q.answer)]
        if ranks:
            recall += ranks[0] < 5
            mrr += 1.0 / (ranks[0] + 1)
    return recall / len(questions), mrr / len(questions)


def strategy(spec: str) -> ChunkingStrategy:
    if spec == "auto":
        return AUTO
    size, overlap = spec.split("/")
    return static(int(size), int(overlap))


async def fill(catalog: Catalog, store: str, files: dict[str, tuple[list[Chunk], np.ndarray]]) -> float:
    """Put a store of these files (all completed) into the catalog; seconds the chunks took."""
    await catalog.put_store(StoreRecord(id=store, tenant=TENANT, name=store, data_class="internal", created_at=1))
    spent = 0.0
    for n, (file_id, (chunks, vectors)) in enumerate(files.items()):
        record = FileRecord(id=file_id, tenant=TENANT, filename=f"{file_id}.txt", purpose="assistants", bytes=1,
                            created_at=n)  # fmt: skip
        await catalog.put_file(record, b"x")
        link = StoreFileRecord(store_id=store, file_id=file_id, tenant=TENANT, status="in_progress", created_at=n)
        await catalog.put_store_file(link)
        t = time.perf_counter()
        await catalog.add_chunks(TENANT, store, file_id, chunks, vectors)
        spent += time.perf_counter() - t
        await catalog.put_store_file(StoreFileRecord(store_id=store, file_id=file_id, tenant=TENANT, status="completed",
                                                     created_at=n))  # fmt: skip
    return spent


async def open_store(kind: str, tmp: Path) -> Catalog:
    """A started, empty catalog; `-hnsw` kinds search their graph whatever the store's size."""
    vector_index.EXACT_LIMIT = 0 if kind == "sqlite-hnsw" else EXACT_LIMITS[0]
    pg_catalog.EXACT_LIMIT = 0 if kind == "pg-hnsw" else EXACT_LIMITS[1]
    catalog: Catalog
    if kind.startswith("sqlite"):
        catalog = SqliteCatalog(tmp / f"rag-{secrets.token_hex(3)}")
    else:
        catalog = PgCatalog(DSN, schema=f"rag_bench_{secrets.token_hex(4)}")
    await catalog.start()
    return catalog


async def drop(catalog: Catalog) -> None:
    await catalog.close()
    if isinstance(catalog, PgCatalog):
        import asyncpg

        conn = await asyncpg.connect(DSN)
        await conn.execute(f"DROP SCHEMA {catalog._s} CASCADE")
        await conn.close()


async def quality(args: argparse.Namespace, tmp: Path) -> None:
    docs, questions = build(args.docs, args.questions)
    chunker, embedder = Chunker(), MiniLmEmbedder(batch_size=32)
    embedder.load()
    chunker.count("warm")
    vector_index.StoreIndex(384)._graph_add(np.zeros(0, dtype=np.int64))  # import hnswlib before timing writes
    t = time.perf_counter()
    qv = embedder.embed([q.text for q in questions])
    print(
        f"questions: {len(questions)} embedded in {time.perf_counter() - t:.1f} s; documents: {len(docs)}",
        file=sys.stderr,
    )
    print("| chunking | chunks | chunk + embed chunks/s | store | recall@5 | MRR@10 | store write chunks/s |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for spec in args.chunking:
        plan = strategy(spec)
        t = time.perf_counter()
        pieces = {d.id: chunker.split(d.text, plan) for d in docs}
        flat = [(doc_id, c) for doc_id, cs in pieces.items() for c in cs]
        vectors = embedder.embed([c.text for _, c in flat])
        rate = len(flat) / (time.perf_counter() - t)
        label = f"{spec} ({plan.max_tokens}/{plan.overlap_tokens})" if spec == "auto" else spec
        files: dict[str, tuple[list[Chunk], np.ndarray]] = {}
        start = 0
        for doc_id, cs in pieces.items():
            files[doc_id] = (cs, vectors[start : start + len(cs)])
            start += len(cs)
        for kind in args.stores:
            if kind == "exact":
                ranked = []
                for q in qv:
                    top = np.argsort(-(vectors @ q), kind="stable")[:K]
                    ranked.append([(flat[i][0], flat[i][1].text) for i in top])
                write = "-"
            else:
                catalog = await open_store(kind, tmp)
                try:
                    spent = await fill(catalog, "vs_quality", files)
                    write = f"{len(flat) / spent:.0f}"
                    ranked = []
                    for q in qv:
                        hits = await catalog.search(TENANT, ["vs_quality"], q, K, score_threshold=-1.0)
                        ranked.append([(h.file_id, h.text) for h in hits])
                finally:
                    await drop(catalog)
            recall, mrr = metrics(ranked, questions)
            print(f"| {label} | {len(flat)} | {rate:.1f} | {kind} | {recall:.3f} | {mrr:.3f} | {write} |", flush=True)


async def latency(args: argparse.Namespace, tmp: Path) -> None:
    print("| store | chunks | search path | fill s | search p50 ms | p99 ms |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for n in args.sizes:
        data, queries = dataset(n)
        queries = queries[:500]
        files = {
            f"file-{f:05d}": ([Chunk(index=i, text=f"chunk {f}/{i}", tokens=3) for i in range(len(block))], block)
            for f, block in enumerate(np.array_split(data, max(1, n // 100)))
        }
        for kind in [s for s in args.stores if s != "exact"]:
            catalog = await open_store(kind, tmp)
            try:
                t = time.perf_counter()
                await fill(catalog, "vs_speed", files)
                fill_s = time.perf_counter() - t
                limit = vector_index.EXACT_LIMIT if kind.startswith("sqlite") else pg_catalog.EXACT_LIMIT
                path = "exact" if n <= limit else "HNSW"
                for q in queries[:50]:
                    await catalog.search(TENANT, ["vs_speed"], q, K)
                times = []
                for q in queries:
                    t0 = time.perf_counter_ns()
                    await catalog.search(TENANT, ["vs_speed"], q, K)
                    times.append(time.perf_counter_ns() - t0)
            finally:
                await drop(catalog)
            p50, p99 = (float(np.percentile(times, p)) / 1e6 for p in (50, 99))
            print(f"| {kind} | {n} | {path} | {fill_s:.0f} | {p50:.2f} | {p99:.2f} |", flush=True)
        times = []
        for q in queries:
            t0 = time.perf_counter_ns()
            scores = data @ q
            np.argpartition(scores, -K)[-K:]
            times.append(time.perf_counter_ns() - t0)
        p50, p99 = (float(np.percentile(times, p)) / 1e6 for p in (50, 99))
        print(f"| exact (numpy, no catalog) | {n} | exact | - | {p50:.2f} | {p99:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=300)
    p.add_argument("--questions", type=int, default=300)
    p.add_argument("--chunking", nargs="+", default=["auto"], help="auto or SIZE/OVERLAP, e.g. 128/32")
    kinds = ["exact", "sqlite", "sqlite-hnsw", "pg", "pg-hnsw"]
    p.add_argument("--stores", nargs="+", default=kinds, choices=kinds)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_quality:
            asyncio.run(quality(args, Path(tmp)))
        if not args.skip_speed:
            asyncio.run(latency(args, Path(tmp)))


if __name__ == "__main__":
    main()
