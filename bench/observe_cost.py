"""What observability costs a cache hit, measured in process (no sockets, no wrk), part by part:
the same cache hit through the ASGI app with nothing on, with drift monitoring (live windows in
Redis), drift with embeddings, alert rules (windows in Redis), traces of 1 % of requests
(exported over OTLP/HTTP to the canned upstream, which answers 200), and all of it (the
bench/run.sh "observed" gateway, without its reference profile). Variants run in alternating
rounds, each keeps its least disturbed round (bench/secure_cost.py's loop).

    PYTHONPATH=src .venv/bin/python bench/observe_cost.py [--requests N] [--rounds R] [--redis URL]

Pin it to one core (`taskset -c 1`) to count what the drift monitor's and the exporter's threads
take from the event loop: in process, every app's background work lands in every variant's
rounds, so compare the variants of one run only.
"""

from __future__ import annotations

from typing import Any

from secure_cost import alternate, cli, report  # the same loop and table (bench/ is on the path)
from telemetry_cost import upstream

from interlock.app import build
from interlock.config import parse_settings

VARIANTS = {
    "plain": (),
    "drift": ("drift",),
    "drift+emb": ("drift", "embeddings"),
    "alerts": ("alerts",),
    "traces": ("traces",),
    "observed": ("drift", "embeddings", "alerts", "traces"),
}


def config(parts: tuple[str, ...], port: int, redis_url: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "models": [{"name": "hit", "cache": {"mode": "deterministic", "ttl": 86400},
                    "deployments": [{"id": "d", "backend": "openai", "api_base": f"http://127.0.0.1:{port}/v1"}]}],
        "server": {"gc_freeze": False},
    }  # fmt: skip
    if "drift" in parts:
        raw["drift"] = {"redis": {"url": redis_url, "timeout_ms": 1000, "prefix": "interlock:observe-cost:"},
                        "embeddings": "embeddings" in parts}  # fmt: skip
    if "alerts" in parts:
        raw["alerts"] = {"redis": {"url": redis_url, "timeout_ms": 200}, "prefix": "interlock:observe-cost-alerts:",
                         "rules": [{"name": "Errors", "signal": "error_rate", "op": ">", "threshold": 0.05,
                                    "window_s": 60, "min_requests": 50},
                                   {"name": "Slow", "signal": "p99_latency_ms", "op": ">", "threshold": 5000,
                                    "window_s": 60, "min_requests": 50}]}  # fmt: skip
    if "traces" in parts:
        raw["telemetry"] = {"otlp_endpoint": f"http://127.0.0.1:{port}", "trace_sample_ratio": 0.01}
    return raw


async def main(requests: int, rounds: int, redis_url: str) -> None:
    server = await upstream()
    port = server.sockets[0].getsockname()[1]
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 4000)}  # fmt: skip
    apps: dict[str, tuple[Any, dict[str, Any]]] = {}
    try:
        for name, parts in VARIANTS.items():
            app = build(parse_settings(config(parts, port, redis_url)))
            await app._on_startup()
            apps[name] = (app, scope)
        best = await alternate(apps, requests, rounds)
    finally:
        server.close()
    report(best, requests, rounds)


if __name__ == "__main__":
    cli(main, 4000, 9)
