"""Scale-out on this box: 1, 2 and 3 gateway processes (separate `interlock serve`s, not `--workers`)
behind nginx, sharing a Redis of the script's own; the fake upstream is bench/nginx.conf. Measures,
in one run:

- cold start: process start to the first 200 on /readyz, remote backends only and the embedded
  model; resident memory idle and after the load;
- requests/s and P95 of the cache-hit and cache-miss paths through the balancer (wrk -t1 -c64),
  with the CPU seconds every process spent per request (from /proc) and the box's idle time;
- a cache entry written through one replica answered as a hit by each other one;
- with 3 replicas and API keys: a key limited to LIMIT requests a minute, sent 3 x LIMIT requests
  through the balancer, gets exactly LIMIT 200s (the rest 429);
- the planner's prediction (interlock.capacity.predict_scaleout) of the 2-replica run from the
  1-replica one, against the measurement.

Writes bench/costs.json (what `interlock plan` reads) and BENCH_OUT/table.md. Run it alone:

    flock /tmp/interlock-bench.lock .venv/bin/python bench/scaleout.py

Environment: BENCH_DURATION=8 (seconds per measured run), BENCH_WARMUP=2, BENCH_OUT=bench/out/scaleout,
BENCH_SEQUENCE=1,2,1,2,3 (replica counts, measured in this order: each 2-replica run is predicted
from the 1-replica run just before it), BENCH_LIMIT=60.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import ROOT, Process, free_port, start_redis
from report import parse_wrk

from interlock.capacity import OneReplicaRun, predict_scaleout

BENCH = ROOT / "bench"
INTERLOCK = [str(Path(sys.executable).parent / "interlock")]
UPSTREAM = "http://127.0.0.1:18080/v1"
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
OUT = Path(os.environ.get("BENCH_OUT", BENCH / "out" / "scaleout"))
SEQUENCE = [int(n) for n in os.environ.get("BENCH_SEQUENCE", "1,2,1,2,3").split(",")]
LIMIT = int(os.environ.get("BENCH_LIMIT", "60"))
TICK = os.sysconf("SC_CLK_TCK")
LB_CONF = """worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  upstream gateways {{
{servers}
    keepalive 256;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} scaleout: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def tree(pid: int) -> list[int]:
    """A process and its children (nginx's worker)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids += tree(int(child))
    return pids


def box_seconds() -> tuple[float, float]:
    """(idle + iowait, irq + softirq) seconds of all cores. Loopback traffic is processed in softirq
    time that /proc/PID/stat charges to no process: it is counted with our processes."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return (f[3] + f[4]) / TICK, (f[5] + f[6]) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(url: str, proc: Process, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.log_path}: exited:\n{proc.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def gateway_config(port: int, redis_url: str, work: Path, secured: bool = False) -> Path:
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "log_level": "warning"},
        "models": [
            {"name": "miss", "cache": {"mode": "off"},
             "deployments": [{"backend": "openai", "id": "nginx-miss", "api_base": UPSTREAM, "api_key": "bench"}]},
            {"name": "hit", "cache": {"mode": "deterministic", "ttl": 86400},
             "deployments": [{"backend": "openai", "id": "nginx-hit", "api_base": UPSTREAM, "api_key": "bench"}]},
        ],
        "cache": {"redis": {"url": redis_url, "timeout_ms": 50}},
    }  # fmt: skip
    if secured:
        config["security"] = {"server_secret": "s" * 40, "keys": {"sqlite_path": str(work / "keys.db")}}
        config["limits"] = {"redis": {"url": redis_url, "timeout_ms": 200}}
    path = work / f"gateway-{port}{'-secured' if secured else ''}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_gateway(config: Path, port: int, work: Path) -> tuple[Process, float]:
    proc = Process([*INTERLOCK, "serve", "--config", str(config)], work / f"gateway-{port}.log")
    return proc, wait_ready(f"http://127.0.0.1:{port}/readyz", proc)


def start_nginx(conf: Path, prefix: Path, probe: str) -> Process:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    proc = Process(["nginx", "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
                   prefix / "nginx.log")  # fmt: skip
    wait_ready(probe, proc, 10)
    return proc


def wrk(mode: str, url: str, seconds: int, conns: int = 64) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_API_KEY": "bench"}
    args = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "--latency",
            "-s", str(BENCH / "wrk" / "chat_p95.lua"), url]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=seconds + 30)


