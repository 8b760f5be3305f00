"""What a comparison returns: per feature the test results and a status, and the dataset verdict.

`DriftReport.to_dict()` is the JSON body of `GET /admin/drift` and what a retraining trigger
posts. Non-finite numbers (a p-value that could not be computed) become null there, since JSON
has no NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .features import FeatureKind


class Status(StrEnum):
    OK = "ok"
    DRIFTED = "drifted"
    # Too few observations on either side to test: neither drifted nor OK.
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True, slots=True)
class Check:
    """One statistical test on one feature. `flagged` is None for tests that are reported but do not take part
    in the decision (PSI); `threshold` is what the p-value (tests with one) or the statistic
    (distances) was compared with."""

    name: str
    statistic: float
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "threshold": self.threshold,
            "flagged": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class FeatureResult:
    name: str
    kind: FeatureKind
    status: Status
    n_reference: int
    n_live: int
    checks: tuple[Check, ...] = ()
    reason: str = ""

    @property
    def drifted(self) -> bool:
        return self.status is Status.DRIFTED

    def check(self, name: str) -> Check:
        for t in self.checks:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_live": self.n_live,
            "reason": self.reason,
            "checks": [t.to_dict() for t in self.checks],
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    """`drifted_share` is drifted features over tested ones (insufficient ones are not tested);
    `dataset_drifted` says whether it reached `dataset_share` with at least one feature drifted."""

    features: tuple[FeatureResult, ...]
    n_reference: int
    n_live: int
    drifted_share: float
    dataset_share: float
    dataset_drifted: bool

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def feature(self, name: str) -> FeatureResult:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        tested = [f for f in self.features if f.status is not Status.INSUFFICIENT]
        return {
            "dataset_drifted": self.dataset_drifted,
            "drifted_share": _finite(self.drifted_share),
            "dataset_share": self.dataset_share,
            "drifted_features": self.drifted_features,
            "tested_features": len(tested),
            "n_reference": self.n_reference,
            "n_live": self.n_live,
            "features": [f.to_dict() for f in self.features],
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
