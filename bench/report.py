"""Helpers for the benchmark scripts: parse wrk output, print the results table, read /metrics,
summarise a py-spy profile. Standard library only.

    report.py table DIR                   the markdown table from DIR/<run>.txt (see RUNS)
    report.py clients DIR                 native vs aiohttp upstream client, cache miss, from DIR
    report.py secure DIR                  secured vs plain cache hit, from DIR
    report.py observed DIR                observed (drift, alerts, traces) vs plain cache hit
    report.py servers DIR FIRST [OTHER...]  the HTTP servers side by side (BENCH_SERVERS)
    report.py workers DIR                 `--workers 2` against one (BENCH_WORKERS2)
    report.py streams DIR NAME...         the streaming rows (BENCH_STREAM)
    report.py requests FILE...            total requests wrk reported in FILE(s)
    report.py errors FILE...              socket errors + non-2xx responses in FILE(s)
    report.py compare BASE_DIR... -- HEAD_DIR...
                                          two trees' runs side by side (bench/compare.sh): per
                                          row the median over the runs of each, and head / base
    report.py compare-costs BASE_DIR... -- HEAD_DIR...
                                          the same for secure_cost.py's figures (DIR/costs.txt):
                                          the least disturbed run of each tree
    report.py metric URL NAME [LABEL=V]   sum of the samples of a Prometheus metric (sent with
                                          `Authorization: Bearer $BENCH_METRICS_KEY` when set)
    report.py profile FILE [N]            top frames of a py-spy raw (collapsed) profile
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")

# (file stem, label, connections, baseline file stem for "added latency", optional)
# Optional rows are left out of the table when their file is missing; the others say "not measured".
RUNS = [
    ("direct-c1", "nginx direct", 1, None, True),  # c1 rows: only with BENCH_C1=1
    ("direct-c8", "nginx direct", 8, None, False),
    ("direct-c64", "nginx direct", 64, None, False),
    ("miss-c1", "Interlock, cache miss", 1, "direct-c1", True),
    ("miss-c8", "Interlock, cache miss", 8, "direct-c8", False),
    ("miss-c64", "Interlock, cache miss", 64, "direct-c64", False),
    # a second gateway with `upstream: {client: aiohttp}` (not with BENCH_AIOHTTP=0)
    ("aiohttp-miss-c8", "Interlock (aiohttp client), cache miss", 8, "direct-c8", True),
    ("aiohttp-miss-c64", "Interlock (aiohttp client), cache miss", 64, "direct-c64", True),
    ("hit-c64", "Interlock, cache hit", 64, None, False),
    # a third gateway with API keys, rate limits in Redis and DLP (not with BENCH_SECURE=0)
    ("secure-hit-c64", "Interlock secured (key, limits, DLP), cache hit", 64, None, True),
    # a fourth gateway with drift monitoring, alert rules and tracing (not with BENCH_OBSERVED=0)
    ("observed-hit-c64", "Interlock observed (drift, alerts, traces), cache hit", 64, None, True),
]
SECURE_TARGET = 0.85  # secured cache-hit throughput / plain cache-hit throughput, from issue 11 (issue 3: 70 %)
OBSERVED_TARGET = 0.90  # observed / plain, from issue 4


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    percentiles_ms: dict[int, float]
    socket_errors: int
    non2xx: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx


def parse_wrk(text: str) -> WrkResult:
    """Parse the output of `wrk --latency`. Raises ValueError when a figure is missing."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    pcts = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _PERCENTILE.findall(text)}
    if rps is None or total is None or not {50, 99} <= pcts.keys():
        raise ValueError("not the output of a finished `wrk --latency` run")
    sock = _SOCKET.search(text)
    non2xx = _NON2XX.search(text)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000.0,
        percentiles_ms=pcts,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
    )


def load(path: Path) -> WrkResult | None:
    try:
        return parse_wrk(path.read_text())
    except (OSError, ValueError):
        return None


