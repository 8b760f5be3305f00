"""Micro-batching of the embedding model, and what a precomputed embedding costs, in one run.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/embeddings/run.py [--seconds S]

Part 1: N concurrent callers (1, 4, 16, 64), each asking for one text at a time, as `/v1/embeddings`
callers and the semantic cache do; every text is new (no store), so every text is a forward pass.
"batched" is the gateway's MicroBatcher (max_batch 32; max_wait_ms 0, the default, and 2); "unbatched" is each caller
running the model alone on a worker thread (`run_in_executor`, as the gateway embedded before the
batcher), on a pool of the same number of threads: 1 (the default, the other core is the event
loop's) and 2 (`embeddings.threads: 2`). The four alternate per caller count, so load on the
machine moves them together. In process, through the real model: HTTP is not in these figures.

Part 2: a text found in the precomputed store: `EmbeddingStore.get` alone (memory tier, no Redis), and the whole
`EmbeddingService.embed` call for one stored text (digest, lookup, copy into the answer array).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.embeddings.batcher import MicroBatcher
from interlock.embeddings.minilm import DIM, MiniLmEmbedder
from interlock.embeddings.service import EmbeddingService
from interlock.embeddings.store import Embedded, EmbeddingStore
from interlock.observe.metrics import Metrics

SUBJECTS = ["my password", "the invoice", "my subscription", "the mobile app", "two-factor login", "my order",
            "the refund", "my account email", "the shipping address", "the API key"]  # fmt: skip
ASKS = ["how do I reset", "where can I find", "why can't I change", "who can update", "what happens to",
        "is there a way to export", "can support help with", "when will I get"]  # fmt: skip


def texts() -> list[str]:
    """Distinct questions of 5-12 words, like a support bot's traffic."""
    out = [f"{a} {s}" for a in ASKS for s in SUBJECTS]
    return [f"{t} ({i})" if i else t for i in range(400) for t in out]


Embed = Callable[[list[str]], Awaitable[object]]


async def callers(embed: Embed, n: int, seconds: float, pool: list[str]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    next_text = iter(pool)

    async def caller() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            await embed([next(next_text)])
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(n)))
    return len(latencies) / (time.perf_counter() - began), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def batching(model: MiniLmEmbedder, seconds: float) -> None:
    pool = texts()
    model.embed(pool[:32])  # warm the model and BLAS
    print("| callers | threads | how | texts/s | / unbatched | p50 ms | p99 ms |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    offset = 0
    loop = asyncio.get_running_loop()
    variants = [("unbatched", None), ("batched, max_wait_ms 0", 0.0), ("batched, max_wait_ms 2", 2.0)]
    for n in (1, 4, 16, 64):
        for threads in (1, 2):
            base = 0.0
            for how, wait in variants:
                if threads == 2 and wait == 2.0:
                    continue
                if wait is None:
                    executor = ThreadPoolExecutor(max_workers=threads)

                    async def alone(batch: list[str], executor: ThreadPoolExecutor = executor) -> object:
                        return await loop.run_in_executor(executor, model.embed_counted, batch)

                    rate, latencies = await callers(alone, n, seconds, pool[offset:])
                    executor.shutdown()
                    base = rate
                else:
                    batcher = MicroBatcher(model.embed_counted, max_batch=32, max_wait_ms=wait, threads=threads)
                    batcher.start()
                    rate, latencies = await callers(batcher.embed, n, seconds, pool[offset:])
                    await batcher.close()
                offset += len(latencies) + n
                print(
                    f"| {n} | {threads} | {how} | {rate:.0f} | {rate / base:.2f}x "
                    f"| {pct(latencies, 0.5) * 1e3:.1f} | {pct(latencies, 0.99) * 1e3:.1f} |"
                )


async def store_hits(model: MiniLmEmbedder) -> None:
    metrics = Metrics(CollectorRegistry())
    store = EmbeddingStore(DIM, MemoryCache[Embedded](64 << 20, 64 << 20), None, metrics, ttl=3600)
    batcher = MicroBatcher(model.embed_counted)
    service = EmbeddingService(model, batcher, store)
    await service.start()
    stored = texts()[:1000]
    await service.warm(iter(stored))
    n = 20_000
    began = time.perf_counter()
    for i in range(n):
        await store.get(service.model, [stored[i % 1000]])
    lookup = (time.perf_counter() - began) / n
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for i in range(n):
            await service.embed([stored[i % 1000]])
        runs.append((time.perf_counter() - began) / n)
    await service.close()
    print()
    print(f"store hit, EmbeddingStore.get of one text (memory tier): {lookup * 1e6:.1f} us")
    print(f"store hit, EmbeddingService.embed of one stored text: {statistics.median(runs) * 1e6:.1f} us "
          f"(median of 5 rounds of {n})")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="per cell")
    args = parser.parse_args()
    model = MiniLmEmbedder(concurrency=2)
    model.load()
    await batching(model, args.seconds)
    await store_hits(model)


if __name__ == "__main__":
    asyncio.run(main())
