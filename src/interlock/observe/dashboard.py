"""What the dashboard's overview reads: rolling per-second traffic per (model group, deployment),
kept by a recorder, and the panel built from it with the router's circuits and the probes.

A series is a ring of one-second buckets (SPAN_S deep) holding requests, errors, a latency
histogram (window.py's fixed log-spaced buckets, so a P95 is within 4.4%), exact and semantic
cache results, tokens and spend; and totals since the process started. The overview reads
requests/s over the last RATE_S full seconds and the rest over the last SPAN_S: a few dozen
buckets per series, whatever the traffic. Counts are this process's (each worker keeps its own).
Series keys come from configuration only (group names, deployment ids), never from requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..routing import GroupRuntime
from ..routing.circuit import CircuitState
from ..security.limit_stage import MICRO, Price, cost_micro
from .metrics import NONE, UNKNOWN_MODEL
from .record import Finished
from .window import bucket_key, quantile

SPAN_S = 60
RATE_S = 10
MAX_SERIES = 1000


class _Second:
    __slots__ = (
        "errors", "exact_hits", "exact_misses", "index", "latency", "requests", "semantic_hits", "spend",
        "tokens_in", "tokens_out",
    )  # fmt: skip

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = self.errors = 0
        self.exact_hits = self.exact_misses = self.semantic_hits = 0
        self.tokens_in = self.tokens_out = self.spend = 0
        self.latency: dict[int, int] = {}

    def add(self, other: _Second) -> None:
        for name in _Second.__slots__:
            if name not in ("index", "latency"):
                setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, n in other.latency.items():
            self.latency[k] = self.latency.get(k, 0) + n


class Series:
    __slots__ = ("_gone", "_ring")

    def __init__(self) -> None:
        self._ring = [_Second(-1) for _ in range(SPAN_S + 1)]
        self._gone = _Second(0)  # the seconds that left the ring, summed: totals = this + the ring

    def record(
        self, now: float, seconds: float, error: bool, cache: str | None, tin: int, tout: int, spend: int
    ) -> None:
        index = int(now)
        slot = index % len(self._ring)
        b = self._ring[slot]
        if b.index != index:
            if index < b.index:
                return  # the clock stepped back past the ring
            if b.index >= 0:
                self._gone.add(b)
            b = self._ring[slot] = _Second(index)
        k = bucket_key(seconds)
        b.latency[k] = b.latency.get(k, 0) + 1
        b.requests += 1
        b.errors += error
        if cache == "hit":
            b.exact_hits += 1
        elif cache == "miss":
            b.exact_misses += 1
        elif cache == "semantic":
            b.semantic_hits += 1
        b.tokens_in += tin
        b.tokens_out += tout
        b.spend += spend

    def since(self, first: int, stop: int) -> _Second:
        """The buckets of seconds [first, stop), summed."""
        out = _Second(first)
        for b in self._ring:
            if first <= b.index < stop:
                out.add(b)
        return out

    def total(self) -> _Second:
        """Everything since the series began (its latency histogram only over the ring)."""
        out = self.since(0, 1 << 62)
        out.add(self._gone)
        return out


class Traffic:
    """The recorder behind the overview (a `Recorder`: never blocks, never raises)."""

    def __init__(self, prices: Mapping[str, Price], clock: Callable[[], float] = time.time) -> None:
        self._prices = dict(prices)
        self._clock = clock
        self.series: dict[tuple[str, str], Series] = {}

    def record(self, done: Finished) -> None:
        if done.model == UNKNOWN_MODEL:
            return
        deployment, _ = done.labels()
        key = (done.model, deployment)
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= MAX_SERIES:
                return
            series = self.series[key] = Series()
        ctx = done.ctx
        cache, tin, tout, spend = None, 0, 0, 0
        if ctx is not None:
            routing = ctx.routing
            cache, tin, tout = ctx.cache_result, routing.prompt_tokens, routing.completion_tokens
            spend = cost_micro(routing, self._prices)
        series.record(self._clock(), done.seconds, done.error is not None, cache, tin, tout, spend)

    def now(self) -> float:
        return self._clock()


def _rate(n: int, d: int) -> float | None:
    return n / d if d else None


def _figures(parts: Iterable[Series], now: float) -> dict[str, Any]:
    """The overview's numbers for the series in `parts`, summed."""
    this = int(now)
    recent, span, total = _Second(0), _Second(0), _Second(0)
    for s in parts:
        recent.add(s.since(this - RATE_S, this))
        span.add(s.since(this - SPAN_S, this + 1))
        total.add(s.total())
    lookups = span.exact_hits + span.exact_misses + span.semantic_hits
    return {
        "requests_per_s": recent.requests / RATE_S,
        "requests": span.requests,
        "p95_ms": quantile(span.latency, 0.95),
        "error_rate": _rate(span.errors, span.requests),
        "exact_hit_rate": _rate(span.exact_hits, lookups),
        "semantic_hit_rate": _rate(span.semantic_hits, span.exact_misses + span.semantic_hits),
        "total_requests": total.requests,
        "tokens_in": total.tokens_in,
        "tokens_out": total.tokens_out,
        "spend_usd": total.spend / MICRO,
    }


def overview(traffic: Traffic, groups: Iterable[GroupRuntime], ready: Mapping[str, bool]) -> dict[str, Any]:
    """The overview panel: per model group its figures (cache hits included), and per deployment
    its health (the readiness probe), circuit state, requests in flight and figures."""
    now = traffic.now()
    out = []
    for group in groups:
        mine = [s for (model, _), s in traffic.series.items() if model == group.name]
        deployments = []
        for d in group.deployments:
            series = traffic.series.get((group.name, d.id))
            state = CircuitState(d.circuit.state).name.lower().replace("_", "-")
            deployments.append(
                {
                    "id": d.id, "version": d.version, "weight": d.weight, "healthy": ready.get(d.id),
                    "circuit": "retry-after" if d.blocked_until > now and state == "closed" else state,
                    "inflight": d.inflight, **_figures([series] if series else [], now),
                    # The caches answer for the group, before a deployment is chosen: a deployment
                    # only sees what they missed, so a hit rate of its own would always read 0.
                    "exact_hit_rate": None, "semantic_hit_rate": None,
                }
            )  # fmt: skip
        cached = traffic.series.get((group.name, NONE))
        out.append(
            {
                "model": group.name,
                "strategy": group.strategy,
                **_figures(mine, now),
                "answered_by_cache": _figures([cached] if cached else [], now)["total_requests"],
                "deployments": deployments,
            }
        )
    return {"at": now, "rate_window_s": RATE_S, "window_s": SPAN_S, "groups": out}
