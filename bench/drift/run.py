"""Drift benchmark (issue 4): does the gateway stay quiet on ordinary traffic, and how many requests
does it take to alert on shifted traffic?

    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1   # plus a directory holding Faker, if it is not installed
    .venv/bin/python bench/drift/run.py [--rate 20 --window-s 30 ...]   # every flag: --help

1. Reference: `--reference-n` ordinary requests and answers (seeded) as JSON Lines, made into a
   profile by `interlock drift baseline --jsonl ... --embeddings`.
2. A fake model, the alert webhook and the retraining URL, served by this process (`servers.py`);
   Redis of its own (`redis-server` on a free port) unless `--redis-url`.
3. `interlock serve` with the model group on the fake model (cache off), `drift:` (embeddings on,
   the window and rates below) and `alerts:` (one rule: drift_share > 0 over at least
   `--min-requests` live observations, posting to the webhook and the retraining URL).
4. Phase (a): ordinary traffic (another seed) at `--rate` requests/s, open loop, for `--windows`
   windows; every firing post is a false alarm.
5. Phase (b): each shift starts from a clean state (a full window of ordinary traffic since the
   previous shift ended, and its alert resolved), then switches the traffic (or the model) and
   counts the requests sent until the firing post arrives; the shift goes on `--hold-s` more
   seconds, to see which features drift once the window holds more of it.
6. A markdown table on standard output and in `<out>/table.md`; every drift report polled from
   GET /admin/drift in `<out>/reports.jsonl`, every post in `<out>/posts.jsonl`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers (servers.py uses them too)
from procs import ROOT, Process, free_port, start_redis, wait_http
from servers import BenchServer, Post
from traffic import TOPICS, Answers, Requests, reference_records

SHIFTS = ("topic", "language", "long", "refusal")
SLOWEST_S = 10.0  # longer than all but a vanishing share of answers (the longest, 30 sentences: about 6 s)
DECIDING_P = ("ks", "chi2", "mmd")  # the check whose p-value decides, per feature kind
EFFECT = ("wasserstein_normalised", "jensen_shannon", "mean_shift_cosine")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=float(env("DRIFT_RATE", "20")), help="requests/s sent (DRIFT_RATE)")
    p.add_argument("--window-s", type=float, default=float(env("DRIFT_WINDOW_S", "30")), help="drift.window_s")
    p.add_argument("--evaluate-s", type=float, default=float(env("DRIFT_EVALUATE_S", "1")),
                   help="drift.evaluate_s and alerts.evaluate_s")  # fmt: skip
    p.add_argument("--windows", type=int, default=int(env("DRIFT_WINDOWS", "10")), help="phase (a) length")
    p.add_argument("--reference-n", type=int, default=int(env("DRIFT_REFERENCE_N", "3000")))
    p.add_argument("--embed-sample", type=float, default=float(env("DRIFT_EMBED_SAMPLE", "0.5")))
    p.add_argument("--embed-max-per-s", type=int, default=int(env("DRIFT_EMBED_MAX_PER_S", "0")),
                   help="default: twice the expected embeddings a second")  # fmt: skip
    p.add_argument("--max-per-s", type=int, default=int(env("DRIFT_MAX_PER_S", "0")), help="default: 10 x rate")
    p.add_argument("--min-requests", type=int, default=int(env("DRIFT_MIN_REQUESTS", "100")))
    p.add_argument("--for-s", type=float, default=float(env("DRIFT_FOR_S", "0")))
    p.add_argument("--hold-s", type=float, default=float(env("DRIFT_HOLD_S", "10")),
                   help="seconds a shift goes on after its alert")  # fmt: skip
    p.add_argument("--shift-timeout-s", type=float, default=float(env("DRIFT_SHIFT_TIMEOUT_S", "60")))
    p.add_argument("--shifts", default=env("DRIFT_SHIFTS", ",".join(SHIFTS)), help="comma-separated, in order")
    p.add_argument("--topic", choices=TOPICS, default=env("DRIFT_TOPIC", "cooking"))
    p.add_argument("--refuse", type=float, default=float(env("DRIFT_REFUSE", "0.5")),
                   help="share of answers refused in the refusal shift (ordinary: 1%%)")  # fmt: skip
    p.add_argument("--seed", type=int, default=int(env("DRIFT_SEED", "1")))
    p.add_argument("--model", default=env("DRIFT_MODEL", "support-bot"))
    p.add_argument("--redis-url", default=env("DRIFT_REDIS_URL"), help="default: a redis-server of its own")
    p.add_argument("--out", type=Path, default=Path(env("DRIFT_OUT", str(ROOT / "bench/out/drift"))))
    args = p.parse_args(argv)
    args.out = args.out.resolve()  # the gateway and the baseline command run from the repository root
    args.shifts = [s for s in args.shifts.split(",") if s]
    unknown = set(args.shifts) - set(SHIFTS)
    if unknown:
        p.error(f"unknown shifts {sorted(unknown)}; expected some of {', '.join(SHIFTS)}")
    if args.max_per_s <= 0:
        args.max_per_s = max(10, int(10 * args.rate))
    if args.embed_max_per_s <= 0:
        args.embed_max_per_s = max(5, int(2 * args.rate * args.embed_sample + 0.999))
    return args


# -- the gateway and its reference -------------------------------------------------------------
def gateway_config(
    args: argparse.Namespace, upstream: str, redis_url: str, reference: Path, run: str
) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": args.model,
                "cache": {"mode": "off"},
                "deployments": [{"id": "fake", "backend": "openai", "api_base": upstream + "/v1"}],
            }
        ],
        "drift": {
            "redis": {"url": redis_url, "prefix": f"driftbench:{run}:drift:"},
            "references": {args.model: str(reference)},
            "window_s": args.window_s,
            "evaluate_s": args.evaluate_s,
            "sample": 1.0,
            "max_per_s": args.max_per_s,
            "embeddings": True,
            "embed_sample": args.embed_sample,
            "embed_max_per_s": args.embed_max_per_s,
        },
        "alerts": {
            "evaluate_s": args.evaluate_s,
            "redis": {"url": redis_url},
            "prefix": f"driftbench:{run}:alerts:",
            "webhooks": {"bench": {"kind": "json", "url": upstream + "/hooks/alerts", "backoff_s": 0.2}},
            # The retraining action receives the drift report of the firing: which features drifted.
            "retrain": {"url": upstream + "/hooks/retrain", "cooldown_s": 1},
            "rules": [
                {
                    "name": "TrafficDrift",
                    "signal": "drift_share",
                    "op": ">",
                    "threshold": 0,
                    "min_requests": args.min_requests,
                    "for_s": args.for_s,
                    "actions": ["bench", "retrain"],
                }
            ],
        },
    }


def build_reference(args: argparse.Namespace, config: Path, work: Path) -> tuple[Path, float]:
    jsonl, profile = work / "reference.jsonl", work / "reference.profile"
    with jsonl.open("wb") as f:
        for record in reference_records(args.reference_n, args.seed, args.model):
            f.write(orjson.dumps(record) + b"\n")
    started = time.monotonic()
    cmd = [sys.executable, "-m", "interlock", "drift", "baseline", "--config", str(config), "--model", args.model,
           "--jsonl", str(jsonl), "--embeddings", "--out", str(profile)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"interlock drift baseline failed:\n{done.stdout}{done.stderr}")
    print(done.stdout.strip(), flush=True)
    return profile, time.monotonic() - started


# -- CPU: is the machine busy with something else? -----------------------------------------------
def _jiffies(pid: int | None = None) -> float:
    """CPU seconds: of one process (user + system), or of the whole machine (all busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is None:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        values = [int(v) for v in fields]
        return (sum(values) - values[3] - values[4]) / tick  # minus idle and iowait
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])) / tick  # with waited-for children


