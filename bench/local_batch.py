"""Aggregate tokens/s and time to first token of the embedded model at 1, 2, 4 and 8 concurrent
streams: today's one-at-a-time path (`parallel: 1`) against the batch scheduler, in one process
and one run, in process (no HTTP: the provider's open_stream, as the router calls it).

    flock /tmp/interlock-bench.lock env PYTHONPATH=src .venv/bin/python bench/local_batch.py \\
        [--tokens 64] [--rounds 2] [--parallel 4 8] [--n-threads N] [--quantize q4_0|q8_0] [--steps]

Each stream is a different chat prompt at temperature 0 asking for a long answer, `max_tokens`
tokens at most; tokens are counted from the stream's own usage. Aggregate tokens/s is all the
streams' completion tokens over the wall time from the first open to the last end; TTFT is from
open_stream to the first content event, p50 over the streams of every round. Modes alternate
within each round, and each keeps its best round, so a busy machine moves them together.

`--steps` measures what bounds the gain instead: the time of one `llama_decode` of a batch of
1, 2, 4 and 8 sequences' next tokens (and one sampling each), straight through the C API.
`--quantize` first requantizes the GGUF (llama_model_quantize, into a temporary file) to see
whether the weights' type changes that.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from interlock.config import LocalDeployment
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import Endpoint
from interlock.providers.local import LocalProvider, default_model_path

TOPICS = ["a cat", "the sea", "a lighthouse", "a robot", "winter", "a library", "a train", "the moon"]


async def one_stream(provider: LocalProvider, k: int, tokens: int, tag: str) -> tuple[float, int]:
    # A prompt of its own each time (the tag), so no run reuses another's prompt in the KV cache.
    body = {
        "messages": [{"role": "user", "content": f"Write a long story about {TOPICS[k % len(TOPICS)]} ({tag})."}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    stream = await provider.open_stream(Endpoint.CHAT, body)
    ttft = 0.0
    produced = 0
    async for event in stream:
        chunk: dict[str, Any] = orjson.loads(event)
        if not ttft and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
            ttft = time.perf_counter() - start
        if chunk.get("usage"):
            produced = int(chunk["usage"]["completion_tokens"])
    return ttft, produced


async def measure(provider: LocalProvider, streams: int, tokens: int, tag: str) -> tuple[float, list[float]]:
    start = time.perf_counter()
    results = await asyncio.gather(*(one_stream(provider, k, tokens, tag) for k in range(streams)))
    wall = time.perf_counter() - start
    return sum(n for _, n in results) / wall, [t for t, _ in results]


def quantize(kind: str, out: Path) -> str:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    params.allow_requantize = True
    if llama_cpp.llama_model_quantize(str(default_model_path()).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"quantizing to {kind} failed")
    return str(out)


def _put(batch: Any, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
    batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
    batch.seq_id[i][0] = seq


def steps(model_path: str, n_threads: int | None, n_threads_batch: int | None = None, repeat: int = 48) -> None:
    """ms per decode step of N sequences' next tokens, after a short prompt each."""
    import llama_cpp as c

    # n_threads_batch: llama-cpp-python's default is every core, where n_threads defaults to half;
    # give both the same to compare a step of N sequences with one of 1 at equal threads.
    llm = c.Llama(model_path, n_ctx=512, n_threads=n_threads, n_threads_batch=n_threads_batch, verbose=False)
    prompt = llm.tokenize(b"<|im_start|>user\nWrite a long story.<|im_end|>\n<|im_start|>assistant\n", special=True)
    print("| sequences per step | decode ms/step | sample ms/step | tokens/s |\n|---|---|---|---|")
    for n in (1, 2, 4, 8):
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = 512 * n, n, False
        ctx = c.llama_init_from_model(llm.model, params)
        batch = c.llama_batch_init(512, 0, 1)
        samplers = [c.llama_sampler_init_greedy() for _ in range(n)]

        batch.n_tokens = n * len(prompt)
        for s in range(n):
            for j, t in enumerate(prompt):
                _put(batch, s * len(prompt) + j, t, j, s, j == len(prompt) - 1)
        c.llama_decode(ctx, batch)
        rows = [(s + 1) * len(prompt) - 1 for s in range(n)]
        decode = sample = 0.0
        for k in range(repeat):
            t0 = time.perf_counter()
            tokens = [c.llama_sampler_sample(samplers[s], ctx, rows[s]) for s in range(n)]
            t1 = time.perf_counter()
            batch.n_tokens = n
            for s in range(n):
                _put(batch, s, tokens[s], len(prompt) + k, s, True)
            rows = list(range(n))
            c.llama_decode(ctx, batch)
            decode += time.perf_counter() - t1
            sample += t1 - t0
        print(
            f"| {n} | {decode / repeat * 1000:.1f} | {sample / repeat * 1000:.2f} | {n * repeat / (decode + sample):.0f} |"
        )
        for sampler in samplers:
            c.llama_sampler_free(sampler)
        c.llama_batch_free(batch)
        c.llama_free(ctx)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--parallel", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--n-threads-batch", type=int, default=None, help="with --steps: threads for batches")
    parser.add_argument("--quantize", choices=["q4_0", "q8_0"], default=None)
    parser.add_argument("--steps", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = quantize(args.quantize, Path(tmp) / "model.gguf") if args.quantize else str(default_model_path())
        if args.steps:
            steps(model, args.n_threads, args.n_threads_batch)
        else:
            await streams(args, model)


async def streams(args: argparse.Namespace, model: str) -> None:
    modes = {"single": 1, **{f"parallel {p}": p for p in args.parallel}}
    providers = {}
    for name, parallel in modes.items():
        spec = LocalDeployment(
            id=name.replace(" ", "-"), model_path=model, embeddings=False, parallel=parallel, max_queue=64,
            n_threads=args.n_threads,
        )  # fmt: skip
        providers[name] = LocalProvider(spec, Metrics())
        await providers[name].start()
    for provider in providers.values():  # warm each context once
        await measure(provider, 1, 4, "warm-up")
    best: dict[tuple[str, int], tuple[float, list[float]]] = {}
    for round_ in range(args.rounds):
        for streams in args.streams:
            for name, provider in providers.items():
                rate, ttfts = await measure(provider, streams, args.tokens, f"{round_}.{streams}")
                kept = best.get((name, streams))
                if kept is None or rate > kept[0]:
                    best[(name, streams)] = (rate, ttfts)
    for provider in providers.values():
        await provider.close()
    print(f"| streams | {' | '.join(f'{n} tok/s | {n} TTFT p50 ms' for n in modes)} | best batched / single |")
    print("|---" * (2 * len(modes) + 2) + "|")
    for streams in args.streams:
        cells = []
        for name in modes:
            rate, ttfts = best[(name, streams)]
            cells += [f"{rate:.1f}", f"{statistics.median(ttfts) * 1000:.0f}"]
        single = best[("single", streams)][0]
        batched = max(best[(n, streams)][0] for n in modes if n != "single")
        print(f"| {streams} | {' | '.join(cells)} | {batched / single:.2f} |")
    one = best[("single", 1)][0]
    for name in modes:
        if name != "single" and 4 in args.streams:
            print(f"{name}: 4 streams give {best[(name, 4)][0] / one:.2f}x the aggregate tokens/s of one single stream")


if __name__ == "__main__":
    asyncio.run(main())
