"""Choosing one deployment among the candidates. Pure: data and a random source in, a choice out."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol


class Candidate(Protocol):
    @property
    def weight(self) -> float: ...

    @property
    def inflight(self) -> int: ...

    @property
    def latency_ewma(self) -> float | None: ...


def weighted(candidates: Sequence[Candidate], rng: random.Random) -> int:
    weights = [c.weight for c in candidates]
    total = sum(weights)
    if total <= 0:
        return rng.randrange(len(candidates))
    point = rng.random() * total
    for i, w in enumerate(weights):
        point -= w
        if point < 0:
            return i
    return len(candidates) - 1


def least_inflight(candidates: Sequence[Candidate], rng: random.Random) -> int:
    low = min(c.inflight for c in candidates)
    ties = [i for i, c in enumerate(candidates) if c.inflight == low]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


def lowest_latency(candidates: Sequence[Candidate], rng: random.Random) -> int:
    # A deployment with no measurement yet goes first, so that every one gets measured.
    unmeasured = [i for i, c in enumerate(candidates) if c.latency_ewma is None]
    if unmeasured:
        return rng.choice(unmeasured)
    return min(range(len(candidates)), key=lambda i: candidates[i].latency_ewma or 0.0)


STRATEGIES = {"weighted": weighted, "least_inflight": least_inflight, "lowest_latency": lowest_latency}
