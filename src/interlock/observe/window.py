"""Rolling request statistics per (model group, version), mergeable across workers and replicas.

`RequestStats` keeps, per series, a ring of time buckets (`bucket_s` wide, `span_s` deep, on an
injected wall clock so replicas agree on bucket boundaries). Each bucket holds the request count,
errors by class (`errors.ERROR_CLASSES`: `client`, `upstream`, `timeout`, `policy`, `internal`), latency and
time-to-first-token histograms, and the sum and count of answer confidences (mean token logprob).

Histograms are sparse dicts over fixed log-spaced buckets: 8 per doubling, from 7.8 µs to 35
minutes, so a quantile read from them is within 4.4% of the true value (the bucket's geometric
middle is reported). Fixed boundaries make them cheap to update (a `log2` and a dict increment),
exact to merge (add the counts) and small to serialise (only the buckets in use). A KLL sketch
would be more precise at the tails but costs a C++ call and an object per bucket.

Measured on the 2-core development machine (`bench/experiments/window_record.py`, best of 7 runs
of a million calls, with other work on the machine, so ranges over three runs): `RequestStats.record`
with latency, TTFT and confidence 1.1-1.6 µs, latency only 1.0-1.3 µs; `Window.record` (a caller
that keeps the series' window, skipping the lookup) 0.9-1.1 µs and 0.6-0.7 µs.

A query sums the buckets that *begin* within `[start, end)`; `last(seconds)` is the latest
`seconds` ending with the bucket under way, in whole buckets. So any interval the ring still holds
can be read, which is what a rollout's "candidate against stable over the analysis interval" needs.

Replicas share their view through Redis: `publish(stats, redis, prefix, ttl_s)` stores this
process's ring under `{prefix}window:{replica}` with a TTL and indexes it in the sorted set
`{prefix}windows`; `merged(redis, prefix, local, ttl_s)` adds every live replica's ring (with this
process's own live data in place of its published copy). Series keys must come from configuration
(group names, versions): the number of series is bounded by `max_series` regardless.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

# Histogram buckets: key k holds values in [2^(k/8 - 7), 2^((k+1)/8 - 7)) milliseconds.
_PER_DOUBLING = 8
_LOWEST_LOG2 = -7  # 2^-7 ms = 7.8 µs: everything below lands in bucket 0
_TOP_KEY = (21 - _LOWEST_LOG2) * _PER_DOUBLING  # 2^21 ms = 35 min: everything above lands here
_FORMAT = 1


_log2 = math.log2
_LOWEST_S = 2.0**_LOWEST_LOG2 / 1000.0
_S_TO_KEY = math.log2(1000.0) - _LOWEST_LOG2  # log2(ms) - lowest = log2(s) + this


def bucket_key(seconds: float) -> int:
    """The histogram bucket of a duration in seconds (`Window.record` inlines this)."""
    if seconds <= _LOWEST_S:  # also catches zero and negatives (a clock that stepped back)
        return 0
    k = int((_log2(seconds) + _S_TO_KEY) * _PER_DOUBLING)
    return k if k < _TOP_KEY else _TOP_KEY


def bucket_value(key: int) -> float:
    """The geometric middle of a bucket, in milliseconds: what a quantile reports."""
    return float(2.0 ** ((key + 0.5) / _PER_DOUBLING + _LOWEST_LOG2))


def quantile(histogram: dict[int, int], q: float) -> float | None:
    """The nearest-rank quantile (smallest value with at least q of the counts at or below it)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen >= rank:
            return bucket_value(key)
    return bucket_value(max(histogram))  # unreachable: seen reaches total


