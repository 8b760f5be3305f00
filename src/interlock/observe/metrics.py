"""Prometheus metrics. Label values come only from configuration (model groups, deployment ids)
and small fixed sets (status codes, tiers), never from request content.

With `--workers N` each process writes its samples to files in PROMETHEUS_MULTIPROC_DIR (set by
the CLI before any worker starts) and `/metrics` merges them, so counters stay correct across
processes. Label children are cached per label tuple: `labels()` costs a lock and a dict lookup
that the hot path does not need to pay twice.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
UNKNOWN_MODEL = "_unknown"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "interlock_requests", "Requests answered", ["model", "endpoint", "status", "cache"], registry=r
        )
        self.request_seconds = Histogram(
            "interlock_request_seconds", "End-to-end latency", ["model", "endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.overhead_seconds = Histogram(
            "interlock_overhead_seconds", "Gateway overhead: total minus upstream time", ["model"],
            buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            "interlock_upstream_seconds", "Upstream call latency (to the last byte)", ["model", "deployment"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft_seconds = Histogram(
            "interlock_ttft_seconds", "Time to first token of streams", ["model", "deployment"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inflight = Gauge(
            "interlock_inflight", "Requests in flight per deployment", ["deployment"],
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.queued = Gauge(
            "interlock_queued", "Requests waiting in a deployment's queue", ["deployment"],
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.cache = Counter("interlock_cache", "Cache lookups", ["tier", "result"], registry=r)
        self.cache_errors = Counter(
            "interlock_cache_errors", "Cache tier failures (the request went on without it)", ["tier", "op"],
            registry=r,
        )  # fmt: skip
        self.coalesced = Counter(
            "interlock_coalesced", "Requests answered by an identical request already in flight", ["model"],
            registry=r,
        )  # fmt: skip
        self.retries = Counter("interlock_retries", "Upstream retries", ["model", "deployment"], registry=r)
        self.fallbacks = Counter(
            "interlock_fallbacks", "Fallbacks to another model group", ["model", "to_model"], registry=r
        )
        self.upstream_errors = Counter(
            "interlock_upstream_errors", "Failed upstream attempts", ["deployment", "status"], registry=r
        )
        self.circuit_state = Gauge(
            "interlock_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["deployment"],
            multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.tokens = Counter("interlock_tokens", "Tokens in and out", ["model", "deployment", "direction"], registry=r)
        self.limited = Counter(
            "interlock_rate_limited", "Requests refused by a rate limit", ["scope", "unit"], registry=r
        )
        self.limit_errors = Counter(
            "interlock_limit_store_errors", "Rate limit counter store failures", ["op"], registry=r
        )
        self.pii = Counter("interlock_pii_entities", "PII and secrets found in requests", ["type"], registry=r)
        self.dlp_blocks = Counter("interlock_dlp_blocked", "Requests blocked by a DLP policy", ["policy"], registry=r)
        self.dlp_errors = Counter(
            "interlock_dlp_errors", "Detection or tokenization failures (fail closed)", ["policy"], registry=r
        )
        self.spent = Counter(
            "interlock_spend_usd", "What answers cost at the configured prices", ["model", "deployment"], registry=r
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the request as a whole ---------------------------------------------------------------
    def request_done(self, model: str, endpoint: str, status: int, cache: str, seconds: float, upstream: float) -> None:
        self._child(self.requests, model, endpoint, str(status), cache).inc()
        self._child(self.request_seconds, model, endpoint).observe(seconds)
        self._child(self.overhead_seconds, model).observe(max(0.0, seconds - upstream))

    # -- upstream ----------------------------------------------------------------------------
    def upstream_done(self, model: str, deployment: str, seconds: float) -> None:
        self._child(self.upstream_seconds, model, deployment).observe(seconds)

    def first_token(self, model: str, deployment: str, seconds: float) -> None:
        self._child(self.ttft_seconds, model, deployment).observe(seconds)

    def upstream_failed(self, deployment: str, status: int) -> None:
        self._child(self.upstream_errors, deployment, str(status)).inc()

    def inflight_add(self, deployment: str, delta: int) -> None:
        self._child(self.inflight, deployment).inc(delta)

    def set_queued(self, deployment: str, depth: int) -> None:
        self._child(self.queued, deployment).set(depth)

    def token_usage(self, model: str, deployment: str, prompt: int, completion: int) -> None:
        if prompt:
            self._child(self.tokens, model, deployment, "in").inc(prompt)
        if completion:
            self._child(self.tokens, model, deployment, "out").inc(completion)

    def retry(self, model: str, deployment: str) -> None:
        self._child(self.retries, model, deployment).inc()

    def fallback(self, model: str, to_model: str) -> None:
        self._child(self.fallbacks, model, to_model).inc()

    def circuit(self, deployment: str, state: int) -> None:
        self._child(self.circuit_state, deployment).set(state)

    # -- cache ---------------------------------------------------------------------------------
    def cache_lookup(self, tier: str, hit: bool) -> None:
        self._child(self.cache, tier, "hit" if hit else "miss").inc()

    def cache_error(self, tier: str, op: str) -> None:
        self._child(self.cache_errors, tier, op).inc()

    def coalesce(self, model: str) -> None:
        self._child(self.coalesced, model).inc()

    # -- limits --------------------------------------------------------------------------------
    def rate_limited(self, scope: str, unit: str) -> None:
        self._child(self.limited, scope, unit).inc()

    def spend(self, model: str, deployment: str, usd: float) -> None:
        self._child(self.spent, model, deployment).inc(usd)

    def limit_error(self, op: str) -> None:
        self._child(self.limit_errors, op).inc()

    # -- data protection ------------------------------------------------------------------------
    def pii_found(self, kind: str, n: int) -> None:
        self._child(self.pii, kind).inc(n)

    def dlp_blocked(self, policy: str) -> None:
        self._child(self.dlp_blocks, policy).inc()

    def dlp_error(self, policy: str) -> None:
        self._child(self.dlp_errors, policy).inc()

    # -- exposition ----------------------------------------------------------------------------
    def render(self) -> bytes:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
