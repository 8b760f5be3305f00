"""Prometheus metrics. Label values come only from configuration (model groups, deployment ids)
and small fixed sets (status codes, tiers), never from request content.

With `--workers N` each process writes its samples to files in PROMETHEUS_MULTIPROC_DIR (set by
the CLI before any worker starts) and `/metrics` merges them, so counters stay correct across
processes. Label children are cached per label tuple: `labels()` costs a lock and a dict lookup
that the hot path does not need to pay twice. In one process, the series every request updates
(and those every upstream call does) are kept as plain numbers (observe/hot.py) and exposed the
same way.
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

from .confidence import Confidence
from .hot import HotCounter, HotGauge, HotHistogram

# LLM latencies run from a millisecond (a cache hit) to minutes (a long generation): finer where
# P50-P99 of chat answers usually fall (0.25 s to 30 s).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0,
    20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
)  # fmt: skip
# Semantic cache lookups: embedding one turn (a few ms to tens of ms) and a search (well under one).
SEMANTIC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
# Gaps between tokens: 1000 tokens/s down to stalls of half a minute.
ITL_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
LOGPROB_BUCKETS = (-20.0, -10.0, -5.0, -3.0, -2.0, -1.5, -1.0, -0.75, -0.5, -0.3, -0.2, -0.1, -0.05, -0.01, 0.0)
PERPLEXITY_BUCKETS = (1.01, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
NONE = "_none"  # the deployment and version label of requests no deployment answered (hits, errors)
UNKNOWN_MODEL = "_unknown"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def choose_value_class() -> None:
    """prometheus_client picks how samples are stored (in memory, or in PROMETHEUS_MULTIPROC_DIR)
    when it is imported; a worker forked after `--workers N` set that directory picks again."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # The series every request updates: plain numbers in one process (observe/hot.py says
        # why), prometheus_client's own when its samples must reach the multiprocess files.
        hot = not multiprocess_enabled()
        counter: type[Counter] | type[HotCounter] = HotCounter if hot else Counter
        histogram: type[Histogram] | type[HotHistogram] = HotHistogram if hot else Histogram
        gauge: type[Gauge] | type[HotGauge] = HotGauge if hot else Gauge
        self.requests = counter(
            "interlock_requests", "Requests answered", ["model", "endpoint", "status", "cache"], registry=r
        )
        self.request_seconds = histogram(
            "interlock_request_seconds", "End-to-end latency", ["model", "endpoint", "deployment", "version"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "interlock_errors", "Failed requests by class: client, upstream, timeout, policy, internal",
            ["model", "deployment", "version", "class"], registry=r,
        )  # fmt: skip
        self.overhead_seconds = histogram(
            "interlock_overhead_seconds", "Gateway overhead: total minus upstream time", ["model"],
            buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_seconds = histogram(
            "interlock_upstream_seconds", "Upstream call latency (to the last byte)", ["model", "deployment"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        labels = ["model", "deployment", "version"]
        self.ttft_seconds = Histogram(
            "interlock_ttft_seconds", "Streams: from the request's arrival to its first token", labels,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.itl_seconds = Histogram(
            "interlock_itl_seconds", "Streams: mean gap between tokens, one observation per stream", labels,
            buckets=ITL_BUCKETS, registry=r,
        )  # fmt: skip
        self.itl_max_seconds = Histogram(
            "interlock_itl_max_seconds", "Streams: longest gap between two tokens, one observation per stream",
            labels, buckets=ITL_BUCKETS, registry=r,
        )  # fmt: skip
        self.finish_reasons = counter(
            "interlock_finish_reasons", "Generated answers by finish_reason", [*labels, "finish_reason"], registry=r
        )
        self.logprob_mean = Histogram(
            "interlock_logprob_mean", "Mean token logprob per answer (answers with logprobs)", labels,
            buckets=LOGPROB_BUCKETS, registry=r,
        )  # fmt: skip
        self.logprob_min = Histogram(
            "interlock_logprob_min", "Lowest token logprob per answer", labels, buckets=LOGPROB_BUCKETS, registry=r
        )
        self.perplexity = Histogram(
            "interlock_perplexity", "Perplexity per answer: exp(-mean token logprob)", labels,
            buckets=PERPLEXITY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inflight = gauge(
            "interlock_inflight", "Requests in flight per deployment", ["deployment"],
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.queued = Gauge(
            "interlock_queued", "Requests waiting in a deployment's queue", ["deployment"],
            multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.drift_share = Gauge(
            "interlock_drift_share", "Share of drift features flagged against the reference (live window)",
            ["model", "version"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.drift_feature = Gauge(
            "interlock_drift_feature", "1 when this feature drifted from the reference, else 0",
            ["model", "version", "feature"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.drift_dropped = Counter(
            "interlock_drift_dropped", "Exchanges not observed for drift (per-second cap or full queue)", registry=r
        )
        self.cache = counter("interlock_cache", "Cache lookups", ["tier", "result"], registry=r)
        self.cache_errors = Counter(
            "interlock_cache_errors", "Cache tier failures (the request went on without it)", ["tier", "op"],
            registry=r,
        )  # fmt: skip
        self.coalesced = Counter(
            "interlock_coalesced", "Requests answered by an identical request already in flight", ["model"],
            registry=r,
        )  # fmt: skip
        self.semantic = Counter(
            "interlock_semantic_cache", "Semantic cache lookups: hit, miss, guarded (a neighbour the guard "
            "refused), timeout (the embedder was too slow), busy (its queue was full): both misses",
            ["model", "result"], registry=r,
        )  # fmt: skip
        self.semantic_seconds = Histogram(
            "interlock_semantic_lookup_seconds", "Semantic cache lookups: embedding the last user turn and the search",
            ["model"], buckets=SEMANTIC_BUCKETS, registry=r,
        )  # fmt: skip
        self.retries = Counter("interlock_retries", "Upstream retries", ["model", "deployment"], registry=r)
        self.ingested = Counter(
            "interlock_ingest_files", "Files ingested into vector stores: completed, or failed and the reason's code",
            ["status", "reason"], registry=r,
        )  # fmt: skip
        self.ingested_chunks = Counter("interlock_ingest_chunks", "Chunks indexed into vector stores", registry=r)
        self.retrieval_seconds = Histogram(
            "interlock_retrieval_seconds", "Vector store searches: embedding the queries and the search",
            ["kind"], buckets=SEMANTIC_BUCKETS, registry=r,
        )  # fmt: skip
        self.embedding_store = Counter(
            "interlock_embedding_store", "Texts looked up in the precomputed embeddings", ["tier", "result"],
            registry=r,
        )  # fmt: skip
        self.embedding_batch = Histogram(
            "interlock_embedding_batch_texts", "Texts embedded in one forward pass", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )  # fmt: skip
        self.embedding_pass_seconds = Histogram(
            "interlock_embedding_pass_seconds", "Time of one embedding forward pass", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )  # fmt: skip
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
        self.tokens = counter("interlock_tokens", "Tokens in and out", [*labels, "direction"], registry=r)
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
        self.shadows = Counter(
            "interlock_shadow_requests", "Shadow copies sent to a rollout's candidate (never a caller's request)",
            ["model", "version", "outcome"], registry=r,
        )  # fmt: skip
        self._children: dict[tuple[Any, ...], Any] = {}
        self._request_children: dict[tuple[str, str, int, str, str, str], tuple[Any, Any, Any]] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the request as a whole ---------------------------------------------------------------
    def request_done(
        self,
        model: str,
        endpoint: str,
        status: int,
        cache: str,
        seconds: float,
        upstream: float,
        deployment: str = NONE,
        version: str = NONE,
    ) -> None:
        # Every request passes here, cache hits included: the three children come from one
        # lookup keyed by plain values, and the status becomes a string only once per key.
        key = (model, endpoint, status, cache, deployment, version)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(model, endpoint, str(status), cache),
                self.request_seconds.labels(model, endpoint, deployment, version),
                self.overhead_seconds.labels(model),
            )
        requests, latency, overhead = children
        requests.inc()
        latency.observe(seconds)
        overhead.observe(seconds - upstream if seconds > upstream else 0.0)

    def error(self, model: str, deployment: str, version: str, kind: str) -> None:
        self._child(self.errors, model, deployment, version, kind).inc()

    # -- what a deployment generated -----------------------------------------------------------
    def first_token(self, model: str, deployment: str, version: str, seconds: float) -> None:
        self._child(self.ttft_seconds, model, deployment, version).observe(seconds)

    def inter_token(self, model: str, deployment: str, version: str, mean: float, longest: float) -> None:
        self._child(self.itl_seconds, model, deployment, version).observe(mean)
        self._child(self.itl_max_seconds, model, deployment, version).observe(longest)

    def finished(self, model: str, deployment: str, version: str, reason: str) -> None:
        """`reason` is the backend's finish_reason; anything outside OpenAI's set counts as `other`."""
        label = reason if reason in FINISH_REASONS else "other"
        self._child(self.finish_reasons, model, deployment, version, label).inc()

    def confidence(self, model: str, deployment: str, version: str, conf: Confidence) -> None:
        self._child(self.logprob_mean, model, deployment, version).observe(conf.mean_logprob)
        self._child(self.logprob_min, model, deployment, version).observe(conf.min_logprob)
        self._child(self.perplexity, model, deployment, version).observe(conf.perplexity)

    def drift(self, model: str, version: str, share: float, features: dict[str, bool]) -> None:
        """`features`: every tested feature and whether it drifted (names from a fixed set)."""
        self._child(self.drift_share, model, version).set(share)
        for name, drifted in features.items():
            self._child(self.drift_feature, model, version, name).set(1.0 if drifted else 0.0)

    # -- upstream ----------------------------------------------------------------------------
    def upstream_done(self, model: str, deployment: str, seconds: float) -> None:
        self._child(self.upstream_seconds, model, deployment).observe(seconds)

    def upstream_failed(self, deployment: str, status: int) -> None:
        self._child(self.upstream_errors, deployment, str(status)).inc()

    def inflight_add(self, deployment: str, delta: int) -> None:
        self._child(self.inflight, deployment).inc(delta)

    def set_queued(self, deployment: str, depth: int) -> None:
        self._child(self.queued, deployment).set(depth)

    def token_usage(self, model: str, deployment: str, version: str, prompt: int, completion: int) -> None:
        if prompt:
            self._child(self.tokens, model, deployment, version, "in").inc(prompt)
        if completion:
            self._child(self.tokens, model, deployment, version, "out").inc(completion)

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

    def semantic_lookup(self, model: str, result: str, seconds: float) -> None:
        self._child(self.semantic, model, result).inc()
        self._child(self.semantic_seconds, model).observe(seconds)

    # -- vector stores ---------------------------------------------------------------------------
    def file_ingested(self, status: str, reason: str | None, chunks: int) -> None:
        """`reason`: a failed file's last_error; only its code (before any `:`) is a label."""
        code = reason.split(":", 1)[0] if reason else ""
        self._child(self.ingested, status, code).inc()
        if chunks:
            self.ingested_chunks.inc(chunks)

    def retrieved(self, kind: str, seconds: float) -> None:
        self._child(self.retrieval_seconds, kind).observe(seconds)

    # -- embeddings ------------------------------------------------------------------------------
    def embedding_lookups(self, tier: str, hits: int, misses: int) -> None:
        if hits:
            self._child(self.embedding_store, tier, "hit").inc(hits)
        if misses:
            self._child(self.embedding_store, tier, "miss").inc(misses)

    def embedding_pass(self, texts: int, seconds: float) -> None:
        self.embedding_batch.observe(texts)
        self.embedding_pass_seconds.observe(seconds)

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
    def shadow(self, model: str, version: str, outcome: str) -> None:
        """outcome: ok, error (the shadow call failed or timed out), dropped (too many in flight)."""
        self._child(self.shadows, model, version, outcome).inc()

    def render(self) -> bytes:
        if multiprocess_enabled():
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