@dataclass(slots=True)
class CpuMeter:
    pids: dict[str, int]
    marks: list[tuple[str, float, float, dict[str, float]]] = field(default_factory=list)

    def mark(self, label: str) -> None:
        sample = {"machine": _jiffies()}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                sample[name] = _jiffies(pid)
        self.marks.append((label, time.monotonic(), os.getloadavg()[0], sample))

    def usage(self) -> list[dict[str, Any]]:
        """Cores used between consecutive marks: by the machine, each process, and everything else,
        with the 1-minute load average at the end of the span."""
        rows = []
        for (label, t0, _, a), (_, t1, load, b) in zip(self.marks, self.marks[1:], strict=False):
            dt = max(t1 - t0, 1e-9)
            row: dict[str, Any] = {"span": label, "seconds": round(dt)}
            for name in b:
                row[name] = round((b[name] - a.get(name, b[name])) / dt, 2)
            row["others"] = round(row["machine"] - sum(row.get(n, 0.0) for n in self.pids), 2)
            row["loadavg_1m"] = round(load, 2)
            rows.append(row)
        return rows


# -- traffic --------------------------------------------------------------------------------------
class Sender:
    """Sends `source()` bodies at `rate` a second, open loop: a request is due at start + i / rate
    whether or not earlier ones have been answered."""

    def __init__(self, session: aiohttp.ClientSession, url: str, rate: float, source: Callable[[], dict[str, Any]]):
        self._session = session
        self._url = url
        self._rate = rate
        self.source = source
        self.sent = 0
        self.ok = 0
        self.waited_s = 0.0  # round trips of the answered requests, summed
        self.failed: dict[str, int] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            delay = start + self.sent / self._rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = orjson.dumps(self.source())
            self.sent += 1
            task = loop.create_task(self._post(body))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _post(self, body: bytes) -> None:
        started = time.perf_counter()
        try:
            async with self._session.post(self._url, data=body, headers={"content-type": "application/json"}) as r:
                await r.read()
                if r.status == 200:
                    self.ok += 1
                    self.waited_s += time.perf_counter() - started
                else:
                    self.failed[str(r.status)] = self.failed.get(str(r.status), 0) + 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.failed[type(exc).__name__] = self.failed.get(type(exc).__name__, 0) + 1

    async def drain(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=30)


