"""Why rate-limit calls to Redis fail under load: `interlock` with the Redis counter calls wrapped
to count their outcomes (ok, or the exception type and message) and time them.

Runs the real CLI after monkeypatching; nothing under src/ changes. Every REPORT_EVERY calls and
at exit, prints the totals so far, one line per outcome, to stderr, i.e. into the gateway log:

    BENCH_KEEP=1 BENCH_INTERLOCK=".venv/bin/python bench/experiments/limitprobe.py" bench/run.sh
    grep limitprobe /tmp/interlock-bench.*/gateway-secure.log

The patches name internals of src/interlock as they were when this was written; if one is gone,
the run stops with an AttributeError rather than measuring something else.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from interlock import cli
from interlock.security import limits

OUTCOMES: Counter[str] = Counter()
SECONDS: Counter[str] = Counter()
REPORT_EVERY = 20_000


def _wrap(name: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call(*args, **kwargs)
        except BaseException as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:100]}"
            raise
        finally:
            key = f"{name} {outcome}"
            OUTCOMES[key] += 1
            SECONDS[key] += time.perf_counter() - started
            if OUTCOMES.total() % REPORT_EVERY == 0:
                _report()

    return wrapped


def _report() -> None:
    print(f"limitprobe: {OUTCOMES.total()} calls", file=sys.stderr)
    for key, n in OUTCOMES.most_common(20):
        print(f"limitprobe: {n:8d}  mean {1000 * SECONDS[key] / n:7.2f} ms  {key}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    for method in ("check_and_count", "adjust"):
        original = getattr(limits.RedisCounters, method)
        setattr(limits.RedisCounters, method, _wrap(method, original))
    atexit.register(_report)
    sys.exit(cli.main())
