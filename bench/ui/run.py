"""The dashboard at scale: 1,000,000 audit events and 10,000 API keys in the store (SQLite), a
gateway in front of them (`interlock serve`, the config of tests/support/dashboard.py: two model
groups on the fake upstream, a canary rollout, drift, limits in Redis, sessions in Redis), then

- each panel request, timed from outside (median and P95 of 20; the audit and keys panels also at
  a page deep in the table, by their keyset cursors),
- each page in Debian's headless Chromium (Playwright, a fresh browser context each time, so a
  cold cache): the time from navigation to the first render with data (the page script records
  it) and the bytes transferred (Resource Timing: the document and every request it made),
- the incremental chain check's first pass over the whole table (it starts with the gateway),

and, with `--screenshots DIR`, one 1280x800 PNG per page while light traffic flows.

    flock /tmp/interlock-bench.lock python bench/ui/run.py [--screenshots docs/img]

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, SECRET, Traffic, config, login, prepare  # noqa: E402
from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.procs import Gateway, RedisServer  # noqa: E402

from interlock.security.audit import _SQLITE, canonical, link  # noqa: E402
from interlock.security.keys import KeyRecord, key_hash, new_key  # noqa: E402
from interlock.security.keystore import SQLITE_INSERT, to_row  # noqa: E402

AUDIT_EVENTS = 1_000_000
KEYS = 10_000
PAGES = ("overview", "rollouts", "drift", "keys", "audit", "limits")
PANELS = {
    "overview": "/ui/api/overview",
    "rollouts": "/ui/api/rollouts",
    "drift": "/ui/api/drift",
    "keys (first page)": "/ui/api/keys",
    "audit (latest 50)": "/ui/api/audit",
    "limits": "/ui/api/limits",
}


def fill_keys(path: Path, n: int) -> str:
    """n keys straight into the table (what `interlock keys create` stores); the cursor of the middle one."""
    db = sqlite3.connect(path)
    rng = random.Random(1)
    rows = []
    start = time.time() - 86400 * 30
    for i in range(n):
        record = KeyRecord(
            id=f"key_{i:016x}", hash=key_hash(SECRET.encode(), new_key()), name=f"service {i}",
            tenant=f"tenant-{i % 40}", roles=(rng.choice(["user", "user", "user", "auditor"]),), models=(),
            max_class="internal", rpm=rng.choice([None, 600, 6000]), tpm=None, budget=rng.choice([None, 25.0]),
            max_tokens=None, created_at=start + i * 60, expires_at=None, revoked_at=start + i * 61 if i % 9 == 0 else None,
        )  # fmt: skip
        rows.append(to_row(record))
    db.executemany(SQLITE_INSERT, rows)
    db.commit()
    db.close()
    middle = n // 2
    return f"{start + middle * 60!r}:key_{middle:016x}"


def fill_audit(path: Path, n: int) -> None:
    """n request and admin events, chained as the audit writer chains them."""
    db = sqlite3.connect(path)
    db.executescript(_SQLITE)
    rng = random.Random(2)
    start = time.time() - n * 0.5
    seq, prev = 0, "0" * 64
    batch = 50_000
    for first in range(0, n, batch):
        events = []
        for i in range(first, min(n, first + batch)):
            if i % 500 == 0:
                event: dict[str, Any] = {
                    "kind": "admin",
                    "action": "key.create",
                    "target": f"key_{i:016x}",
                    "subject": "key_admin",
                    "tenant": "default",
                    "request_id": f"b-{i:x}",
                }
            else:
                event = {
                    "kind": "request", "request_id": f"b-{i:x}", "subject": f"key_{rng.randrange(KEYS):016x}", "auth": "key",
                    "tenant": f"tenant-{rng.randrange(40)}", "endpoint": "chat/completions", "model": "chat",
                    "deployment": rng.choice(["chat-east", "chat-west"]), "version": "v1", "data_class": "internal",
                    "findings": {}, "cache": rng.choice(["hit", "miss", "miss"]), "status": 200, "outcome": "served",
                    "latency_ms": round(rng.uniform(5, 900), 3),
                }  # fmt: skip
            events.append((start + i * 0.5, canonical(event)))
        rows = link(seq, prev, events)
        seq, prev = rows[-1][0], rows[-1][4]
        db.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)", rows)
        db.commit()
    db.close()


def get(url: str, key: str) -> tuple[float, int]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    t = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = resp.read()
    return (time.perf_counter() - t) * 1000, len(body)


def time_panels(
    base: str, key: str, deep_key: str, deep_seq: int, rounds: int = 20
) -> list[tuple[str, float, float, int]]:
    panels = {**PANELS, "keys (page at key 5,000)": f"/ui/api/keys?after={urllib.request.quote(deep_key)}",
              f"audit (page before record {deep_seq:,})": f"/ui/api/audit?before={deep_seq}"}  # fmt: skip
    out = []
    for name, path in panels.items():
        times, size = [], 0
        get(base + path, key)  # warm
        for _ in range(rounds):
            ms, size = get(base + path, key)
            times.append(ms)
        times.sort()
        out.append((name, statistics.median(times), times[int(0.95 * (len(times) - 1))], size))
    return out


def logged_in(browser: Any, base: str, key: str) -> Any:
    page = login(browser, base, key)
    page.wait_for_selector("main[data-page]")
    return page


TRANSFERRED = """() => {
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return [entries.reduce((n, e) => n + e.transferSize, 0), entries.length];
}"""


def time_pages(browser: Any, base: str, key: str, rounds: int = 5) -> list[tuple[str, float, float, int, int]]:
    out = []
    page0 = logged_in(browser, base, key)
    cookies = page0.context.cookies()
    page0.context.close()
    for name in PAGES:
        renders, weight, requests = [], 0, 0
        for _ in range(rounds):
            context = browser.new_context(viewport={"width": 1280, "height": 800})  # a cold cache each time
            context.add_cookies(cookies)
            page = context.new_page()
            page.goto(f"{base}/ui#{name}")
            page.wait_for_selector(f"main[data-page={name}]", timeout=30_000)
            renders.append(float(page.eval_on_selector("main", "m => m.dataset.renderMs")))
            weight, requests = page.evaluate(TRANSFERRED)
            context.close()
        out.append((name, statistics.median(renders), max(renders), weight, requests))
    return out


def screenshots(browser: Any, base: str, key: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page = logged_in(browser, base, key)
    for name in PAGES:
        page.goto(f"{base}/ui#{name}")
        page.wait_for_selector(f"main[data-page={name}]", timeout=30_000)
        page.wait_for_timeout(2500 if name == "overview" else 300)  # two refreshes: the sparklines have points
        page.screenshot(path=str(out / f"dashboard-{name}.png"))
    page.context.close()


def chain_pass(base: str, key: str, started: float) -> tuple[float, int]:
    for _ in range(1200):
        with urllib.request.urlopen(
            urllib.request.Request(base + "/ui/api/audit?limit=1", headers={"Authorization": f"Bearer {key}"}),
            timeout=30,
        ) as resp:
            chain = json.loads(resp.read())["chain"]
        if chain and chain["full_pass_at"]:
            return chain["full_pass_at"] - started, chain["verified_through"]
        time.sleep(0.1)
    raise RuntimeError("the chain check did not finish")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshots", type=Path, help="write one PNG per page here")
    parser.add_argument("--events", type=int, default=AUDIT_EVENTS)
    args = parser.parse_args()
    upstream = FakeUpstream().start()
    redis = RedisServer()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        settings = config(upstream, redis.url, tmp, "bench:ui:")
        settings["ui"]["audit_verify_s"] = 5
        _, keys = prepare(tmp, settings)
        t = time.perf_counter()
        deep_key = fill_keys(tmp / "keys.db", KEYS)
        fill_audit(tmp / "audit.db", args.events)
        print(
            f"filled {KEYS:,} keys and {args.events:,} audit events in {time.perf_counter() - t:.1f} s", file=sys.stderr
        )
        admin = keys["admin"]
        started = time.time()
        gateway = Gateway(tmp, settings)
        try:
            pass_s, verified = chain_pass(gateway.url, admin, started)
            traffic = Traffic(gateway.url, keys["user"])  # the pages show live data while measured
            time.sleep(3)
            panels = time_panels(gateway.url, admin, deep_key, args.events // 2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                pages = time_pages(browser, gateway.url, admin)
                if args.screenshots is not None:
                    screenshots(browser, gateway.url, admin, args.screenshots)
                browser.close()
            traffic.stop()
        finally:
            gateway.stop()
            redis.stop()
            upstream.stop()
    print(
        f"Chain check, first pass from record 1: {verified:,} records verified {pass_s:.1f} s after the gateway was started.\n"
    )
    print("| Panel request | median | P95 | bytes |\n| --- | ---: | ---: | ---: |")
    for name, med, p95, size in panels:
        print(f"| {name} | {med:.1f} ms | {p95:.1f} ms | {size:,} |")
    print(
        "\n| Page (Chromium, cold cache) | first render, median of 5 | slowest | transferred | requests |\n| --- | ---: | ---: | ---: | ---: |"
    )
    for name, med, worst, weight, requests in pages:
        print(f"| {name} | {med:.0f} ms | {worst:.0f} ms | {weight / 1024:.1f} KiB | {requests} |")


if __name__ == "__main__":
    main()