def compact(report: dict[str, Any]) -> dict[str, Any]:
    """A drift report, reduced to what the table and the reading need."""
    features = {}
    for f in report["features"]:
        checks = {c["name"]: c for c in f["checks"]}
        p = next((checks[n]["p_value"] for n in DECIDING_P if n in checks), None)
        effect = next((checks[n]["statistic"] for n in EFFECT if n in checks), None)
        features[f["name"]] = {"status": f["status"], "n_live": f["n_live"], "p": p, "effect": effect}
    return {
        "n_live": report["n_live"],
        "share": report["drifted_share"],
        "drifted": report["drifted_features"],
        "features": features,
    }


class Poller:
    """GET /admin/drift every evaluation interval; keeps every report with its time and phase."""

    def __init__(self, session: aiohttp.ClientSession, url: str, every: float, phase: Callable[[], str], model: str):
        self._session, self._url, self._every, self._phase, self._model = session, url, every, phase, model
        self.records: list[dict[str, Any]] = []

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                async with self._session.get(self._url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    data = orjson.loads(await resp.read())["data"]
                for item in data:
                    if item["model"] == self._model and item["version"] == "all":
                        self.records.append({"t": time.time(), "phase": self._phase(), **compact(item["report"])})

    def latest(self) -> dict[str, Any] | None:
        return self.records[-1] if self.records else None


# -- the scenario ------------------------------------------------------------------------------
@dataclass(slots=True)
class ShiftResult:
    name: str
    label: str
    start: float
    sent_at_start: int
    clean: str  # how the clean state before it was established
    share_at_start: float | None
    alerted: Post | None = None
    drifted_at_alert: list[str] = field(default_factory=list)
    drifted_at_end: list[str] = field(default_factory=list)
    sent: int = 0  # requests of the shift, to its end

    @property
    def requests_to_alert(self) -> int | None:
        return self.alerted.sent - self.sent_at_start if self.alerted is not None else None

    @property
    def seconds_to_alert(self) -> float | None:
        return self.alerted.at - self.start if self.alerted is not None else None


class Scenario:
    def __init__(self, args: argparse.Namespace, server: BenchServer, sender: Sender, poller: Poller) -> None:
        self.args, self.server, self.sender, self.poller = args, server, sender, poller
        self.phase = "warm-up"
        self.ordinary = Requests("ordinary", args.seed + 100, args.model)
        self.shifted = {
            "topic": Requests("topic", args.seed + 200, args.model, args.topic),
            "language": Requests("language", args.seed + 300, args.model),
            "long": Requests("long", args.seed + 400, args.model),
        }
        self.labels = {
            "topic": f"another topic ({args.topic})",
            "language": "another language (French)",
            "long": "prompts three times longer",
            "refusal": f"the model refuses ({args.refuse:.0%} of answers)",
        }
        self.a_start = self.a_end = 0.0
        self.a_sent = 0
        self.results: list[ShiftResult] = []
        self.last_shift_end = 0.0

    async def phase_a(self) -> None:
        self.phase, self.a_start, sent0 = "a", time.time(), self.sender.sent
        self.sender.source = self.ordinary
        print(f"phase (a): ordinary traffic for {self.args.windows} windows of {self.args.window_s:g} s", flush=True)
        await asyncio.sleep(self.args.windows * self.args.window_s)
        self.a_end, self.a_sent = time.time(), self.sender.sent - sent0
        print(f"phase (a): {self.a_sent} requests, {len(self.false_alarms())} firing post(s)", flush=True)

    def false_alarms(self) -> list[Post]:
        return [p for p in self.server.firing() if p.phase == "a"]

    async def clean_state(self) -> str:
        """Ordinary traffic until the live window holds none of the previous shift and the alert
        it raised has resolved. An exchange is observed when its answer comes, so the last shifted
        one may come up to SLOWEST_S after the shift ended; it then stays for a window and a slice
        (the window slides by slices), and the reports lag by up to two evaluations."""
        a = self.args
        need = SLOWEST_S + a.window_s * 1.1 + 2 * a.evaluate_s
        waited_from = time.time()
        while True:
            quiet = time.time() - self.last_shift_end >= need
            if quiet and not self.server.is_firing():
                break
            if time.time() - waited_from > 4 * a.window_s + need:
                return "alert still firing after four windows of ordinary traffic; went on anyway"
            await asyncio.sleep(0.25)
        if not self.results:
            return "the end of phase (a)"
        return f"{time.time() - self.last_shift_end:.0f} s of ordinary traffic since the previous shift, alert resolved"

    async def shift(self, name: str) -> ShiftResult:
        a = self.args
        self.phase = f"flush before {name}"
        clean = await self.clean_state()
        latest = self.poller.latest()
        result = ShiftResult(name, self.labels[name], time.time(), self.sender.sent, clean,
                             latest["share"] if latest else None)  # fmt: skip
        self.phase = name
        if name == "refusal":
            self.server.refuse = a.refuse
        else:
            self.sender.source = self.shifted[name]
        print(f"shift {name}: started after {clean}", flush=True)
        deadline = result.start + a.shift_timeout_s
        while result.alerted is None and time.time() < deadline:
            self.server.posted.clear()
            fired = self.server.firing(result.start)
            if fired:
                result.alerted = fired[0]
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.posted.wait(), timeout=0.5)
        if result.alerted is not None:
            result.drifted_at_alert = await self._report_of_firing(result.alerted)
            print(f"shift {name}: alert after {result.requests_to_alert} requests, "
                  f"{result.seconds_to_alert:.1f} s: {', '.join(result.drifted_at_alert)}", flush=True)  # fmt: skip
            await asyncio.sleep(a.hold_s)
        else:
            print(f"shift {name}: no alert within {a.shift_timeout_s:g} s", flush=True)
        latest = self.poller.latest()
        result.drifted_at_end = list(latest["drifted"]) if latest else []
        self.server.refuse = Answers.BASE_REFUSAL
        self.sender.source = self.ordinary
        self.last_shift_end = time.time()
        result.sent = self.sender.sent - result.sent_at_start
        self.phase = f"flush after {name}"
        self.results.append(result)
        return result

    async def _report_of_firing(self, firing: Post) -> list[str]:
        """The drifted features in the report the retraining URL received with this firing (or,
        if it does not come within 3 s, the latest polled report)."""
        for _ in range(30):
            for post in self.server.retrains:
                if post.at >= firing.at - 0.5:
                    return list(post.body["drift_report"]["drifted_features"])
            await asyncio.sleep(0.1)
        latest = self.poller.latest()
        return [*latest["drifted"], "(polled)"] if latest else []


