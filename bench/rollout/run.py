"""Rollout benchmark (issue 5): three canaries through two gateways, decided by Interlock itself.

    export PYTHONPATH=src
    .venv/bin/python bench/rollout/run.py [--rate 40 --interval-s 5 ...]   # every flag: --help

1. A fake upstream in this process (`upstream.py`) playing four versions of one model: v1 (stable),
   v2-healthy, v2-flaky (HTTP 500 on 20 % of requests), v2-slow (+300 ms), and the alert webhook.
2. Redis of its own (`redis-server` on a free port) unless `--redis-url`; two `interlock serve`
   processes sharing it (rollout state, lease, windows, shadow comparisons), with one model group
   `chat` holding the four deployments, `router.retries: 0` and a circuit that does not open (so a
   bad candidate's failures reach its callers and the analysis, as in tests/integration).
3. For each candidate, a fresh canary started with `interlock rollout start` (over the previous
   rollout, which is finished): pause, shadow, set_weight 10, analysis, 30, analysis, 60,
   analysis, then promotion. An open-loop load generator sends `--rate` requests/s alternately to
   both gateways, each with a random `user` out of `--users` (the sticky key), and records every
   answer; the state is read from Redis every 0.1 s for the timeline. The run ends at Healthy,
   Degraded or Aborted (or `--run-timeout-s`; an inconclusive pause is aborted by hand), goes on
   `--tail-s` seconds, then `interlock rollout status` is recorded.
4. A markdown table and each run's details on standard output and in `<out>/table.md`; every
   answer in `<out>/answers.jsonl`, every timeline entry in `<out>/timeline.jsonl`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from redis.asyncio import Redis

from interlock.rollout.spec import DEFAULT_METRICS
from interlock.rollout.store import decode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers (servers.py uses them too)
from procs import ROOT, Process, free_port, start_redis, wait_http
from upstream import VERSIONS, Call, FakeUpstream

MODEL = "chat"
STABLE = "v1"
CANDIDATES = VERSIONS[1:]
GATE_CANDIDATES = ("v2-healthy", "v2-flaky", "v2-slow")
# Issue 17: worse models that answer HTTP 200 at the stable latency, under the default analysis.
QUALITY_CANDIDATES = ("v2-offtopic", "v2-refusal", "v2-rambling", "v2-json", "v2-identical")
PROMOTED = ("v2-healthy", "v2-identical")  # the rest must be aborted (Degraded)
TERMINAL = ("Healthy", "Degraded", "Aborted")
PROMPTS = (
    "How do I reset my password for the billing portal?",
    "My invoice shows two charges for the same month, can you check?",
    "Where can I change the e-mail address on my account?",
    "The VPN client says my certificate expired. What should I do?",
    "Can I move my subscription to the annual plan without losing my data?",
)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=float(env("ROLLOUT_RATE", "60")),
                   help="requests/s over both gateways (ROLLOUT_RATE)")  # fmt: skip
    p.add_argument("--interval-s", type=float, default=float(env("ROLLOUT_INTERVAL_S", "5")),
                   help="analysis interval_s (ROLLOUT_INTERVAL_S)")  # fmt: skip
    p.add_argument("--min-requests", type=int, default=int(env("ROLLOUT_MIN_REQUESTS", "10")),
                   help="candidate requests an interval needs, else inconclusive (ROLLOUT_MIN_REQUESTS)")  # fmt: skip
    p.add_argument("--weights", default=env("ROLLOUT_WEIGHTS", "10,30,60"), help="canary weights, in order")
    p.add_argument("--shadow-percent", type=float, default=float(env("ROLLOUT_SHADOW_PERCENT", "20")))
    p.add_argument("--error-condition", default=env("ROLLOUT_ERROR_CONDITION", "error_rate < 0.05"))
    p.add_argument("--latency-condition", default=env("ROLLOUT_LATENCY_CONDITION", "p95_latency_ms < stable * 1.5"))
    p.add_argument("--analysis", choices=("gate", "default"), default=env("ROLLOUT_ANALYSIS", "gate"),
                   help="gate: an analysis step after each weight with --error-condition and --latency-condition;\n"
                   "default: no analysis step, so the default analysis (issue 17) after each weight (ROLLOUT_ANALYSIS)")  # fmt: skip
    p.add_argument("--baseline-percent", type=float, default=float(env("ROLLOUT_BASELINE_PERCENT", "10")),
                   help="the shadow step's baseline_percent: stable shadowed against itself")  # fmt: skip
    p.add_argument("--json-share", type=float, default=float(env("ROLLOUT_JSON_SHARE", "0.3")),
                   help="share of requests asking for response_format json_object")  # fmt: skip
    p.add_argument("--identical-runs", type=int, default=int(env("ROLLOUT_IDENTICAL_RUNS", "10")),
                   help="with --analysis default: runs of v2-identical (each must be promoted)")  # fmt: skip
    p.add_argument("--candidates", default=env("ROLLOUT_CANDIDATES"),
                   help="in order; default: v2-healthy,v2-flaky,v2-slow (gate) or\n"
                   "v2-offtopic,v2-refusal,v2-rambling,v2-json and v2-identical --identical-runs times (default)")  # fmt: skip
    p.add_argument("--users", type=int, default=int(env("ROLLOUT_USERS", "100000")), help="distinct user values")
    p.add_argument("--settle-s", type=float, default=float(env("ROLLOUT_SETTLE_S", "2")),
                   help="the canary's first step: a pause at 0%% while traffic starts")  # fmt: skip
    p.add_argument("--tail-s", type=float, default=float(env("ROLLOUT_TAIL_S", "4")),
                   help="traffic after the rollout ended")  # fmt: skip
    p.add_argument("--run-timeout-s", type=float, default=float(env("ROLLOUT_RUN_TIMEOUT_S", "90")))
    p.add_argument("--poll-s", type=float, default=float(env("ROLLOUT_POLL_S", "1")), help="rollout.poll_s")
    p.add_argument("--lease-ttl-s", type=float, default=float(env("ROLLOUT_LEASE_TTL_S", "3")))
    p.add_argument("--status-window-s", type=float, default=float(env("ROLLOUT_STATUS_WINDOW_S", "30")))
    p.add_argument("--flaky-share", type=float, default=float(env("ROLLOUT_FLAKY_SHARE", "0.2")))
    p.add_argument("--slow-ms", type=float, default=float(env("ROLLOUT_SLOW_MS", "300")))
    p.add_argument("--seed", type=int, default=int(env("ROLLOUT_SEED", "1")))
    p.add_argument("--redis-url", default=env("ROLLOUT_REDIS_URL"), help="default: a redis-server of its own")
    p.add_argument("--out", type=Path, default=Path(env("ROLLOUT_OUT", str(ROOT / "bench/out/rollout"))))
    args = p.parse_args(argv)
    args.weights = [float(w) for w in args.weights.split(",") if w]
    if args.candidates:
        args.candidates = [c for c in args.candidates.split(",") if c]
    elif args.analysis == "gate":
        args.candidates = list(GATE_CANDIDATES)
    else:
        args.candidates = [*QUALITY_CANDIDATES[:-1], *[QUALITY_CANDIDATES[-1]] * args.identical_runs]
    if set(args.candidates) - set(CANDIDATES):
        p.error(f"candidates are some of {', '.join(CANDIDATES)}")
    return args


# -- the gateways and their CLI ------------------------------------------------------------------
async def cli(*argv: str) -> tuple[int, str]:
    """`interlock <argv>` with this interpreter, off the event loop's back: (exit status, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", *argv, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def gateway_config(args: argparse.Namespace, upstream: FakeUpstream, redis_url: str, prefix: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": MODEL,
                "cache": {"enabled": False},
                "deployments": [
                    {
                        "id": f"{MODEL}-{v}",
                        "backend": "openai",
                        "api_base": upstream.base(v),
                        "version": v,
                        "timeout": 10,
                    }
                    for v in VERSIONS
                ],
            }
        ],
        # A bad candidate's failures must reach its callers for the analysis to see them: no retries,
        # and a circuit that does not open and quietly send its share to the stable version.
        "router": {"retries": 0, "circuit": {"failures": 100000}},
        "rollout": {
            "redis": {"url": redis_url},
            "prefix": prefix,
            "poll_s": args.poll_s,
            "lease_ttl_s": args.lease_ttl_s,
            "status_window_s": args.status_window_s,
        },
        # No rules: the alert engine is here for its webhook, which receives `RolloutAborted`; its
        # 1 s buckets are the windows the analyses read.
        "alerts": {
            "bucket_s": 1,
            "evaluate_s": 1,
            "webhooks": {"bench": {"kind": "json", "url": upstream.hook_url, "backoff_s": 0.2}},
        },
    }


