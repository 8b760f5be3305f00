"""Wall time of the secured path's stages inside a loaded gateway, where everything costs about
three times what it costs timed alone. Put this directory first on PYTHONPATH together with the
code to measure, and set INTERLOCK_TIMING=1; every 5 s the gateway's log gets one line a method:
mean wall time per call, and the calls over 100 µs (those that waited, e.g. for Redis). For a
pipeline stage (`limit.stage`, ...) the time is the stage's own: its call less the rest of the
pipeline inside it.

    INTERLOCK_TIMING=1 PYTHONPATH=bench/experiments/stagetiming:src BENCH_SECURE_PARTS=keys,limits,redis \\
        bench/experiments/stagetiming/boundary.sh
"""

from __future__ import annotations

import builtins
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_TIMES: dict[str, list[int]] = {}  # label -> [total ns, calls]


def _report() -> None:
    for label, (total, calls) in sorted(_TIMES.items()):
        if calls:
            print(f"TIMING {label}: {total / calls:.0f} ns over {calls}", file=sys.stderr, flush=True)


def _wrap(owner: Any, name: str, label: str, is_async: bool) -> None:
    inner = getattr(owner, name)
    every, slow = _TIMES.setdefault(label, [0, 0]), _TIMES.setdefault(label + ">100us", [0, 0])
    clock = time.perf_counter_ns

    def note(took: int) -> None:
        every[0] += took
        every[1] += 1
        if took > 100_000:
            slow[0] += took
            slow[1] += 1

    async def timed_async(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return await inner(*args, **kwargs)
        finally:
            note(clock() - started)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            note(clock() - started)

    setattr(owner, name, timed_async if is_async else timed)


def _wrap_stage(owner: Any, label: str) -> None:
    """A pipeline stage's own time: its call, less the time spent in the rest of the pipeline."""
    inner = owner.__call__
    every, slow = _TIMES.setdefault(label, [0, 0]), _TIMES.setdefault(label + ">100us", [0, 0])
    clock = time.perf_counter_ns

    async def timed(self: Any, ctx: Any, call_next: Any) -> Any:
        inside = [0]

        async def rest(c: Any) -> Any:
            started_rest = clock()
            try:
                return await call_next(c)
            finally:
                inside[0] += clock() - started_rest

        started = clock()
        try:
            return await inner(self, ctx, rest)
        finally:
            took = clock() - started - inside[0]
            every[0] += took
            every[1] += 1
            if took > 100_000:
                slow[0] += took
                slow[1] += 1

    owner.__call__ = timed


def _install() -> None:
    from interlock.cache import stage as cache_stage
    from interlock.edge import exchange, inference
    from interlock.security import auth, dlp, limit_stage, limits

    for stage, label in [
        (limit_stage.LimitStage, "limit.stage"),
        (dlp.DlpStage, "dlp.stage"),
        (cache_stage.CacheStage, "cache.stage"),
    ]:
        _wrap_stage(stage, label)
    for owner, name, label, is_async in [
        (auth.Authenticator, "identify", "auth.identify", True),
        (exchange.Exchange, "json", "exchange.json", True),
        (inference.InferenceHandler, "__call__", "inference.call", True),
        (limits.RedisCounters, "acquire", "redis.acquire", True),
        (limits.RedisCounters, "_grant", "redis._grant", True),
    ]:
        _wrap(owner, name, label, is_async)

    def report_every_5s() -> None:
        while True:
            time.sleep(5)
            _report()

    threading.Thread(target=report_every_5s, daemon=True).start()


if os.environ.get("INTERLOCK_TIMING"):
    _import: Callable[..., Any] = builtins.__import__

    def _hook(name: str, *args: Any, **kwargs: Any) -> Any:
        module = _import(name, *args, **kwargs)
        if "interlock.app" in sys.modules and builtins.__import__ is _hook:
            builtins.__import__ = _import  # once the gateway's modules are in, wrap and step aside
            _install()
        return module

    builtins.__import__ = _hook