class _Bucket:
    __slots__ = ("conf_n", "conf_sum", "errors", "index", "latency", "requests", "ttft")

    def __init__(self, index: int) -> None:
        self.index = index  # start time // bucket_s
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.latency: dict[int, int] = {}
        self.ttft: dict[int, int] = {}
        self.conf_sum = 0.0
        self.conf_n = 0

    def add(self, other: _Bucket | _BucketData) -> None:
        self.requests += other.requests
        for name, n in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n
        for mine, theirs in ((self.latency, other.latency), (self.ttft, other.ttft)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.conf_sum += other.conf_sum
        self.conf_n += other.conf_n


class _BucketData(msgspec.Struct, array_like=True, frozen=True):
    index: int
    requests: int
    errors: dict[str, int]
    latency: dict[int, int]
    ttft: dict[int, int]
    conf_sum: float
    conf_n: int


class _SeriesData(msgspec.Struct, array_like=True, frozen=True):
    model: str
    version: str
    buckets: list[_BucketData]


class _Blob(msgspec.Struct, frozen=True):
    format: int
    bucket_s: float
    series: list[_SeriesData]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Blob)


@dataclass(frozen=True, slots=True)
class Stats:
    """One series over one interval. Latencies in milliseconds; None where nothing was observed."""

    requests: int
    errors: dict[str, int]
    latency: dict[int, int]
    ttft: dict[int, int]
    confidence_sum: float
    confidence_count: int

    def error_rate(self, error_class: str | None = None) -> float | None:
        if self.requests == 0:
            return None
        n = sum(self.errors.values()) if error_class is None else self.errors.get(error_class, 0)
        return n / self.requests

    def latency_ms(self, q: float) -> float | None:
        return quantile(self.latency, q)

    def ttft_ms(self, q: float) -> float | None:
        return quantile(self.ttft, q)

    @property
    def p50_ms(self) -> float | None:
        return quantile(self.latency, 0.50)

    @property
    def p95_ms(self) -> float | None:
        return quantile(self.latency, 0.95)

    @property
    def p99_ms(self) -> float | None:
        return quantile(self.latency, 0.99)

    @property
    def ttft_p95_ms(self) -> float | None:
        return quantile(self.ttft, 0.95)

    @property
    def confidence_mean(self) -> float | None:
        return self.confidence_sum / self.confidence_count if self.confidence_count else None


