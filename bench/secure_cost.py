"""What security costs a cache hit, measured in process (no sockets, no wrk), part by part: the
same cache hit through the ASGI app with nothing on, with an API key, with the key and rate limits
counted in Redis, with the key and a DLP policy, and with all of it (the bench/run.sh "secured"
gateway). Variants run in alternating rounds, and each keeps its least disturbed round, so a
busy machine moves them together.

    PYTHONPATH=src .venv/bin/python bench/secure_cost.py [--requests N] [--rounds R] [--redis URL]

What this leaves out, and wrk sees: HTTP parsing, and uvicorn's per-header work on the four
extra response headers (x-ratelimit-*-requests and x-interlock-data-class). The loop turns once
between requests, as a server's does, so background work (the rate-limit leases' refills) lands
as it would there; that turn is in every variant's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop
from telemetry_cost import call, upstream  # the same canned upstream and ASGI call (bench/ is on the path)

from interlock.app import build
from interlock.config import parse_settings
from interlock.security.keyadmin import NewKey, create_key
from interlock.security.keystore import SQLiteKeyStore
from interlock.security.roles import DEFAULT_ROLES

BODY = (Path(__file__).parent / "wrk" / "hit.json").read_bytes()
DLP = {
    "tokenization_key": "k" * 40,
    "policies": {
        "default": {
            "actions": {"EMAIL": "tokenize", "PHONE": "tokenize", "CREDIT_CARD": "mask", "IP_ADDRESS": "redact",
                        "SECRET": "block", "US_SSN": "block"},
            "classify": {"US_SSN": "restricted", "CREDIT_CARD": "confidential"},
            "on_error": "block",
        }
    },
}  # fmt: skip
VARIANTS = {
    "plain": (),
    "key": ("keys",),
    "key+limits": ("keys", "limits"),
    "key+dlp": ("keys", "dlp"),
    "secured": ("keys", "limits", "dlp"),
}


async def make(parts: tuple[str, ...], port: int, tmp: Path, redis_url: str) -> tuple[Any, dict[str, Any]]:
    raw: dict[str, Any] = {
        "models": [{"name": "hit", "cache": {"mode": "deterministic", "ttl": 86400},
                    "deployments": [{"id": "d", "backend": "openai", "api_base": f"http://127.0.0.1:{port}/v1"}]}],
        "server": {"gc_freeze": False},
    }  # fmt: skip
    headers = [(b"content-type", b"application/json")]
    if "keys" in parts:
        secret = secrets.token_urlsafe(24)
        db = tmp / f"keys-{'-'.join(parts)}.db"
        raw["security"] = {"server_secret": secret, "keys": {"sqlite_path": str(db)}, "key_cache_ttl": 30}
        store = SQLiteKeyStore(str(db))
        await store.start()
        limits = {"rpm": 100_000_000, "tpm": 100_000_000_000} if "limits" in parts else {}
        key, _ = await create_key(store, secret.encode(), NewKey(name="bench", tenant="bench", **limits), DEFAULT_ROLES)
        await store.close()
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if "limits" in parts:
        raw["limits"] = {"redis": {"url": redis_url, "timeout_ms": 50},
                         "tenants": {"bench": {"rpm": 100_000_000, "tpm": 100_000_000_000}}}  # fmt: skip
    if "dlp" in parts:
        raw["dlp"] = DLP
    app = build(parse_settings(raw))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000)}  # fmt: skip
    return app, scope


async def alternate(apps: dict[str, tuple[Any, dict[str, Any]]], requests: int, rounds: int) -> dict[str, float]:
    """The same cache hit through each started app in turn, round after round (bench/observe_cost.py
    too); per app the least disturbed round's µs a request. Shuts the apps down."""
    try:
        for app, scope in apps.values():
            for _ in range(300):
                await call(app, scope, BODY)  # the first fills the cache; leases, key cache, pools warm up
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, (app, scope) in apps.items():
                started = time.perf_counter()
                for _ in range(requests):
                    await call(app, scope, BODY)
                    await asyncio.sleep(0)
                took = (time.perf_counter() - started) / requests * 1e6
                best[name] = min(best.get(name, took), took)
        return best
    finally:
        for app, _ in apps.values():
            await app._on_shutdown()


def report(best: dict[str, float], requests: int, rounds: int) -> None:
    plain = best["plain"]
    print(f"cache hit through the ASGI app, least disturbed of {rounds} rounds of {requests} requests:")
    for name, us in best.items():
        print(f"  {name:<11} {us:6.1f} us/request   +{us - plain:5.1f} us   plain/this = {plain / us:5.1%}")


async def main(requests: int, rounds: int, redis_url: str) -> None:
    server = await upstream()
    port = server.sockets[0].getsockname()[1]
    apps: dict[str, tuple[Any, dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, parts in VARIANTS.items():
                apps[name] = await make(parts, port, Path(tmp), redis_url)
                await apps[name][0]._on_startup()
            best = await alternate(apps, requests, rounds)
    finally:
        server.close()
    report(best, requests, rounds)


def cli(run: Callable[[int, int, str], Coroutine[Any, Any, None]], requests: int, rounds: int) -> None:
    """`--requests`, `--rounds` and `--redis`, then `run` with them on uvloop."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    uvloop.run(run(args.requests, args.rounds, args.redis))


if __name__ == "__main__":
    cli(main, 5000, 7)