def canary(args: argparse.Namespace, candidate: str) -> dict[str, Any]:
    if args.analysis == "default":
        # No analysis step: the default analysis follows each weight. Its template is tuned to the
        # bench's time scale by name; `metrics` left out, so the default conditions.
        default = {"interval_s": args.interval_s, "count": 1, "min_requests": args.min_requests}
        steps: list[dict[str, Any]] = [
            {"pause": {"duration_s": args.settle_s}},
            {"shadow": {"percent": args.shadow_percent, "baseline_percent": args.baseline_percent}},
            *({"set_weight": w} for w in args.weights),
        ]
        return {"model": MODEL, "stable": STABLE, "candidate": candidate, "sticky": "user",
                "templates": {"default": default}, "steps": steps}  # fmt: skip
    gate = {
        "interval_s": args.interval_s,
        "count": 1,
        "failure_limit": 0,
        "min_requests": args.min_requests,
        "metrics": [{"condition": args.error_condition}, {"condition": args.latency_condition}],
    }
    steps = [
        {"pause": {"duration_s": args.settle_s}},
        {"shadow": {"percent": args.shadow_percent}},
    ]
    for w in args.weights:
        steps += [{"set_weight": w}, {"analysis": "gate"}]
    return {"model": MODEL, "stable": STABLE, "candidate": candidate, "sticky": "user", "templates": {"gate": gate},
            "steps": steps}  # fmt: skip


