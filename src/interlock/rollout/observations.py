"""What the driver's analyses read: the `Observations` the composition root gives it.

`GatewayObservations.measure(model, candidate, stable, start, end)` builds a `Measurement` from
three sources the gateway already has:

- the request windows (`observe.window.RequestStats`, recorded once per request at the edge):
  requests, error rate, P95 latency, P95 time to first token and mean confidence of each version
  over [start, end). With Redis, every replica publishes its windows each `poll_s` under
  `{prefix}windows` and the measuring replica merges them (`observe.window.publish/merged`), so
  the lease holder judges all replicas' traffic, not only its own. A replica's share is as old as
  its last publish (at most `poll_s`); a bucket that began inside the interval counts whole.
- the alert engine's `breaches(model, candidate)`: `drift_breaches` (0 without an engine);
- with a drift monitor, the candidate's live drift window tested against the stable version's
  (`DriftMonitor.compare_versions`): `drift_share`, the share of features that differ, over the
  same window of the same traffic (None when no feature had enough observations);
- the shadow comparisons of the interval (`ShadowLog`): the candidate's `shadow_*` signals, and
  the stable version's from its self-consistency baseline (stable shadowed against itself), which
  is what a relative condition such as `shadow_similarity > stable * 0.7` compares with. The
  baseline is read over the last `baseline_window_s` (300 s; the interval when longer): how well
  stable agrees with itself does not depend on the candidate's weight, and at a high weight few
  stable requests are left to copy (in bench/rollout/, at 60 %, about 12 an interval: one interval
  in ten had fewer than `min_requests` 10 and paused the rollout).

Errors reading Redis become `ObservationError`, which the driver records as an Error measurement.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..lifecycle import Background
from ..observe.drift import DriftReport, Status
from ..observe.window import RequestStats, merged, publish
from .analysis import Measurement, signals_from_stats
from .driver import ObservationError
from .shadow import ShadowComparison, ShadowSummary, summarize

log = logging.getLogger("interlock.rollout")
BASELINE_WINDOW_S = 300.0  # the stable baseline is read over this long (or the interval, if longer)
MAX_SHADOWS = 10_000  # comparisons kept per model group (in memory, or in the Redis list)


class BreachSource(Protocol):
    def breaches(self, model: str, version: str) -> Sequence[object]: ...


class DriftSource(Protocol):
    async def compare_versions(self, model: str, reference_version: str, version: str) -> DriftReport: ...


def drift_share(report: DriftReport) -> float | None:
    """The share of features that drifted, or None when none had enough observations to test."""
    tested = any(f.status is not Status.INSUFFICIENT for f in report.features)
    return report.drifted_share if tested else None


class _Row(msgspec.Struct, array_like=True, frozen=True):
    at: float
    error: bool
    latency_ratio: float | None
    length_ratio: float | None
    similarity: float | None
    # Trailing fields with defaults: rows written before they existed still decode.
    refusal: bool = False
    unfinished: bool = False
    json_invalid: bool | None = None

    def comparison(self) -> ShadowComparison:
        return ShadowComparison(self.error, self.latency_ratio, self.length_ratio, self.similarity,
                                self.refusal, self.unfinished, self.json_invalid)  # fmt: skip


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Row)


class ShadowLog:
    """The shadow comparisons of each model group with their time, the candidate's and the
    stable baseline's apart. In memory (bounded per group) or, with Redis, in the lists
    `{prefix}shadow:{model}` and `{prefix}baseline:{model}` (trimmed to the latest MAX_SHADOWS),
    so the lease holder sees every replica's comparisons."""

    def __init__(self, redis: Redis | None = None, prefix: str = "interlock:rollout:", keep: int = MAX_SHADOWS):
        self._redis = redis
        self._prefix = prefix
        self._keep = keep
        self._local: dict[str, deque[_Row]] = {}

    def _key(self, model: str, baseline: bool) -> str:
        return f"{self._prefix}{'baseline' if baseline else 'shadow'}:{model}"

    async def add(self, model: str, at: float, c: ShadowComparison, baseline: bool = False) -> None:
        """One comparison: the candidate's shadow, or (`baseline`) stable's answer against itself."""
        row = _Row(at, c.error, c.latency_ratio, c.length_ratio, c.similarity, c.refusal, c.unfinished, c.json_invalid)
        key = self._key(model, baseline)
        if self._redis is None:
            rows = self._local.get(key)
            if rows is None:
                rows = self._local[key] = deque(maxlen=self._keep)
            rows.append(row)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, _ENCODER.encode(row))
            pipe.ltrim(key, -self._keep, -1)
            pipe.expire(key, 7 * 86_400)
            await pipe.execute()

    async def summary(self, model: str, start: float, end: float, baseline: bool = False) -> ShadowSummary:
        key = self._key(model, baseline)
        if self._redis is None:
            rows: list[_Row] = list(self._local.get(key, ()))
        else:
            rows = [_DECODER.decode(b) for b in await self._redis.lrange(key, 0, -1)]
        return summarize(r.comparison() for r in rows if start <= r.at < end)


