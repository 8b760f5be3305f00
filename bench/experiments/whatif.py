"""What-if runs: `interlock` with parts of its hot path switched off, to measure what each costs.

Runs the real CLI after monkeypatching; nothing under src/ changes. WHATIF is a comma list of:

    gc         gc.freeze() after the imports, and gc.set_threshold(50_000, 20, 100)
    nowatch    Exchange.arm_disconnect_watch does nothing (no watcher task per upstream call)
    nometrics  the Metrics methods called per request do nothing
    nousage    router._usage returns (0, 0) (no token counts read from the upstream body)
    noenv      aiohttp sessions get trust_env=False (with `upstream: {client: aiohttp}`: no
               HTTP(S)_PROXY and no ~/.netrc lookup, which aiohttp does in a thread per request)
    noadjust   LimitStage._reconcile_later does nothing (no token reconciliation after the answer:
               for a cache hit, no INCRBY per token counter to give the reservation back)
    bigpool    the Redis clients made in app.py get max_connections=10000 (redis-py's asyncio
               pool allows 100 by default and raises MaxConnectionsError beyond)

    WHATIF=gc,nowatch BENCH_INTERLOCK=".venv/bin/python bench/experiments/whatif.py" bench/run.sh

The patches name internals of src/interlock as they were when this was written; if one is gone,
the run stops with an AttributeError rather than measuring something else.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import aiohttp  # imported before gc.freeze() so its module objects are frozen too
import uvicorn  # noqa: F401
from redis.asyncio import Redis

from interlock import app, cli
from interlock.edge import exchange
from interlock.observe import metrics
from interlock.providers import aiohttp_transport
from interlock.routing import router
from interlock.security import limit_stage

PER_REQUEST_METRICS = (
    "request_done",
    "upstream_done",
    "inflight_add",
    "token_usage",
    "circuit",
    "cache_lookup",
)


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def apply(switches: set[str]) -> None:
    unknown = switches - {"gc", "nowatch", "nometrics", "nousage", "noenv", "noadjust", "bigpool"}
    if unknown:
        raise SystemExit(f"whatif: unknown switches {sorted(unknown)}")
    if "nowatch" in switches:
        getattr(exchange.Exchange, "arm_disconnect_watch")  # noqa: B009 - fail loudly if renamed
        exchange.Exchange.arm_disconnect_watch = _nothing  # type: ignore[method-assign]
    if "nometrics" in switches:
        for name in PER_REQUEST_METRICS:
            getattr(metrics.Metrics, name)
            setattr(metrics.Metrics, name, _nothing)
    if "nousage" in switches:
        getattr(router, "_usage")  # noqa: B009
        router._usage = lambda _body: (0, 0)
    if "noenv" in switches:
        getattr(aiohttp_transport.AiohttpTransport, "session")  # noqa: B009
        original = aiohttp.ClientSession.__init__

        def no_env(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
            kwargs["trust_env"] = False
            original(self, *args, **kwargs)

        aiohttp.ClientSession.__init__ = no_env  # type: ignore[method-assign]
    if "noadjust" in switches:
        getattr(limit_stage.LimitStage, "_reconcile_later")  # noqa: B009
        limit_stage.LimitStage._reconcile_later = _nothing  # type: ignore[method-assign]
    if "bigpool" in switches:
        getattr(app, "Redis")  # noqa: B009

        class BigPoolRedis:
            @staticmethod
            def from_url(url: str, **kwargs: Any) -> Redis:
                return Redis.from_url(url, max_connections=10_000, **kwargs)

        app.Redis = BigPoolRedis  # type: ignore[assignment,misc]
    if "gc" in switches:
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)


if __name__ == "__main__":
    chosen = {s for s in os.environ.get("WHATIF", "").split(",") if s}
    apply(chosen)
    print(f"whatif: {sorted(chosen) or 'nothing switched off'}", file=sys.stderr)
    sys.exit(cli.main())