# -- traffic --------------------------------------------------------------------------------------
@dataclass(slots=True)
class Answer:
    tag: int
    sent: float  # time.time()
    gateway: int
    user: str
    status: int = 0  # 0: no HTTP answer
    deployment: str | None = None  # x-interlock-deployment (only on successful answers)
    latency_ms: float = 0.0
    error: str = ""


class Load:
    """Open loop: request i is due at start + i / rate, whether or not earlier ones were answered."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: list[str],
        rate: float,
        users: int,
        seed: int,
        json_share: float = 0.0,
    ) -> None:
        self._session, self._urls, self._rate, self._users = session, urls, rate, users
        self._json_share = json_share
        self._rng = random.Random(seed)
        self.answers: list[Answer] = []
        self.next_tag = 0
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while True:
            delay = start + sent / self._rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent += 1
            tag, self.next_tag = self.next_tag, self.next_tag + 1
            a = Answer(tag, time.time(), tag % len(self._urls), f"user-{self._rng.randrange(self._users)}")
            body: dict[str, Any] = {
                "model": MODEL,
                "user": a.user,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"[req {tag}] {self._rng.choice(PROMPTS)}"}],
            }
            if self._json_share > 0 and self._rng.random() < self._json_share:
                body["response_format"] = {"type": "json_object"}
            self.answers.append(a)
            task = loop.create_task(self._post(a, orjson.dumps(body)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _post(self, a: Answer, body: bytes) -> None:
        started = time.perf_counter()
        url = self._urls[a.gateway] + "/v1/chat/completions"
        try:
            async with self._session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                data = await r.read()
                a.status, a.deployment = r.status, r.headers.get("x-interlock-deployment")
                if r.status != 200:
                    a.error = data[:300].decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            a.error = type(exc).__name__
        a.latency_ms = (time.perf_counter() - started) * 1000

    async def drain(self, timeout: float = 20.0) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=timeout)


@dataclass(slots=True)
class Entry:
    t: float
    revision: int
    phase: str
    reason: str
    step: int
    step_started_at: float
    weights: dict[str, float]
    shadow_percent: float
    verdicts: list[dict[str, Any]]
    analysis_taken: int


class Timeline:
    """The rollout's state, read from Redis every 0.1 s; an entry whenever its revision changes."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis, self._key = redis, f"{prefix}rollout:{MODEL}"
        self.entries: list[Entry] = []
        self.stopped = False

    async def run(self) -> None:
        # A flag, not only cancel(): redis-py can turn a cancelled read into a ConnectionError, which
        # the loop suppresses, and a timeline that outlived its run went on recording the next runs.
        while not self.stopped:
            with contextlib.suppress(OSError, ConnectionError):
                blob = await self._redis.hget(self._key, "blob")
                if blob is not None:
                    s = decode(blob).state
                    if not self.entries or self.entries[-1].revision != s.revision:
                        self.entries.append(Entry(time.time(), s.revision, s.phase, s.reason, s.step,
                                                  s.step_started_at, dict(s.weights),
                                                  s.shadow_percent, [{"step": v.step, "phase": v.phase, "at": v.at,
                                                  "message": v.message} for v in s.verdicts],
                                                  s.analysis.taken if s.analysis else 0))  # fmt: skip
            await asyncio.sleep(0.1)

    @property
    def last(self) -> Entry | None:
        return self.entries[-1] if self.entries else None