class Window:
    """One series' ring of buckets. Not thread-safe: one event loop records into it."""

    __slots__ = ("_bucket_s", "_clock", "_current", "_current_end", "_current_start", "_ring", "_size")

    def __init__(self, span_s: float, bucket_s: float, clock: Callable[[], float]) -> None:
        self._bucket_s = bucket_s
        self._clock = clock
        # One more bucket than the span holds, so a full span is readable while a bucket fills.
        self._size = math.ceil(span_s / bucket_s) + 1
        self._ring: list[_Bucket] = [_Bucket(-1) for _ in range(self._size)]
        # The bucket being filled and its bounds: most calls compare two floats instead of
        # dividing and indexing the ring.
        self._current = self._ring[0]
        self._current_start = self._current_end = 0.0

    def record(
        self,
        latency_s: float | None,
        error: str | None = None,
        ttft_s: float | None = None,
        confidence: float | None = None,
    ) -> None:
        """One finished request: its latency in seconds (None when there is none worth counting),
        its error class if it failed, its time to first token if it streamed, its mean token
        logprob if the answer had logprobs."""
        now = self._clock()
        b = self._current
        if not self._current_start <= now < self._current_end:
            rolled = self._roll(now)
            if rolled is None:
                return
            b = rolled
        b.requests += 1
        if error is not None:
            b.errors[error] = b.errors.get(error, 0) + 1
        if latency_s is not None:
            # bucket_key(), inlined: a call costs as much as the arithmetic.
            k = int((_log2(latency_s) + _S_TO_KEY) * _PER_DOUBLING) if latency_s > _LOWEST_S else 0
            if k > _TOP_KEY:
                k = _TOP_KEY
            h = b.latency
            h[k] = h.get(k, 0) + 1
        if ttft_s is not None:
            k = int((_log2(ttft_s) + _S_TO_KEY) * _PER_DOUBLING) if ttft_s > _LOWEST_S else 0
            if k > _TOP_KEY:
                k = _TOP_KEY
            h = b.ttft
            h[k] = h.get(k, 0) + 1
        if confidence is not None and confidence == confidence:  # NaN != NaN
            b.conf_sum += confidence
            b.conf_n += 1

    def _roll(self, now: float) -> _Bucket | None:
        index = int(now // self._bucket_s)
        slot = index % self._size
        b = self._ring[slot]
        if b.index != index:
            if index < b.index:
                return None  # older than the ring holds (the wall clock stepped back a whole span)
            b = self._ring[slot] = _Bucket(index)
        self._current = b
        self._current_start = index * self._bucket_s
        self._current_end = self._current_start + self._bucket_s
        return b

    def buckets(self) -> Iterator[_Bucket]:
        """The buckets still in the ring (those that have data), oldest first."""
        oldest = int(self._clock() // self._bucket_s) - self._size + 1
        return iter(sorted((b for b in self._ring if b.index >= oldest), key=lambda b: b.index))

    def add(self, other: _Bucket | _BucketData) -> None:
        """Merge one bucket's counts in (from another worker or replica); too old is ignored."""
        oldest = int(self._clock() // self._bucket_s) - self._size + 1
        if other.index < oldest:
            return
        slot = other.index % self._size
        b = self._ring[slot]
        if b.index != other.index:
            if other.index < b.index:
                return
            if b is self._current:  # record() must not go on filling an object out of the ring
                self._current_start = self._current_end = 0.0
            b = self._ring[slot] = _Bucket(other.index)
        b.add(other)

    def stats(self, start: float, end: float) -> Stats:
        """Every bucket that begins within [start, end) and is still within the span."""
        oldest = int(self._clock() // self._bucket_s) - self._size + 1
        first = max(math.ceil(start / self._bucket_s), oldest)
        stop = math.ceil(end / self._bucket_s)  # exclusive
        total = _Bucket(0)
        for b in self._ring:
            if first <= b.index < stop:
                total.add(b)
        return Stats(total.requests, total.errors, total.latency, total.ttft, total.conf_sum, total.conf_n)

    def last(self, seconds: float, now: float | None = None) -> Stats:
        """The latest `seconds` up to `now` (default: the clock), ending with the bucket `now`
        falls in, in whole buckets."""
        t = self._clock() if now is None else now
        end = (int(t // self._bucket_s) + 1) * self._bucket_s
        return self.stats(end - seconds, end)


def replica_id() -> str:
    """A name for this process among the replicas: host, pid and a random part (pids repeat)."""
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RequestStats:
    """Windows by (model group, version) for one process, with a replica id for publishing."""

    def __init__(
        self,
        span_s: float = 3600.0,
        bucket_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        replica: str | None = None,
        max_series: int = 1000,
    ) -> None:
        if bucket_s <= 0 or span_s < bucket_s:
            raise ValueError("expected 0 < bucket_s <= span_s")
        self.span_s = span_s
        self.bucket_s = bucket_s
        self.clock = clock
        self.replica = replica or replica_id()
        self._max_series = max_series
        self._series: dict[tuple[str, str], Window] = {}

    def window(self, model: str, version: str) -> Window | None:
        """The series' window, made on first use; None beyond `max_series` series."""
        key = (model, version)
        w = self._series.get(key)
        if w is None and len(self._series) < self._max_series:
            w = self._series[key] = Window(self.span_s, self.bucket_s, self.clock)
        return w

    def record(
        self,
        model: str,
        version: str,
        latency_s: float | None,
        error: str | None = None,
        ttft_s: float | None = None,
        confidence: float | None = None,
    ) -> None:
        """The hot path's call, once per request. Callers that keep the `Window` of a series can
        call its `record` directly and skip the lookup."""
        w = self._series.get((model, version))
        if w is None:
            w = self.window(model, version)
            if w is None:
                return
        w.record(latency_s, error, ttft_s, confidence)

    def series(self) -> list[tuple[str, str]]:
        return list(self._series)

    def stats(self, model: str, version: str, start: float, end: float) -> Stats:
        """One series over [start, end) (see `Window.stats`); empty for an unknown series."""
        w = self._series.get((model, version))
        return w.stats(start, end) if w is not None else _EMPTY

    def last(self, model: str, version: str, seconds: float, now: float | None = None) -> Stats:
        w = self._series.get((model, version))
        return w.last(seconds, now) if w is not None else _EMPTY

    def model_stats(self, model: str, start: float, end: float) -> Stats:
        """All versions of a model group together over [start, end)."""
        parts = [w.stats(start, end) for (m, _), w in self._series.items() if m == model]
        return combine(parts)

    # -- merging and serialisation -------------------------------------------------------------
    def merge(self, other: RequestStats) -> None:
        if other.bucket_s != self.bucket_s:
            raise ValueError("cannot merge windows with different bucket widths")
        for (model, version), w in other._series.items():
            mine = self.window(model, version)
            if mine is not None:
                for b in w.buckets():
                    mine.add(b)

    def merge_bytes(self, blob: bytes) -> None:
        data = _DECODER.decode(blob)
        if data.format != _FORMAT or data.bucket_s != self.bucket_s:
            raise ValueError("cannot merge windows of another format or bucket width")
        for s in data.series:
            mine = self.window(s.model, s.version)
            if mine is not None:
                for b in s.buckets:
                    mine.add(b)

    def to_bytes(self) -> bytes:
        series = [
            _SeriesData(model, version, [_to_data(b) for b in w.buckets()])
            for (model, version), w in self._series.items()
        ]
        return _ENCODER.encode(_Blob(_FORMAT, self.bucket_s, series))

    def empty_copy(self) -> RequestStats:
        return RequestStats(self.span_s, self.bucket_s, self.clock, self.replica, self._max_series)


_EMPTY = Stats(0, {}, {}, {}, 0.0, 0)


def combine(parts: Iterable[Stats]) -> Stats:
    total = _Bucket(0)
    for s in parts:
        total.add(_BucketData(0, s.requests, s.errors, s.latency, s.ttft, s.confidence_sum, s.confidence_count))
    return Stats(total.requests, total.errors, total.latency, total.ttft, total.conf_sum, total.conf_n)


def _to_data(b: _Bucket) -> _BucketData:
    return _BucketData(b.index, b.requests, dict(b.errors), dict(b.latency), dict(b.ttft), b.conf_sum, b.conf_n)


# -- sharing through Redis ---------------------------------------------------------------------
_INDEX_TTL_MS = 3_600_000  # entries are pruned by score on every publish; the key goes an hour after the last


def _keys(prefix: str) -> tuple[str, str]:
    return f"{prefix}window:", f"{prefix}windows"


async def publish(stats: RequestStats, redis: Redis, prefix: str, ttl_s: float) -> None:
    """Store this process's windows for `ttl_s` seconds (publish again well within it)."""
    blob_prefix, index = _keys(prefix)
    now = stats.clock()
    ttl_ms = max(1, int(ttl_s * 1000))
    pipe = redis.pipeline(transaction=False)
    pipe.set(blob_prefix + stats.replica, stats.to_bytes(), px=ttl_ms)
    pipe.zadd(index, {stats.replica: now})
    pipe.zremrangebyscore(index, "-inf", now - ttl_s)
    # The index outlives any one copy: a replica publishing with a shorter TTL must not drop it.
    pipe.pexpire(index, max(ttl_ms, _INDEX_TTL_MS))
    await pipe.execute()


async def merged(
    redis: Redis, prefix: str, local: RequestStats, ttl_s: float, include_local: bool = True
) -> RequestStats:
    """Every replica's published windows added together. `local` gives the bucket width, span and
    clock; with `include_local` its live data stands in for its own (older) published copy."""
    blob_prefix, index = _keys(prefix)
    now = local.clock()
    live = await redis.zrangebyscore(index, now - ttl_s, "+inf")
    members = [m.decode() if isinstance(m, bytes) else str(m) for m in live]
    others = [m for m in members if m != local.replica]
    out = local.empty_copy()
    if others:
        for blob in await redis.mget([blob_prefix + m for m in others]):
            if isinstance(blob, bytes):  # None: expired between the two reads
                out.merge_bytes(blob)
    if include_local:
        out.merge(local)
    return out