def measure(mode: str, url: str, gateways: list[int], others: list[int]) -> dict[str, float]:
    """One wrk run; CPU seconds per request of the gateways and of everything else we run."""
    wrk(mode, url, WARMUP)
    time.sleep(0.5)
    g0 = sum(cpu_seconds(p) for p in gateways)
    o0 = sum(cpu_seconds(p) for p in others)
    (idle0, irq0), wall0 = box_seconds(), time.monotonic()
    before = os.times()
    done = wrk(mode, url, DURATION)
    after = os.times()
    wall = time.monotonic() - wall0
    idle1, irq1 = box_seconds()
    idle, irq = idle1 - idle0, irq1 - irq0
    result = parse_wrk(done.stdout)
    p95 = float(re.search(r"p95_ms ([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    gcpu = sum(cpu_seconds(p) for p in gateways) - g0
    wrk_cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    ocpu = sum(cpu_seconds(p) for p in others) - o0 + wrk_cpu + irq
    if result.errors:
        raise RuntimeError(f"{mode}: {result.errors} errors or non-2xx:\n{done.stdout}")
    n = result.requests
    return {
        "rps": result.rps, "p50_ms": result.percentiles_ms[50], "p95_ms": p95, "p99_ms": result.percentiles_ms[99],
        "gateway_cpu_s": gcpu / n, "other_cpu_s": ocpu / n, "cores": (gcpu + ocpu + idle) / wall,
        "gateway_util": gcpu / wall / len(gateways),
    }  # fmt: skip


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str = "bench") -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with session.post(url, json=body, headers=headers) as r:
        await r.read()
        return r.status, r.headers.get("x-interlock-cache", "")


async def cross_replica_cache(ports: list[int]) -> list[str]:
    """A unique deterministic request written through the first replica, asked of every replica."""
    body = {"model": "hit", "temperature": 0, "messages": [{"role": "user", "content": f"x-{time.time_ns()}"}]}
    async with aiohttp.ClientSession() as s:
        return [(await post(s, f"http://127.0.0.1:{p}/v1/chat/completions", body))[1] for p in ports]


async def limited_burst(url: str, key: str, count: int) -> dict[int, int]:
    body = {"model": "miss", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        statuses = await asyncio.gather(*(post(s, url, body, key) for _ in range(count)))
    counts: dict[int, int] = {}
    for status, _ in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def cold_starts(work: Path, redis_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    port = free_port()
    times = []
    for _ in range(3):
        proc, took = start_gateway(gateway_config(port, redis_url, work), port, work)
        times.append(took)
        time.sleep(1)
        out["rss_idle_mib"] = rss_mib(proc.pid)
        proc.stop()
    out["cold_start_s"] = min(times)
    local = work / "local.yaml"
    local.write_text(yaml.safe_dump({"server": {"port": port, "log_level": "warning"},
                                     "models": [{"name": "smollm2", "deployments": [{"id": "local", "backend": "local"}]}]}))  # fmt: skip
    times = []
    for _ in range(2):
        proc, took = start_gateway(local, port, work)
        times.append(took)
        time.sleep(1)
        out["rss_idle_embedded_mib"] = rss_mib(proc.pid)
        proc.stop()
    out["cold_start_embedded_s"] = min(times)
    return out


def main() -> int:
    for tool in ("wrk", "nginx", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"scaleout: {tool} is not installed (bench/lib.sh installs wrk and nginx)")
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="interlock-scaleout."))
    os.chmod(work, 0o755)
    procs: list[Process] = []
    results: dict[str, Any] = {"runs": []}
    try:
        upstream = start_nginx(BENCH / "nginx.conf", work / "upstream", "http://127.0.0.1:18080/v1/models")
        procs.append(upstream)
        redis, redis_url = start_redis(work)
        procs.append(redis)
        log("cold starts")
        results["start"] = cold_starts(work, redis_url)
        lb_port = free_port()
        lb_url = f"http://127.0.0.1:{lb_port}/v1/chat/completions"
        for n in SEQUENCE:
            ports = [free_port() for _ in range(n)]
            gateways = [start_gateway(gateway_config(p, redis_url, work), p, work)[0] for p in ports]
            conf = work / f"lb-{n}.conf"
            conf.write_text(
                LB_CONF.format(servers="\n".join(f"    server 127.0.0.1:{p};" for p in ports), port=lb_port)
            )
            lb = start_nginx(conf, work / f"lb-{n}", f"http://127.0.0.1:{lb_port}/healthz")
            others = tree(lb.pid) + tree(upstream.pid) + [redis.pid]
            gpids = [g.pid for g in gateways]
            run: dict[str, Any] = {"replicas": n}
            for mode in ("hit", "miss"):
                log(f"{n} replica(s), {mode}")
                run[mode] = measure(mode, lb_url, gpids, others)
            run["rss_load_mib"] = max(rss_mib(p) for p in gpids)
            if n > 1:
                run["cross_replica_cache"] = asyncio.run(cross_replica_cache(ports))
            results["runs"].append(run)
            lb.stop()
            for g in gateways:
                g.stop()
        if 3 in SEQUENCE:
            log(f"rate limit across 3 replicas: {LIMIT} rpm, {3 * LIMIT} requests")
            ports = [free_port() for _ in range(3)]
            configs = [gateway_config(p, redis_url, work, secured=True) for p in ports]
            made = subprocess.run([*INTERLOCK, "keys", "create", "--config", str(configs[0]), "--name", "limited",
                                   "--rpm", str(LIMIT)], capture_output=True, text=True, check=True)  # fmt: skip
            key = json.loads(made.stdout)["key"]
            gateways = [start_gateway(c, p, work)[0] for c, p in zip(configs, ports, strict=True)]
            conf = work / "lb-limit.conf"
            conf.write_text(
                LB_CONF.format(servers="\n".join(f"    server 127.0.0.1:{p};" for p in ports), port=lb_port)
            )
            lb = start_nginx(conf, work / "lb-limit", f"http://127.0.0.1:{lb_port}/healthz")
            results["limit"] = {"rpm": LIMIT, "statuses": asyncio.run(limited_burst(lb_url, key, 3 * LIMIT))}
            lb.stop()
            for g in gateways:
                g.stop()
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    return 0


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip()


def report(results: dict[str, Any]) -> None:
    stamp = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}, {os.cpu_count()} cores"
    runs, start = results["runs"], results["start"]
    ncpu = os.cpu_count() or 1
    lines = [f"Scale-out, {stamp}, wrk -t1 -c64 -d{DURATION}s through nginx (1 worker), Redis shared, in this order.", "",
             "| run | replicas | hit req/s | hit p95 ms | miss req/s | miss p95 ms | gateway CPU us/req hit / miss"
             " | cores used by others hit / miss | RSS under load MiB |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for i, r in enumerate(runs, 1):
        h, m = r["hit"], r["miss"]
        lines.append(
            f"| {i} | {r['replicas']} | {h['rps']:.0f} | {h['p95_ms']:.2f} | {m['rps']:.0f} | {m['p95_ms']:.2f}"
            f" | {h['gateway_cpu_s'] * 1e6:.0f} / {m['gateway_cpu_s'] * 1e6:.0f}"
            f" | {ncpu - h['cores']:.2f} / {ncpu - m['cores']:.2f} | {r['rss_load_mib']:.0f} |"
        )
    lines += ["", f"Cold start to the first 200 on /readyz (least of 3 / 2): remote backends {start['cold_start_s']:.2f} s,"
              f" embedded model {start['cold_start_embedded_s']:.2f} s. RSS idle: {start['rss_idle_mib']:.0f} MiB"
              f" (remote), {start['rss_idle_embedded_mib']:.0f} MiB (embedded)."]  # fmt: skip
    for r in runs:
        if "cross_replica_cache" in r:
            lines.append(f"Cache entry written through replica 1 ({r['replicas']} replicas), x-interlock-cache on each:"
                         f" {r['cross_replica_cache']}.")  # fmt: skip
    if "limit" in results:
        lines.append(f"Rate limit {results['limit']['rpm']} rpm over 3 replicas, {3 * results['limit']['rpm']} requests"
                     f" at once through the balancer: statuses {results['limit']['statuses']}.")  # fmt: skip
    pairs = [(runs[i - 1], r) for i, r in enumerate(runs) if r["replicas"] == 2 and i and runs[i - 1]["replicas"] == 1]
    if pairs:
        lines += ["", "Prediction of each 2-replica run from the 1-replica run before it (interlock.capacity.predict_scaleout;"
                  " cores: the 1-replica run's, or the 2-replica run's own, i.e. corrected for the others' load then):", "",
                  "| runs | path | predicted req/s | measured | error | with its own cores | error | predicted p95 ms"
                  " | measured | error | bound |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
        for one_run, two_run in pairs:
            tag = f"{runs.index(one_run) + 1} -> {runs.index(two_run) + 1}"
            for mode in ("hit", "miss"):
                one, two = one_run[mode], two_run[mode]
                args = {k: one[k] for k in ("rps", "p95_ms", "gateway_cpu_s", "other_cpu_s", "cores")}
                pred = predict_scaleout(OneReplicaRun(**args), 2)
                own = predict_scaleout(OneReplicaRun(**{**args, "cores": two["cores"]}), 2)
                lines.append(
                    f"| {tag} | {mode} | {pred.rps:.0f} | {two['rps']:.0f} | {pred.rps / two['rps'] - 1:+.1%}"
                    f" | {own.rps:.0f} | {own.rps / two['rps'] - 1:+.1%} | {pred.p95_ms:.2f} | {two['p95_ms']:.2f}"
                    f" | {pred.p95_ms / two['p95_ms'] - 1:+.1%} | {pred.bound} |"
                )
    text = "\n".join(lines)
    print(text)
    (OUT / "table.md").write_text(text + "\n")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    ones = [r for r in runs if r["replicas"] == 1]
    if ones:

        def mean(mode: str, key: str) -> float:
            return sum(r[mode][key] for r in ones) / len(ones)

        costs = {
            "hit": {"cpu_s": mean("hit", "gateway_cpu_s"), "rps_one": mean("hit", "rps")},
            "miss": {"cpu_s": mean("miss", "gateway_cpu_s"), "rps_one": mean("miss", "rps")},
            "rss_idle_mib": start["rss_idle_mib"], "rss_load_mib": max(r["rss_load_mib"] for r in ones),
            "cold_start_s": start["cold_start_s"], "cold_start_embedded_s": start["cold_start_embedded_s"],
            "measured": f"bench/scaleout.py, {stamp}, the mean of {len(ones)} one-replica runs",
        }  # fmt: skip
        (BENCH / "costs.json").write_text(json.dumps(costs, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