async def shadow_counts(session: aiohttp.ClientSession, urls: list[str]) -> Counter[tuple[str, str]]:
    """interlock_shadow_requests_total summed over the gateways, by (version, outcome)."""
    counts: Counter[tuple[str, str]] = Counter()
    for url in urls:
        async with session.get(url + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith("interlock_shadow_requests_total{") and f'model="{MODEL}"' in line:
                labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1 : line.index("}")].split(","))
                key = (labels["version"].strip('"'), labels["outcome"].strip('"'))
                counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


# -- one run ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Run:
    candidate: str
    started_at: float = 0.0  # the rollout's started_at
    ended_at: float | None = None  # the state's last verdict (abort) or the promotion
    phase: str = ""
    timed_out: bool = False
    start_output: str = ""
    status_output: str = ""
    answers: list[Answer] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    timeline: list[Entry] = field(default_factory=list)
    shadows: Counter[tuple[str, str]] = field(default_factory=Counter)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


async def run_one(args: argparse.Namespace, candidate: str, ctx: dict[str, Any]) -> Run:
    session, urls, upstream, redis, prefix = ctx["session"], ctx["urls"], ctx["upstream"], ctx["redis"], ctx["prefix"]
    run = Run(candidate)
    t0 = time.monotonic()
    shadows_before = await shadow_counts(session, urls)
    calls_before, hooks_before = len(upstream.calls), len(upstream.hooks)
    spec_path = args.out / "work" / f"canary-{candidate}.json"
    spec_path.write_text(json.dumps(canary(args, candidate), indent=2))
    timeline = Timeline(redis, prefix)
    load = Load(session, urls, args.rate, args.users, args.seed + len(ctx["runs"]), args.json_share)
    load.next_tag = ctx["next_tag"]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(timeline.run())]
    try:
        code, run.start_output = await cli("rollout", "start", "--spec", str(spec_path), "--url", urls[0])
        if code != 0:
            raise RuntimeError(f"interlock rollout start failed: {run.start_output}")
        # Both replicas read the new state (stable at 100 %) within one poll; the canary's first
        # step is a pause at 0 %, so traffic starts before the candidate gets any.
        await asyncio.sleep(args.poll_s + 0.3)
        tasks.append(loop.create_task(load.run()))
        print(f"{candidate}: {run.start_output.splitlines()[0]}", flush=True)
        deadline = time.monotonic() + args.run_timeout_s
        while time.monotonic() < deadline:
            last = timeline.last
            if last is not None and (last.phase in TERMINAL or (last.phase == "Paused" and last.reason != "pause")):
                break
            await asyncio.sleep(0.1)
        last = timeline.last
        if last is None or last.phase not in TERMINAL:
            run.timed_out = True
            print(f"{candidate}: not finished ({last.phase if last else 'no state'}); aborting by hand", flush=True)
            await cli("rollout", "abort", MODEL, "--url", urls[0])
        else:
            print(f"{candidate}: {last.phase}", flush=True)
        await asyncio.sleep(args.tail_s)
    finally:
        if len(tasks) > 1:
            tasks[1].cancel()
    await load.drain()
    await asyncio.sleep(1.5)  # shadow copies still in flight
    timeline.stopped = True
    await tasks[0]
    _, run.status_output = await cli("rollout", "status", MODEL, "--url", urls[0])
    blob = await redis.hget(f"{prefix}rollout:{MODEL}", "blob")
    state = decode(blob).state
    run.phase, run.started_at = state.phase, state.started_at
    run.ended_at = state.verdicts[-1].at if state.verdicts and state.phase == "Degraded" else state.updated_at
    after = await shadow_counts(session, urls)
    run.shadows = Counter(
        {k: after[k] - shadows_before.get(k, 0) for k in after if after[k] - shadows_before.get(k, 0)}
    )
    run.answers, run.calls, run.timeline = load.answers, upstream.calls[calls_before:], timeline.entries
    run.hooks = [asdict(h) for h in upstream.hooks[hooks_before:]]
    ctx["next_tag"] = load.next_tag
    run.seconds = time.monotonic() - t0
    return run