def cpu_us(folder: Path, stem: str, requests: int) -> float | None:
    """The gateway's CPU time per request in a row (`stem.cpu`: clock ticks and ticks a second,
    written by run.sh's `measure` with a pid), in microseconds. Less moved by the rest of this
    shared machine than requests/s: a request costs the CPU it costs, whoever else runs."""
    try:
        ticks, per_s = (int(x) for x in (folder / f"{stem}.cpu").read_text().split())
    except (OSError, ValueError):
        return None
    return ticks / per_s / requests * 1e6 if requests else None


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} µs"


def _ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f} ms" if signed else f"{value:.3f} ms"


def table(folder: Path) -> str:
    results = {stem: load(folder / f"{stem}.txt") for stem, *_ in RUNS}
    lines = [
        "| Target | Conns | Requests/s | vs nginx | p50 | p99 | Added p50 | Added p99 | Gateway CPU / request | Errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stem, label, conns, base_stem, optional in RUNS:
        r = results[stem]
        if r is None and optional:
            continue
        if r is None:
            lines.append(f"| {label} | {conns} | not measured | | | | | | | |")
            continue
        base = results.get(base_stem) if base_stem else None
        p50, p99 = r.percentiles_ms[50], r.percentiles_ms[99]
        added50 = p50 - base.percentiles_ms[50] if base else None
        added99 = p99 - base.percentiles_ms[99] if base else None
        direct = results.get(f"direct-c{conns}")
        ratio = f"{r.rps / direct.rps:.3f}" if direct and direct.rps else "-"
        lines.append(
            f"| {label} | {conns} | {r.rps:,.0f} | {ratio} | {_ms(p50)} | {_ms(p99)} "
            f"| {_ms(added50, True)} | {_ms(added99, True)} | {_us(cpu_us(folder, stem, r.requests))} | {r.errors} |"
        )
    return "\n".join(lines)


def clients(folder: Path) -> str:
    """One line per connection count: the default (native) client against the aiohttp client."""
    lines = []
    for conns in (8, 64):
        native = load(folder / f"miss-c{conns}.txt")
        other = load(folder / f"aiohttp-miss-c{conns}.txt")
        direct = load(folder / f"direct-c{conns}.txt")
        if native is None or other is None or not other.rps:
            continue
        line = (
            f"- {conns} connections: native {native.rps:,.0f} req/s vs aiohttp {other.rps:,.0f} req/s"
            f" = {native.rps / other.rps:.2f}x; p99 {_ms(native.percentiles_ms[99])}"
            f" vs {_ms(other.percentiles_ms[99])}"
        )
        if direct is not None:
            base = direct.percentiles_ms[50]
            line += (
                f"; added p50 {_ms(native.percentiles_ms[50] - base, True)}"
                f" vs {_ms(other.percentiles_ms[50] - base, True)}"
            )
        lines.append(line)
    return "\n".join(lines) if lines else "- not measured"


def against_plain(folder: Path, row: str, name: str, target: float) -> str:
    """A cache-hit row of another gateway against the plain one of the same round, for every
    round of the run (BENCH_ROUNDS: the rows are measured in turn, round after round, so a
    disturbance of this shared machine lands on one round, not on one gateway); the verdict is
    on the median ratio."""
    ratios = []
    cpu_ratios = []
    lines = []
    for suffix in ["", *(f"-r{n}" for n in range(2, 100))]:
        plain = load(folder / f"hit-c64{suffix}.txt")
        other = load(folder / f"{row}{suffix}.txt")
        if plain is None or other is None or not plain.rps:
            break
        ratios.append(other.rps / plain.rps)
        line = (
            f"  - round {len(ratios)}: {name} {other.rps:,.0f} req/s vs plain {plain.rps:,.0f} req/s"
            f" = {ratios[-1]:.1%}; p99 {_ms(other.percentiles_ms[99])} vs {_ms(plain.percentiles_ms[99])}"
        )
        cpu_plain = cpu_us(folder, f"hit-c64{suffix}", plain.requests)
        cpu_other = cpu_us(folder, f"{row}{suffix}", other.requests)
        if cpu_plain and cpu_other:
            cpu_ratios.append(cpu_plain / cpu_other)
            line += (
                f"; gateway CPU {_us(cpu_other)} vs {_us(cpu_plain)} a request (plain / {name} {cpu_ratios[-1]:.1%})"
            )
        lines.append(line)
    if not ratios:
        return "- not measured"
    median = statistics.median(ratios)
    verdict = "met" if median >= target else "missed"
    head = f"- 64 connections, {name} / plain: median {median:.1%} of {len(ratios)} round(s) (target >= {target:.0%}: {verdict})"
    if cpu_ratios:
        head += f"; by CPU time per request, median {statistics.median(cpu_ratios):.1%}"
    return "\n".join([head, *lines])


def _rounds(folder: Path, stem: str) -> list[WrkResult | None]:
    """A row and its later rounds (`stem`, `stem-r2`, ...), as far as the first round missing."""
    found: list[WrkResult | None] = [load(folder / f"{stem}.txt")]
    for n in range(2, 100):
        path = folder / f"{stem}-r{n}.txt"
        if not path.exists():
            break
        found.append(load(path))
    return found


def servers(folder: Path, first: str, others: list[str]) -> str:
    """One line per HTTP server: its rows (the first gateway's are the unprefixed ones), and its
    cache-hit requests/s against the first server's, the median over the rounds."""
    lines = [
        f"| Server | hit req/s (c64) | hit p99 | miss req/s (c64) | miss added p50 / p99 (c8) | miss added p50 (c1) "
        f"| hit / {first} (median of rounds) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct = {c: load(folder / f"direct-c{c}.txt") for c in (1, 8)}
    first_hits = _rounds(folder, "hit-c64")
    for name in [first, *others]:
        prefix = "" if name == first else f"{name}-"
        hit = load(folder / f"{prefix}hit-c64.txt")
        miss64 = load(folder / f"{prefix}miss-c64.txt")
        miss8 = load(folder / f"{prefix}miss-c8.txt")
        miss1 = load(folder / f"{prefix}miss-c1.txt")
        d8, d1 = direct[8], direct[1]
        added8 = (
            f"{_ms(miss8.percentiles_ms[50] - d8.percentiles_ms[50], True)} / "
            f"{_ms(miss8.percentiles_ms[99] - d8.percentiles_ms[99], True)}"
            if miss8 and d8
            else "-"
        )
        added1 = _ms(miss1.percentiles_ms[50] - d1.percentiles_ms[50], True) if miss1 and d1 else "-"
        ratios = [
            r.rps / b.rps
            for r, b in zip(_rounds(folder, f"{prefix}hit-c64"), first_hits, strict=False)
            if r and b and b.rps
        ]
        ratio = f"{statistics.median(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)})" if ratios else "-"
        lines.append(
            f"| {name} | {f'{hit.rps:,.0f}' if hit else '-'} | {_ms(hit.percentiles_ms[99]) if hit else '-'} "
            f"| {f'{miss64.rps:,.0f}' if miss64 else '-'} | {added8} | {added1} | {ratio} |"
        )
    return "\n".join(lines)


def workers(folder: Path) -> str:
    """The `--workers 2` rows: requests/s, the gateway's CPU (cores' worth) and the machine's."""
    cpu: dict[str, list[float]] = {}
    path = folder / "workers-cpu.log"
    if path.exists():
        for line in path.read_text().splitlines():
            name, gw, busy, tick, seconds, cores = line.split()
            wall = float(seconds) * float(tick)
            cpu[name] = [float(gw) / wall, float(busy) / wall, float(cores)]
    lines = [
        "| Gateway | req/s | p99 | gateway CPU (cores) | machine busy (cores of N) | req per gateway CPU-second |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rates = {}
    for name in ("workers1-hit-c64", "workers2-hit-c64"):
        r = load(folder / f"{name}.txt")
        if r is None:
            continue
        rates[name] = r.rps
        gw, busy, cores = cpu.get(name, [0.0, 0.0, 0.0])
        per_cpu = f"{r.rps / gw:,.0f}" if gw else "-"
        lines.append(
            f"| {name.split('-')[0]} | {r.rps:,.0f} | {_ms(r.percentiles_ms[99])} | {gw:.2f} "
            f"| {busy:.2f} of {cores:.0f} | {per_cpu} |"
        )
    if len(rates) == 2 and rates["workers1-hit-c64"]:
        lines.append("")
        one = rates["workers1-hit-c64"]
        line = f"- two workers / one: {rates['workers2-hit-c64'] / one:.2f}x (target 1.6x)"
        bound = workers_ceiling(one, *cpu.get("workers1-hit-c64", [0.0, 0.0, 0.0]))
        if bound is not None:
            line += (
                f"; what this machine allows with the load generator on it: {bound:.2f}x (the one-worker"
                " row's CPU per request, the gateway's and the rest's, against all the cores)"
            )
        lines.append(line)
    return "\n".join(lines)


def workers_ceiling(rps: float, gateway_cores: float, busy_cores: float, cores: float) -> float | None:
    """How many times one worker's requests/s two could serve here at most: each request takes
    g of the gateway's CPU and w of the rest's (wrk, mostly), as the one-worker row measured; two
    workers are bound by two cores' worth of g, and by the machine's cores for g + w together."""
    if not (rps and gateway_cores and cores) or busy_cores < gateway_cores:
        return None
    g, w = gateway_cores / rps, (busy_cores - gateway_cores) / rps
    return min(2 / g, cores / (g + w)) / rps


def streams(folder: Path, names: list[str]) -> str:
    """The streaming rows: time to the first event (1 connection) and events/s (8), per server."""

    def stream_load(name: str, conns: int) -> dict[str, float] | None:
        try:
            data: dict[str, float] = json.loads((folder / f"stream-{name}-c{conns}.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def rate(data: dict[str, float] | None, key: str) -> str:
        return f"{data[key]:,.0f}" if data else "-"

    lines = [
        "| Target | TTFB p50 (c1) | TTFB p99 (c1) | added TTFB p50 | stream p50 (c1) | streams/s (c8) | events/s (c8) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct = stream_load("direct", 1)
    for name in ["direct", *names]:
        one, eight = stream_load(name, 1), stream_load(name, 8)
        if one is None:
            continue
        added = _ms(one["ttfb_p50_ms"] - direct["ttfb_p50_ms"], True) if direct and name != "direct" else "-"
        lines.append(
            f"| {name} | {_ms(one['ttfb_p50_ms'])} | {_ms(one['ttfb_p99_ms'])} | {added} | {_ms(one['total_p50_ms'])} "
            f"| {rate(eight, 'streams_per_s')} | {rate(eight, 'events_per_s')} |"
        )
    return "\n".join(lines)


def metric_sum(url: str, name: str, labels: dict[str, str]) -> float:
    request = urllib.request.Request(url)
    token = os.environ.get("BENCH_METRICS_KEY")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as resp:  # a loopback URL from our own script
        text = resp.read().decode()
    total = 0.0
    sample = re.compile(r"^" + re.escape(name) + r"(?:\{([^}]*)\})?\s+(\S+)$", re.M)
    for raw_labels, value in sample.findall(text):
        found = dict(re.findall(r'(\w+)="([^"]*)"', raw_labels))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def profile_summary(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per frame, from `py-spy record --format raw` output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self (where the CPU is):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive (the frame or anything it calls):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (/abs/path/to/module.py:123)"; drop the line number
    # and shorten site-packages and src paths so the same function aggregates.
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    func, file = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{func}"


def compare(base_dirs: list[Path], head_dirs: list[Path]) -> str:
    """Per row, the median requests/s, p50 and p99 of each tree over its runs (taken in turn, so
    a disturbance of this shared machine lands on one run, not on one tree), and head / base.
    For the miss rows the added latency is against the nginx direct row of the same run."""

    def medians(dirs: list[Path], stem: str, base_stem: str | None) -> tuple[float, float, float, float] | None:
        rows = []
        for folder in dirs:
            r = load(folder / f"{stem}.txt")
            if r is None:
                continue
            direct = load(folder / f"{base_stem}.txt") if base_stem else None
            p50, p99 = r.percentiles_ms[50], r.percentiles_ms[99]
            if direct is not None:
                p50, p99 = p50 - direct.percentiles_ms[50], p99 - direct.percentiles_ms[99]
            cpu = cpu_us(folder, stem, r.requests)
            rows.append((r.rps, p50, p99, math.nan if cpu is None else cpu))
        if not rows:
            return None
        return tuple(statistics.median(x[i] for x in rows) for i in range(4))  # type: ignore[return-value]

    def cpu(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1f} µs"

    lines = [
        f"| Row | Conns | base req/s | head req/s | head / base | base p50, p99 | head p50, p99 "
        f"| base CPU / request | head CPU / request | head / base CPU |  ({len(base_dirs)} + {len(head_dirs)} runs, medians)",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stem, label, conns, base_stem, _ in RUNS:
        if stem.startswith("direct"):
            continue
        base, head = medians(base_dirs, stem, base_stem), medians(head_dirs, stem, base_stem)
        if base is None or head is None:
            continue
        kind = "added " if base_stem else ""
        cpu_ratio = "-" if math.isnan(base[3]) or math.isnan(head[3]) else f"{head[3] / base[3]:.3f}"
        lines.append(
            f"| {label} | {conns} | {base[0]:,.0f} | {head[0]:,.0f} | {head[0] / base[0]:.3f} "
            f"| {kind}{_ms(base[1])}, {_ms(base[2])} | {kind}{_ms(head[1])}, {_ms(head[2])} "
            f"| {cpu(base[3])} | {cpu(head[3])} | {cpu_ratio} |"
        )
    return "\n".join(lines)


_COST = re.compile(r"^\s+(\S+)\s+([\d.]+) us/request", re.M)


def compare_costs(base_dirs: list[Path], head_dirs: list[Path]) -> str:
    """secure_cost.py's variants, both trees: the least of each tree's runs (a disturbance only
    ever adds time), and head / base."""

    def least(dirs: list[Path]) -> dict[str, float]:
        best: dict[str, float] = {}
        for folder in dirs:
            try:
                text = (folder / "costs.txt").read_text()
            except OSError:
                continue
            for name, us in _COST.findall(text):
                best[name] = min(best.get(name, float(us)), float(us))
        return best

    base, head = least(base_dirs), least(head_dirs)
    lines = [
        f"| Cache hit through the ASGI app | base µs/request | head µs/request | head / base |"
        f"  ({len(base_dirs)} + {len(head_dirs)} runs, least of each)",
        "|---|---:|---:|---:|",
    ]
    for name in base:
        if name in head:
            lines.append(f"| {name} | {base[name]:.1f} | {head[name]:.1f} | {head[name] / base[name]:.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    if command == "table" and len(args) == 1:
        print(table(Path(args[0])))
    elif command == "clients" and len(args) == 1:
        print(clients(Path(args[0])))
    elif command == "secure" and len(args) == 1:
        print(against_plain(Path(args[0]), "secure-hit-c64", "secured", SECURE_TARGET))
    elif command == "observed" and len(args) == 1:
        print(against_plain(Path(args[0]), "observed-hit-c64", "observed", OBSERVED_TARGET))
    elif command == "servers" and len(args) >= 2:
        print(servers(Path(args[0]), args[1], args[2:]))
    elif command == "workers" and len(args) == 1:
        print(workers(Path(args[0])))
    elif command == "streams" and len(args) >= 2:
        print(streams(Path(args[0]), args[1:]))
    elif command in ("requests", "errors") and args:
        loaded = [load(Path(a)) for a in args]
        if command == "requests":
            print(sum(r.requests for r in loaded if r))
        else:
            print(sum(r.errors for r in loaded if r) + sum(1 for r in loaded if r is None))
    elif command in ("compare", "compare-costs") and "--" in args:
        split = args.index("--")
        report = compare if command == "compare" else compare_costs
        print(report([Path(a) for a in args[:split]], [Path(a) for a in args[split + 1 :]]))
    elif command == "metric" and len(args) >= 2:
        labels = dict(a.split("=", 1) for a in args[2:])
        print(f"{metric_sum(args[0], args[1], labels):.0f}")
    elif command == "profile" and args:
        print(profile_summary(Path(args[0]), int(args[1]) if len(args) > 1 else 25))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
