"""Counters, histograms and gauges for the series every request updates, kept as plain numbers.

prometheus_client's own children take a lock per update and go through several method calls (a
histogram's `observe` takes two locks: its sum and its bucket). For the four series every request
touches (requests, latency, overhead, cache lookups) these families save 2.2-3.0 µs of a cache
hit's 20-25 µs through the ASGI app in process (`BENCH_COMPARE=in-process bench/compare.sh`,
bench/RESULTS.md); a cache miss updates four more (upstream latency, tokens in and out, finish
reasons, requests in flight per deployment), which cost it 6 % of its CPU in prometheus_client.
They keep each child as a few attributes updated without a lock, and hand prometheus_client the
same samples when the registry is collected, so `/metrics` reads as it
did: the same names, help, labels, buckets, `_total`, `_count`, `_sum` and `_created` series
(tests/unit/observe/test_hot.py compares them with prometheus_client's own).

Only the event loop's thread updates them (the recorders and the cache stage run there): an
update from another thread could be lost, never corrupt one. With `--workers N` the samples must
reach prometheus_client's files (multiprocess mode) and `Metrics` uses prometheus_client's own
classes instead.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

INF = float("inf")
C = TypeVar("C")


def _use_created() -> bool:
    """prometheus_client's own switch for the `_created` series, read the way it reads it."""
    return os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramChild:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # upper bounds, ending with +Inf
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount, as prometheus_client's `le` counts.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family(Generic[C]):
    """What the three kinds share: children by label values, and collection as one
    prometheus_client metric family of `_kind` with a sample (or samples) per child (`_add`)."""

    _kind: type[CounterMetricFamily] | type[GaugeMetricFamily] | type[HistogramMetricFamily]

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._created = _use_created()
        self._children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    def labels(self, *values: object) -> C:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected {len(self._labelnames)} label values, got {len(key)}")
            child = self._children[key] = self._new_child()
        return child

    def describe(self) -> list[Metric]:
        return [self._empty()]

    def collect(self) -> list[Metric]:
        family = self._empty()
        for key, child in list(self._children.items()):
            self._add(family, key, child)
        return [family]

    def _empty(self) -> Any:
        return self._kind(self._name, self._documentation, labels=self._labelnames)

    def _new_child(self) -> C:
        raise NotImplementedError

    def _add(self, family: Any, key: tuple[str, ...], child: C) -> None:
        raise NotImplementedError


class HotCounter(_Family[CounterChild]):
    """A counter family (`name_total`, `name_created`), its children `CounterChild`s."""

    _kind = CounterMetricFamily

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def _add(self, family: CounterMetricFamily, key: tuple[str, ...], child: CounterChild) -> None:
        family.add_metric(key, child.value, created=child.created if self._created else None)


class HotGauge(_Family[GaugeChild]):
    """A gauge family, its children `GaugeChild`s. (`multiprocess_mode` is prometheus_client's
    Gauge's argument, taken so that either class is made the same way; one process needs none.)"""

    _kind = GaugeMetricFamily

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        multiprocess_mode: str = "all",
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def _add(self, family: GaugeMetricFamily, key: tuple[str, ...], child: GaugeChild) -> None:
        family.add_metric(key, child.value)


class HotHistogram(_Family[HistogramChild]):
    """A histogram family (`name_bucket`, `name_count`, `name_sum`, `name_created`), its children
    `HistogramChild`s."""

    _kind = HistogramMetricFamily

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        bounds = tuple(sorted(float(b) for b in buckets))
        self._bounds = bounds if bounds and bounds[-1] == INF else (*bounds, INF)
        self._le = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]  # untyped upstream
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def _add(self, family: HistogramMetricFamily, key: tuple[str, ...], child: HistogramChild) -> None:
        total = 0
        buckets = []
        for le, n in zip(self._le, child.counts, strict=True):
            total += n
            buckets.append((le, float(total)))
        family.add_metric(key, buckets, child.sum)
        if self._created:
            labels = dict(zip(self._labelnames, key, strict=True))
            family.samples.append(Sample(self._name + "_created", labels, child.created))