# -- the numbers --------------------------------------------------------------------------------------
def p95(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


def analyse(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    cand_dep, stable_dep = f"{MODEL}-{run.candidate}", f"{MODEL}-{STABLE}"
    by_tag: dict[int, list[Call]] = {}
    for c in run.calls:
        if c.tag is not None:
            by_tag.setdefault(c.tag, []).append(c)
    for calls in by_tag.values():
        calls.sort(key=lambda c: c.at)
    served: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    latency: dict[str, list[float]] = {}
    first_candidate: float | None = None
    cand_before_end = total_before_end = cand_after_end = 0
    shadow_calls: Counter[str] = Counter()
    end = run.ended_at if run.phase != "Healthy" else None
    for a in run.answers:
        calls = by_tag.get(a.tag, [])
        # The caller's call is the first one with its tag; later ones are shadow copies (no retries).
        dep = a.deployment or (f"{MODEL}-{calls[0].version}" if calls else "none")
        for c in calls[1:]:
            shadow_calls["ok" if c.status == 200 else "error"] += 1
        served[dep] += 1
        if a.status != 200:
            failed[dep] += 1
        else:
            latency.setdefault(dep, []).append(a.latency_ms)
        answered_at = calls[0].at if calls else a.sent
        if dep == cand_dep:
            first_candidate = answered_at if first_candidate is None else min(first_candidate, answered_at)
        if end is not None:
            if a.sent <= end:
                total_before_end += 1
                cand_before_end += dep == cand_dep
            elif dep == cand_dep:
                cand_after_end += 1
    verdicts = run.timeline[-1].verdicts if run.timeline else []
    # Candidate answers (by the upstream's answer time) within each analysis interval, as the bench saw them.
    starts = {e.step: e.step_started_at for e in run.timeline}
    cand_times = [c[0].at for c in by_tag.values() if c and c[0].version == run.candidate]
    seen_per_interval = []
    for v in verdicts:
        t = starts.get(v["step"])
        if t is not None:
            seen_per_interval.append(sum(1 for x in cand_times if t <= x < t + args.interval_s))
    weights_at = []
    for e in run.timeline:
        w = e.weights.get(run.candidate, 0.0)
        if not weights_at or weights_at[-1][1] != w:
            weights_at.append((e.t, w, e.phase))
    # Analysis intervals measured: a passed analysis took `count` (1) intervals; the final state's
    # run (a failed or inconclusive one) says how many it took.
    final_taken = run.timeline[-1].analysis_taken if run.timeline else 0
    intervals = sum(1 for v in verdicts if v["phase"] == "Successful") + (final_taken if run.phase != "Healthy" else 0)
    return {
        "requests": len(run.answers),
        "served": dict(served),
        "failed": dict(failed),
        "candidate_failed": failed.get(cand_dep, 0),
        "candidate_served": served.get(cand_dep, 0),
        "stable_failed": failed.get(stable_dep, 0),
        "other_failed": sum(n for d, n in failed.items() if d not in (cand_dep, stable_dep)),
        "p95_ms": {d: p95(v) for d, v in latency.items()},
        "first_candidate": first_candidate,
        "cand_before_end": cand_before_end,
        "total_before_end": total_before_end,
        "cand_after_end": cand_after_end,
        "verdicts": verdicts,
        "weights_at": weights_at,
        "intervals": intervals,
        "shadow_calls": dict(shadow_calls),
        "seen_per_interval": seen_per_interval,
    }


def _rel(t: float | None, t0: float) -> str:
    return f"{t - t0:.1f} s" if t is not None else "-"


def render(args: argparse.Namespace, runs: list[Run], extra: dict[str, str]) -> str:
    if args.analysis == "default":
        gate = (f"the default analysis ({len(DEFAULT_METRICS)} conditions: "
                + ", ".join(f"`{m.condition}`" for m in DEFAULT_METRICS)
                + f"); shadow baseline {args.baseline_percent:g} %; {args.json_share:.0%} of requests ask for JSON")  # fmt: skip
    else:
        gate = f"`{args.error_condition}` and `{args.latency_condition}`"
    lines = [
        f"Canary: pause {args.settle_s:g} s, shadow {args.shadow_percent:g} %, then "
        + ", ".join(f"set_weight {w:g} + analysis" for w in args.weights)
        + f", then promotion. Analysis: interval_s {args.interval_s:g}, count 1, failure_limit 0, min_requests "
        f"{args.min_requests}, {gate}. Load: {args.rate:g} requests/s open loop over two gateways, sticky on "
        f"`user` ({args.users:,} values). rollout.poll_s {args.poll_s:g}, router.retries 0.",
        "",
        "| Candidate | Outcome | Steps (s after the rollout started) | Intervals; s from the candidate's first "
        "answer to the abort | Requests in the run | Served by the candidate before the abort (share of all "
        "requests sent until then) | Served by it after | Caller failures: candidate / stable (shadow path) / "
        "other | Candidate's own error rate | Shadow copies (metrics: ok / error / dropped) | P95 ms stable / "
        "candidate (caller-side) |",
        "|---|---|---|---|---:|---:|---:|---|---:|---|---|",
    ]
    for run in runs:
        r = analyse(run, args)
        t0 = run.started_at
        shadow_on = next((e.t for e in run.timeline if e.shadow_percent > 0), None)
        steps = f"shadow on at {shadow_on - t0:.1f}; " if shadow_on is not None else ""
        steps += "; ".join(f"{w:g} % at {t - t0:.1f}" for t, w, _ in r["weights_at"][1:])
        steps += "; " + "; ".join(f"analysis {v['phase']} at {v['at'] - t0:.1f}" for v in r["verdicts"])
        if run.phase == "Healthy":
            outcome = "**promoted** (Healthy)"
            abort = "-"
            share = "-"
        else:
            outcome = f"**{run.phase}**" + (" (timed out, aborted by hand)" if run.timed_out else "")
            secs = f"{run.ended_at - r['first_candidate']:.1f} s" if r["first_candidate"] and run.ended_at else "-"
            abort = f"{r['intervals']}; {secs}"
            n, total = r["cand_before_end"], r["total_before_end"]
            share = f"{n} of {total} ({n / total:.1%})" if total else "-"
        cand_dep, stable_dep = f"{MODEL}-{run.candidate}", f"{MODEL}-{STABLE}"
        served_c = r["candidate_served"]
        own = f"{r['candidate_failed']} / {served_c} ({r['candidate_failed'] / served_c:.1%})" if served_c else "-"
        sh = run.shadows
        shadow = (f"{sh.get((run.candidate, 'ok'), 0)} / {sh.get((run.candidate, 'error'), 0)} / "
                  f"{sh.get((run.candidate, 'dropped'), 0)}")  # fmt: skip
        lat = r["p95_ms"]
        p = f"{_ms(lat.get(stable_dep))} / {_ms(lat.get(cand_dep))}"
        after = str(r["cand_after_end"]) if run.phase != "Healthy" else "-"
        lines.append(f"| {run.candidate} | {outcome} | {steps} | {abort} | {r['requests']:,} | {share} | {after} | "
                     f"{r['candidate_failed']} / **{r['stable_failed']}** / {r['other_failed']} | {own} | {shadow} "
                     f"| {p} |")  # fmt: skip
    lines.append("")
    for run in runs:
        r = analyse(run, args)
        lines += [
            f"### {run.candidate}",
            "",
            f"- Answers by deployment: {json.dumps(r['served'])}; failed: {json.dumps(r['failed'])}",
            f"- Shadow calls the upstream saw (a second call with a caller request's tag): {json.dumps(r['shadow_calls'])}"
            f"; interlock_shadow_requests_total over both gateways: "
            + json.dumps({f"{v}/{o}": n for (v, o), n in sorted(run.shadows.items())}),
            "- Verdicts: "
            + ("; ".join(f"step {v['step']} {v['phase']}: {v['message']}" for v in r["verdicts"]) or "none"),
            "- Webhook posts: " + (", ".join(_hook(h, run) for h in run.hooks) or "none"),
            "- Candidate answers within each analysis interval, as the bench counted them (the analysis reads "
            f"the gateways' windows): {r['seen_per_interval']}",
            f"- Run: {run.seconds:.0f} s",
            "",
            "`interlock rollout status chat` at the end of the run:",
            "",
            "```",
            run.status_output.rstrip(),
            "```",
            "",
        ]
    for key, value in extra.items():
        lines.append(f"{key}: {value}  ")
    return "\n".join(lines) + "\n"


def _hook(h: dict[str, Any], run: Run) -> str:
    b = h["body"]
    when = f", {h['at'] - run.ended_at:+.2f} s after the verdict" if run.ended_at is not None else ""
    return f"{b.get('alert')} {b.get('status')} for {b.get('version')} ({b.get('labels', {}).get('reason', '')}){when}"


def _ms(v: float | None) -> str:
    return f"{v:.0f}" if v is not None else "-"


def expected(candidate: str) -> str:
    return "Healthy" if candidate in PROMOTED else "Degraded"


# -- main -------------------------------------------------------------------------------------------
async def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out: Path = args.out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    redis_proc, redis_url = (None, args.redis_url) if args.redis_url else start_redis(work)
    prefix = f"rolloutbench:{stamp}:"
    upstream = FakeUpstream(seed=args.seed, flaky_share=args.flaky_share, slow_extra_ms=args.slow_ms)
    await upstream.start()
    gateways: list[Process] = []
    redis = Redis.from_url(redis_url)
    runs: list[Run] = []
    try:
        config_path = work / "interlock.yaml"
        config_path.write_text(yaml.safe_dump(gateway_config(args, upstream, redis_url, prefix), sort_keys=False))
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            cmd = [sys.executable, "-m", "interlock", "serve", "--config", str(config_path), "--port", str(port)]
            gateways.append(Process(cmd, work / f"gateway-{i}.log"))
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        connector = aiohttp.TCPConnector(limit=512)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            for url, proc in zip(urls, gateways, strict=True):
                await wait_http(session, url + "/healthz", proc)
            ctx: dict[str, Any] = {"session": session, "urls": urls, "upstream": upstream, "redis": redis,
                                   "prefix": prefix, "runs": runs, "next_tag": 0}  # fmt: skip
            for candidate in args.candidates:
                runs.append(await run_one(args, candidate, ctx))
        elapsed = time.monotonic() - started
        extra = {
            "Run time": f"{elapsed / 60:.1f} min, finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        }
        for candidate in dict.fromkeys(run.candidate for run in runs):
            mine = [run for run in runs if run.candidate == candidate]
            good = sum(run.phase == expected(candidate) and not run.timed_out for run in mine)
            extra[candidate] = f"{expected(candidate)} as expected in {good} of {len(mine)} runs"
        table = render(args, runs, extra)
        print("\n" + table)
        (out / "table.md").write_text(table)
        with (out / "answers.jsonl").open("wb") as f:
            for run in runs:
                for a in run.answers:
                    f.write(orjson.dumps({"run": run.candidate, **asdict(a)}) + b"\n")
        with (out / "timeline.jsonl").open("wb") as f:
            for run in runs:
                for e in run.timeline:
                    f.write(orjson.dumps({"run": run.candidate, **asdict(e)}) + b"\n")
        ok = all(run.phase == expected(run.candidate) and not run.timed_out for run in runs)
        ok = ok and all(analyse(run, args)["stable_failed"] == 0 for run in runs)
        return 0 if ok else 1
    finally:
        for g in gateways:
            g.stop()
        await redis.aclose()
        await upstream.close()
        if redis_proc is not None:
            redis_proc.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(options())))