class GatewayObservations:
    """The driver's `Observations` over the request windows, the alert engine and the shadow log."""

    def __init__(
        self,
        stats: RequestStats,
        shadows: ShadowLog,
        alerts: BreachSource | None = None,
        redis: Redis | None = None,
        prefix: str = "interlock:rollout:",
        publish_s: float = 1.0,
        drift: DriftSource | None = None,
        baseline_window_s: float = BASELINE_WINDOW_S,
    ) -> None:
        self._stats = stats
        self._baseline_window_s = baseline_window_s
        self._drift = drift
        self._shadows = shadows
        self._alerts = alerts
        self._redis = redis
        self._prefix = prefix
        self._publish_s = publish_s
        self._ttl_s = max(3 * publish_s, 5.0)
        self._publisher = Background("rollout windows", self._publish_loop)

    async def start(self) -> None:
        if self._redis is not None:
            self._publisher.start()

    async def close(self) -> None:
        await self._publisher.stop()

    async def _publish_loop(self) -> None:
        assert self._redis is not None
        failing = False
        while True:
            try:
                await publish(self._stats, self._redis, self._prefix, self._ttl_s)
                failing = False
            except RedisError as exc:
                if not failing:
                    log.warning("rollout windows: publishing to Redis failed (%s)", type(exc).__name__)
                failing = True
            await asyncio.sleep(self._publish_s)

    async def _view(self) -> RequestStats:
        if self._redis is None:
            return self._stats
        return await merged(self._redis, self._prefix, self._stats, self._ttl_s)

    @property
    def settle_s(self) -> float:
        return self._stats.bucket_s + self._publish_s if self._redis is not None else 0.0

    async def measure(self, model: str, candidate: str, stable: str, start: float, end: float) -> Measurement:
        bucket = self._stats.bucket_s
        if self._redis is not None:
            # Every replica publishes its windows every publish_s: wait until the interval's last
            # bucket has closed and is in every replica's latest publish, or the analysis misses
            # the end of the interval (measured: about a third of its requests at 1 s buckets).
            late = end + bucket + self._publish_s - time.time()
            if late > 0:
                await asyncio.sleep(late)
        # The windows count whole buckets that begin inside [from, end): from the bucket the
        # interval starts in, which holds its first requests at the step's weight.
        first = math.floor(start / bucket) * bucket
        try:
            view = await self._view()
            shadow = await self._shadows.summary(model, start, end)
            since = min(start, end - self._baseline_window_s)
            baseline = await self._shadows.summary(model, since, end, baseline=True)
        except (RedisError, OSError, msgspec.DecodeError) as exc:
            raise ObservationError(type(exc).__name__) from None
        cand = signals_from_stats(view.stats(model, candidate, first, end))
        cand["drift_breaches"] = float(len(self._alerts.breaches(model, candidate))) if self._alerts else 0.0
        cand.update(shadow.signals())
        if self._drift is not None:
            cand["drift_share"] = drift_share(await self._drift.compare_versions(model, stable, candidate))
        stab = signals_from_stats(view.stats(model, stable, first, end))
        stab.update(baseline.signals())
        return Measurement(start=start, end=end, candidate=cand, stable=stab)