# -- the report -----------------------------------------------------------------------------------
def phase_a_margins(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per feature over phase (a)'s evaluations: how often it was tested and drifted, the smallest
    p-value (with the effect in that evaluation) and the largest effect (with its p-value)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["phase"] != "a":
            continue
        for name, f in r["features"].items():
            row = rows.setdefault(name, {"feature": name, "tested": 0, "drifted": 0, "min_p": None, "max_effect": None})
            if f["status"] == "insufficient":
                continue
            row["tested"] += 1
            row["drifted"] += f["status"] == "drifted"
            pair = (f["p"], f["effect"])
            if f["p"] is not None and (row["min_p"] is None or f["p"] < row["min_p"][0]):
                row["min_p"] = pair
            if f["effect"] is not None and (row["max_effect"] is None or f["effect"] > row["max_effect"][1]):
                row["max_effect"] = pair
    return list(rows.values())


def _pair(pair: tuple[float | None, float | None] | None) -> tuple[str, str]:
    if pair is None:
        return "-", "-"
    return tuple(f"{v:.3g}" if v is not None else "-" for v in pair)  # type: ignore[return-value]


def _typical_n(records: list[dict[str, Any]], phase: str, feature: str) -> str:
    values = sorted(
        r["features"][feature]["n_live"] for r in records if r["phase"] == phase and feature in r["features"]
    )
    if not values:
        return "-"
    return f"{values[len(values) // 2]} (median), {values[-1]} (max)"


def render(args: argparse.Namespace, sc: Scenario, extra: dict[str, Any]) -> str:
    a = args
    alarms = sc.false_alarms()
    windows = f"{a.windows} windows of {a.window_s:g} s"
    lines = [
        f"Reference: {a.reference_n} ordinary requests (seed {a.seed}); window {a.window_s:g} s (10 slices), "
        f"evaluation every {a.evaluate_s:g} s; {a.rate:g} requests/s; sample 1.0, max_per_s {a.max_per_s}, "
        f"embed_sample {a.embed_sample:g}, embed_max_per_s {a.embed_max_per_s}; rule drift_share > 0, "
        f"min_requests {a.min_requests}, for_s {a.for_s:g}.",
        "",
        "| Scenario | Requests sent | Alert | Requests to alert | Seconds to alert | Drifted at the alert "
        "| Drifted at the end of the shift |",
        "|---|---:|---|---:|---:|---|---|",
        f"| (a) ordinary traffic, {windows} | {sc.a_sent:,} | {len(alarms)} false alarm(s) | - | - "
        f"| {', '.join(sorted({f for p in alarms for f in _features_of(sc, p)})) or '-'} | - |",
    ]
    for r in sc.results:
        alert = "fired" if r.alerted is not None else f"**none in {a.shift_timeout_s:g} s**"
        n = f"{r.requests_to_alert:,}" if r.requests_to_alert is not None else "-"
        s = f"{r.seconds_to_alert:.1f}" if r.seconds_to_alert is not None else "-"
        lines.append(f"| (b) {r.label} | {r.sent:,} | {alert} | {n} | {s} | {', '.join(r.drifted_at_alert) or '-'} "
                     f"| {', '.join(r.drifted_at_end) or '-'} |")  # fmt: skip
    lines += ["", "Phase (a), per feature over every polled evaluation. A number or category drifts when p < 0.001 AND",
              "its effect > 0.1 (normalised Wasserstein; Jensen-Shannon), the topic when MMD p < 0.001 (its effect,",
              "the cosine shift of the mean, does not decide):", "",
              "| Feature | Evaluations tested | Drifted | Smallest p (effect then) | Largest effect (p then) |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for row in phase_a_margins(sc.poller.records):
        (p1, e1), (p2, e2) = _pair(row["min_p"]), _pair(row["max_effect"])
        lines.append(f"| {row['feature']} | {row['tested']} | {row['drifted']} | {p1} ({e1}) | {e2} ({p2}) |")
    lines += ["", "Live window in phase (a): observations " + _typical_n(sc.poller.records, "a", "prompt_tokens")
              + "; embedded " + _typical_n(sc.poller.records, "a", "topic") + "."]  # fmt: skip
    for key, value in extra.items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def _features_of(sc: Scenario, firing: Post) -> list[str]:
    for post in sc.server.retrains:
        if abs(post.at - firing.at) < 3:
            return list(post.body["drift_report"]["drifted_features"])
    return []


# -- main -------------------------------------------------------------------------------------------
async def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out: Path = args.out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    redis_proc, redis_url = (None, args.redis_url) if args.redis_url else start_redis(work)
    sender_ref: list[Sender] = []
    sc_ref: list[Scenario] = []
    server = BenchServer(Answers(args.seed + 500), lambda: sender_ref[0].sent if sender_ref else 0,
                         lambda: sc_ref[0].phase if sc_ref else "setup")  # fmt: skip
    await server.start()
    gateway: Process | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        config_path = work / "interlock.yaml"
        reference = work / "reference.profile"
        config = gateway_config(args, server.base, redis_url, reference, run)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        print(f"building the reference ({args.reference_n} requests, embeddings on) ...", flush=True)
        _, reference_s = build_reference(args, config_path, work)
        port = free_port()
        gateway = Process([sys.executable, "-m", "interlock", "serve", "--config", str(config_path), "--port", str(port)],
                          work / "gateway.log", env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            await wait_http(session, url + "/healthz", gateway)
            pids = {"gateway": gateway.pid, "bench": os.getpid()}
            if redis_proc is not None:
                pids["redis"] = redis_proc.pid
            cpu = CpuMeter(pids)
            sender = Sender(session, url + "/v1/chat/completions", args.rate, lambda: {})
            poller = Poller(session, url + "/admin/drift", args.evaluate_s, lambda: sc.phase, args.model)
            sc = Scenario(args, server, sender, poller)
            sender_ref.append(sender)
            sc_ref.append(sc)
            sender.source = sc.ordinary
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(sender.run()), loop.create_task(poller.run())]
            cpu.mark("phase (a)")
            await sc.phase_a()
            for name in args.shifts:
                cpu.mark(f"shift {name}")
                await sc.shift(name)
            cpu.mark("end")
            for task in tasks:
                task.cancel()
            await sender.drain()
            async with session.get(url + "/metrics") as resp:
                metrics = (await resp.text()).splitlines()
        dropped = next((line.split()[-1] for line in metrics if line.startswith("interlock_drift_dropped_total")), "?")
        elapsed = time.monotonic() - started
        extra = {
            "Requests": f"{sender.sent:,} sent, {sender.ok:,} answered 200, failures {sender.failed or 'none'}; "
            f"observations dropped by the monitor (interlock_drift_dropped_total): {dropped}",
            "Mean round trip less the fake model's latency (gateway, loopback, both event loops)": (
                f"{(sender.waited_s - server.slept_s) / max(1, sender.ok) * 1000:.1f} ms over "
                f"{sender.waited_s / max(1, sender.ok) * 1000:.0f} ms"
            ),
            "Clean state before each shift": "; ".join(f"{r.name}: {r.clean}" for r in sc.results) or "no shift run",
            "All webhook posts (time from phase (a) start, status, phase)": "; ".join(
                f"{p.at - sc.a_start:.1f} s {p.body.get('status')} ({p.phase})" for p in server.alerts
            )
            or "none",
            "CPU (cores used per span: machine, gateway, bench, redis, everything else)": json.dumps(cpu.usage()),
            "Reference build (interlock drift baseline --embeddings)": f"{reference_s:.0f} s",
            "Run time": f"{elapsed / 60:.1f} min, finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        }
        table = render(args, sc, extra)
        print("\n" + table)
        (out / "table.md").write_text(table)
        with (out / "reports.jsonl").open("wb") as f:
            for record in poller.records:
                f.write(orjson.dumps(record) + b"\n")
        with (out / "posts.jsonl").open("wb") as f:
            for kind, posts in (("alert", server.alerts), ("retrain", server.retrains)):
                for p in posts:
                    f.write(orjson.dumps({"kind": kind, "at": p.at, "sent": p.sent, "phase": p.phase, "body": p.body}))
                    f.write(b"\n")
        failed_shifts = [r.name for r in sc.results if r.alerted is None]
        return 1 if sc.false_alarms() or failed_shifts else 0
    finally:
        for task in tasks:
            task.cancel()
        if gateway is not None:
            gateway.stop()
        await server.close()
        if redis_proc is not None:
            redis_proc.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(options())))
