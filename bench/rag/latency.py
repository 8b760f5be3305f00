"""What retrieval adds to a chat request: one `interlock serve` with a vector store, the same chat
request with and without `vector_store_ids`, one at a time, alternating.

    flock /tmp/interlock-bench.lock env PYTHONPATH=src .venv/bin/python bench/rag/latency.py \
        [--catalog sqlite|postgres] [--docs 300] [--requests 300] [--k 4]

1. A canned upstream in this process (an aiohttp app answering every chat completion with the
   same small body at once), so the difference between the two requests is the gateway's own work.
2. A gateway (one worker, `OPENBLAS_NUM_THREADS=1`) with the group `chat`, its cache off (every
   request reaches the upstream) and a `retrieval` section on the chosen catalog (`postgres`: a
   schema of its own in `--pg-dsn`'s database, dropped at the end).
3. `--docs` generated documents (a made-up product sheet each, one to three chunks) uploaded with
   the official `openai` client's wire format (multipart), attached to one store; ingestion is
   timed until every file is completed (files/s as a by-product).
4. `--requests` rounds, after 20 to warm up: a chat request, then the same with
   `vector_store_ids` (the k nearest chunks go into the prompt), then one question asked every
   round with `vector_store_ids`. Every other question is new text, so its query embedding is no
   store hit: that retrieval pays one MiniLM forward pass, a search of the store and the prompt's
   rendering; the repeated one finds its embedding in the embedding store (embeddings.md) and
   pays the search and the prompt only. Client-side latency, from send to the whole body.

Prints a markdown table: p50, p90 and p99 of each, and what retrieval adds at each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers
from procs import Process, free_port, serve, wait_http

ANSWER = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
})  # fmt: skip
PRODUCTS = ["kettle", "e-bike", "drone", "espresso machine", "robot vacuum", "smartwatch", "air purifier", "blender"]
CITIES = ["Lisbon", "Osaka", "Denver", "Tallinn", "Nairobi", "Krakow", "Adelaide", "Montreal", "Seville", "Bergen"]
FILLER = (
    "The {p} is designed for everyday use and is covered by the standard terms of sale. Owners are "
    "encouraged to register it online, to read the safety notes before first use and to keep the "
    "packaging for the length of the return window. Spare parts are sold through authorised dealers. "
)


def document(rng: random.Random, i: int) -> str:
    product, city = rng.choice(PRODUCTS), rng.choice(CITIES)
    facts = (
        f"The {product} model {i} was launched in {city}. It weighs {rng.randint(1, 40)} kg and carries a "
        f"{rng.choice([12, 24, 36])}-month warranty. "
    )
    return f"# Product sheet {i}: {product}\n\n" + facts + FILLER.format(p=product) * rng.randint(4, 7)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[89], cuts[98]


async def upstream_app() -> tuple[web.AppRunner, int]:
    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return await serve(app)


async def ingest(session: aiohttp.ClientSession, base: str, docs: list[str]) -> tuple[str, float]:
    ids = []
    for i, text in enumerate(docs):
        form = aiohttp.FormData()
        form.add_field("purpose", "assistants")
        form.add_field("file", text.encode(), filename=f"sheet-{i}.md", content_type="text/markdown")
        async with session.post(base + "/files", data=form) as resp:
            ids.append((await resp.json())["id"])
    started = time.perf_counter()
    async with session.post(base + "/vector_stores", json={"name": "bench", "file_ids": ids}) as resp:
        store = (await resp.json())["id"]
    while True:
        async with session.get(f"{base}/vector_stores/{store}") as resp:
            counts = (await resp.json())["file_counts"]
        if not counts["in_progress"]:
            break
        await asyncio.sleep(0.1)
    seconds = time.perf_counter() - started
    assert counts["completed"] == len(docs), counts
    return store, seconds


async def one(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    async with session.post(url, json=body) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-latency-"))
    runner, upstream_port = await upstream_app()
    schema = f"rag_latency_{uuid.uuid4().hex[:8]}"
    retrieval: dict[str, Any] = {"catalog": args.catalog, "max_results": args.k, "queue_size": max(256, args.docs)}
    if args.catalog == "postgres":
        retrieval.update(postgres_dsn=args.pg_dsn, postgres_schema=schema)
    config = {
        "models": [{"name": "chat", "cache": {"mode": "off"}, "deployments": [
            {"id": "up", "backend": "openai", "api_base": f"http://127.0.0.1:{upstream_port}/v1", "api_key": "x"}]}],
        "retrieval": retrieval,
        "server": {"log_level": "warning"},
    }  # fmt: skip
    (work / "interlock.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    gateway = Process([sys.executable, "-m", "interlock", "serve", "--config", str(work / "interlock.yaml"),
                       "--port", str(port)], work / "gateway.log", env)  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    rng = random.Random(15)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_http(session, f"http://127.0.0.1:{port}/readyz", gateway)
            store, seconds = await ingest(session, base, [document(rng, i) for i in range(args.docs)])
            url = base + "/chat/completions"

            def body(i: int, retrieve: bool) -> dict[str, Any]:
                question = f"Where was the {rng.choice(PRODUCTS)} model {i} launched, and what is its warranty?"
                asked: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": question}]}
                return {**asked, "vector_store_ids": [store]} if retrieve else asked

            for i in range(20):
                await one(session, url, body(10_000 + i, False))
                await one(session, url, body(10_000 + i, True))
            plain, retrieved, stored = [], [], []
            repeated = body(-1, True)  # its query embedding is a store hit after the first time
            for i in range(args.requests):
                plain.append(await one(session, url, body(i, False)))
                retrieved.append(await one(session, url, body(i, True)))
                stored.append(await one(session, url, repeated))
    finally:
        gateway.stop()
        await runner.cleanup()
        if args.catalog == "postgres":
            drop = ["psql", args.pg_dsn, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"]
            await asyncio.to_thread(subprocess.run, drop, check=False)
    a, b, c = percentiles(plain), percentiles(retrieved), percentiles(stored)
    print(f"catalog {args.catalog}, {args.docs} documents ingested in {seconds:.1f} s "
          f"({args.docs / seconds:.1f} files/s), k={args.k}, "
          f"{args.requests} pairs")  # fmt: skip
    print()
    print("| Chat request | p50 | p90 | p99 |")
    print("| --- | ---: | ---: | ---: |")
    print("| without retrieval | " + " | ".join(f"{v * 1000:.2f} ms" for v in a) + " |")
    print(f"| with retrieval (k={args.k}) | " + " | ".join(f"{v * 1000:.2f} ms" for v in b) + " |")
    print("| added | " + " | ".join(f"{(y - x) * 1000:.2f} ms" for x, y in zip(a, b, strict=True)) + " |")
    print("| with retrieval, the query's embedding stored | " + " | ".join(f"{v * 1000:.2f} ms" for v in c) + " |")
    print("| added | " + " | ".join(f"{(y - x) * 1000:.2f} ms" for x, y in zip(a, c, strict=True)) + " |")


if __name__ == "__main__":
    asyncio.run(main())
