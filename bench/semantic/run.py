"""Semantic cache benchmark: the default threshold, what the guard buys, and the lookup cost.

    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1
    flock /tmp/interlock-bench.lock .venv/bin/python bench/semantic/run.py [--sizes 10000 100000]

1. Embeds both texts of every pair in `pairs.jsonl` (written by `pairs.py`) with the gateway's
   own MiniLM (`interlock.embeddings.minilm.MiniLmEmbedder`) and takes their cosine.
2. Sweeps the threshold: a pair is served from cache when its cosine reaches the threshold
   (without the guard) and also `same_question(a, b)` holds (with it); precision and recall
   against the labels, both ways. Draws `curve.png` beside this file.
3. The default threshold: the lowest at which precision with the guard is at least 99 % there
   and at every higher threshold, so it keeps as much recall as that precision allows.
4. Lookup cost per request at each size: a full `VectorIndex` of that many entries (synthetic
   vectors shaped like a cache's, `ann.py`), then for each query `search(k=4)` and the guard on
   every candidate at or above the threshold against a cached text; p50/p99 of the two together,
   and of an `add` into the full index (which evicts the oldest). Also where exact search stops
   being the faster (the `exact_limit`).
5. Prints a markdown block of the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann import dataset, rss_bytes

from interlock.cache.semantic_guard import mismatch
from interlock.cache.semantic_index import VectorIndex
from interlock.embeddings.minilm import MiniLmEmbedder

HERE = Path(__file__).resolve().parent
TARGET = 0.99
FIXED = (0.85, 0.9, 0.92, 0.95)  # thresholds reported beside the chosen one
K = 4


def sweep(cos: np.ndarray, same: np.ndarray, guard: np.ndarray) -> list[dict[str, float]]:
    return [sweep_at(cos, same, guard, float(t)) for t in np.round(np.arange(0.50, 1.0001, 0.005), 3)]


def choose(rows: list[dict[str, float]], key: str) -> dict[str, float] | None:
    """The lowest threshold from which precision stays at or above the target."""
    best = None
    for row in reversed(rows):
        if row[f"{key}_p"] < TARGET:
            break
        best = row
    return best


def draw(rows: list[dict[str, float]], cos: np.ndarray, kinds: list[str], default: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.plot(t, [r["raw_p"] for r in rows], "--", color="tab:red", label="precision, threshold only")
    left.plot(t, [r["raw_r"] for r in rows], "--", color="tab:blue", label="recall, threshold only")
    left.plot(t, [r["guard_p"] for r in rows], color="tab:red", label="precision, with the guard")
    left.plot(t, [r["guard_r"] for r in rows], color="tab:blue", label="recall, with the guard")
    left.axhline(TARGET, color="grey", lw=0.5)
    left.axvline(default, color="black", lw=0.8, ls=":", label=f"default {default:.3f}")
    left.set_xlabel("cosine threshold")
    left.set_ylim(0, 1.02)
    left.legend(loc="lower left", fontsize=8)
    left.set_title("Served from cache: precision and recall")
    order = ["paraphrase", "negation", "antonym", "entity", "number", "topic"]
    rng = np.random.default_rng(0)
    for i, kind in enumerate(order):
        values = cos[[k == kind for k in kinds]]
        right.scatter(values, i + rng.uniform(-0.25, 0.25, len(values)), s=6, alpha=0.6)
    right.set_yticks(range(len(order)), order)
    right.axvline(default, color="black", lw=0.8, ls=":")
    right.set_xlabel("MiniLM cosine of the pair")
    right.set_title("Pairs by kind (only paraphrases are the same question)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def sweep_at(cos: np.ndarray, same: np.ndarray, guard: np.ndarray, t: float) -> dict[str, float]:
    row: dict[str, float] = {"t": t}
    for name, served in (("raw", cos >= t), ("guard", (cos >= t) & guard)):
        tp = int((served & same).sum())
        n = int(served.sum())
        row[f"{name}_p"] = tp / n if n else 1.0
        row[f"{name}_r"] = tp / max(int(same.sum()), 1)
        row[f"{name}_n"] = n
    return row


def quality(embedder: MiniLmEmbedder) -> tuple[dict[str, Any], list[dict[str, float]]]:
    pairs = [json.loads(line) for line in (HERE / "pairs.jsonl").read_text().splitlines()]
    texts = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    t0 = time.perf_counter()
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))
    embed_s = time.perf_counter() - t0
    cos = np.array([float(vectors[p["a"]] @ vectors[p["b"]]) for p in pairs])
    same = np.array([p["same"] for p in pairs])
    t0 = time.perf_counter()
    reasons = [mismatch(p["a"], p["b"]) for p in pairs]
    guard_us = (time.perf_counter() - t0) / len(pairs) * 1e6
    guard = np.array([r is None for r in reasons])
    kinds = [p["kind"] for p in pairs]
    dev = np.array([p["set"] == "dev" for p in pairs])
    held = ~dev
    rows = sweep(cos[dev], same[dev], guard[dev])
    chosen = choose(rows, "guard")
    default = chosen["t"] if chosen else 1.0
    draw(rows, cos[dev], [k for k, d in zip(kinds, dev, strict=True) if d], default, HERE / "curve.png")
    by_kind = {}
    for split, sel_split in (("dev", dev), ("held-out", held)):
        for kind in dict.fromkeys(kinds):
            sel = sel_split & np.array([k == kind for k in kinds])
            above = sel & (cos >= default)
            by_kind[f"{split} {kind}"] = {
                "pairs": int(sel.sum()),
                "median_cos": round(float(np.median(cos[sel])), 3),
                "above": int(above.sum()),
                "guard_says_same": int((above & guard).sum()),
            }
    wrong = [
        {"set": p["set"], "a": p["a"], "b": p["b"], "kind": p["kind"], "cos": round(float(c), 3), "guard": r}
        for p, c, r, g in zip(pairs, cos, reasons, guard, strict=True)
        if c >= default and (g != p["same"])
    ]
    out = {
        "pairs": len(pairs),
        "texts": len(texts),
        "embed_s": round(embed_s, 1),
        "guard_us_per_pair": round(guard_us, 1),
        "default": default,
        "dev_at_default": sweep_at(cos[dev], same[dev], guard[dev], default),
        "held_at_default": sweep_at(cos[held], same[held], guard[held], default),
        "raw_at_target": choose(rows, "raw"),
        "by_kind": by_kind,
        "errors_at_default": wrong,
        "paraphrases_the_guard_rejects": [
            {"set": p["set"], "a": p["a"], "b": p["b"], "guard": r, "cos": round(float(c), 3)}
            for p, r, c in zip(pairs, reasons, cos, strict=True)
            if p["same"] and r
        ],
        "near_misses_the_guard_passes": int((~same & guard).sum()),
        "fixed": [
            {
                "t": t,
                "dev": sweep_at(cos[dev], same[dev], guard[dev], t),
                "held": sweep_at(cos[held], same[held], guard[held], t),
            }
            for t in FIXED
        ],
    }
    return out, rows


def cost(n: int, threshold: float) -> dict[str, Any]:
    """Lookup and add cost in a full index of n entries; the guard against the pair texts."""
    pairs = [json.loads(line) for line in (HERE / "pairs.jsonl").read_text().splitlines()]
    data, queries = dataset(n)
    before = rss_bytes()
    t0 = time.perf_counter()
    index = VectorIndex(data.shape[1], capacity=n)
    for i, v in enumerate(data):
        index.add(str(i), v, expires=float("inf"))
    build_s = time.perf_counter() - t0
    memory = rss_bytes() - before
    for q in queries[:100]:
        index.search(q, K, now=0.0)
    lookups, searches, guarded = [], [], 0
    for j, q in enumerate(queries):
        asked = pairs[j % len(pairs)]["a"]
        t = time.perf_counter_ns()
        hits = index.search(q, K, now=0.0)
        s = time.perf_counter_ns()
        for entry_id, score in hits:
            if score < threshold:
                break
            guarded += 1
            if mismatch(asked, pairs[int(entry_id) % len(pairs)]["b"]) is None:
                break
        e = time.perf_counter_ns()
        searches.append(s - t)
        lookups.append(e - t)
    adds = []
    fresh, _ = dataset(2000, seed=21)
    for i, v in enumerate(fresh):
        t = time.perf_counter_ns()
        index.add(f"new{i}", v, expires=float("inf"))
        adds.append(time.perf_counter_ns() - t)

    def us(x: list[int], p: float) -> float:
        return round(float(np.percentile(x, p)) / 1000, 1)

    return {
        "n": n,
        "build_s": round(build_s, 1),
        "memory_mb": round(memory / 2**20, 1),
        "search_p50_us": us(searches, 50),
        "search_p99_us": us(searches, 99),
        "lookup_p50_us": us(lookups, 50),
        "lookup_p99_us": us(lookups, 99),
        "guard_calls_per_lookup": round(guarded / len(queries), 2),
        "add_full_p50_us": us(adds, 50),
        "add_full_p99_us": us(adds, 99),
    }


def crossover(sizes: list[int]) -> list[dict[str, Any]]:
    """Exact search and the graph on the same entries, to place exact_limit."""
    out = []
    for n in sizes:
        data, queries = dataset(n)
        row: dict[str, Any] = {"n": n}
        for name, limit in (("exact", n + 1), ("graph", 2)):
            index = VectorIndex(data.shape[1], capacity=n, exact_limit=limit)
            for i, v in enumerate(data):
                index.add(str(i), v, expires=float("inf"))
            times = []
            for q in queries[:1000]:
                t = time.perf_counter_ns()
                index.search(q, K, now=0.0)
                times.append(time.perf_counter_ns() - t)
            row[f"{name}_p50_us"] = round(float(np.percentile(times, 50)) / 1000, 1)
            row[f"{name}_p99_us"] = round(float(np.percentile(times, 99)) / 1000, 1)
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--crossover", type=int, nargs="*", default=[1024, 2048, 4096, 8192])
    p.add_argument("--cost", nargs=2, metavar=("N", "THRESHOLD"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.cost:  # one size in a process of its own, so its resident memory is its own
        print(json.dumps(cost(int(a.cost[0]), float(a.cost[1]))))
        return
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("warning: OPENBLAS_NUM_THREADS is not 1", file=sys.stderr)
    embedder = MiniLmEmbedder()
    embedder.load()
    q, _ = quality(embedder)
    (HERE / "quality.json").write_text(json.dumps(q, indent=1) + "\n")
    costs = []
    for n in a.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--cost", str(n), str(q["default"])], capture_output=True, text=True, check=True
        )
        costs.append(json.loads(done.stdout))
    cross = crossover(a.crossover)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    d, h = q["dev_at_default"], q["held_at_default"]
    kinds = ", ".join(f"{k} {v['pairs']}" for k, v in q["by_kind"].items())
    lines = [
        f"### Semantic cache ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, `bench/semantic/run.py`)",
        "",
        f"{q['pairs']} labelled pairs ({kinds}); all-MiniLM-L6-v2 in numpy.",
        f"The threshold is chosen on the dev pairs: the lowest from which precision with the guard stays at {TARGET:.0%} or more.",
        "",
        "| pairs | threshold | guard | precision | recall | served |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, m in (("dev", d), ("held-out", h)):
        lines.append(f"| {name} | {m['t']:.3f} | with | {m['guard_p']:.3f} | {m['guard_r']:.3f} | {m['guard_n']:.0f} |")
        lines.append(f"| {name} | {m['t']:.3f} | without | {m['raw_p']:.3f} | {m['raw_r']:.3f} | {m['raw_n']:.0f} |")
    raw = q["raw_at_target"]
    if raw:
        lines.append(
            f"| dev, lowest threshold reaching {TARGET:.0%} | {raw['t']:.3f} | without | {raw['raw_p']:.3f} | {raw['raw_r']:.3f} | {raw['raw_n']:.0f} |"
        )
    else:
        lines.append(f"| dev: no threshold reaches {TARGET:.0%} precision | | without | | | |")
    lines += [
        "",
        f"At {q['default']:.3f}, by kind (pairs at or above the threshold; of those, how many the guard calls the same question):",
        "",
    ]
    lines += [
        "| pairs, kind | pairs | median cosine | at/above | guard says same |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, v in q["by_kind"].items():
        lines.append(f"| {kind} | {v['pairs']} | {v['median_cos']} | {v['above']} | {v['guard_says_same']} |")
    lines += [
        "",
        f"At any threshold the guard rejects {len(q['paraphrases_the_guard_rejects'])} of the paraphrases and lets "
        f"{q['near_misses_the_guard_passes']} near misses through; it costs {q['guard_us_per_pair']} us a pair. "
        f"Errors at the default: {len(q['errors_at_default'])} (listed in quality.json).",
        "",
        "Other thresholds, with the guard (precision / recall / served):",
        "",
        "| threshold | dev | held-out |",
        "| ---: | --- | --- |",
    ]
    for f in q["fixed"]:
        cells = [f"{m['guard_p']:.3f} / {m['guard_r']:.3f} / {m['guard_n']:.0f}" for m in (f["dev"], f["held"])]
        lines.append(f"| {f['t']:.2f} | {cells[0]} | {cells[1]} |")
    lines.append("")
    lines += [
        "Lookup per request (search k=4 plus the guard on candidates at or above the threshold), one query at a time:",
        "",
    ]
    lines += [
        "| entries | build s | memory MB | search p50 us | p99 us | search+guard p50 us | p99 us | add when full p50 us | p99 us |"
    ]
    lines += ["| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in costs:
        lines.append(
            f"| {c['n']} | {c['build_s']} | {c['memory_mb']} | {c['search_p50_us']} | {c['search_p99_us']} | {c['lookup_p50_us']} | {c['lookup_p99_us']} | {c['add_full_p50_us']} | {c['add_full_p99_us']} |"
        )
    lines += ["", "Exact search against the graph, same entries (where `exact_limit` goes):", ""]
    lines += ["| entries | exact p50 us | p99 us | graph p50 us | p99 us |", "| ---: | ---: | ---: | ---: | ---: |"]
    for c in cross:
        lines.append(
            f"| {c['n']} | {c['exact_p50_us']} | {c['exact_p99_us']} | {c['graph_p50_us']} | {c['graph_p99_us']} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
