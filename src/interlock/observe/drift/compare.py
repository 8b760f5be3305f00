"""The decision: which features drifted between a reference and a live profile, and the dataset.

Defaults, and why. A dataset alarm is raised when any one feature drifts (`dataset_share = 0`),
because the shifts that matter most touch one feature each (a model that starts refusing moves
`refusal` and little else). That makes the dataset's false-alarm rate the sum of the features':
ten features over ten windows are a hundred tests, so each test runs at level 0.001, not 0.01
(at 0.01, 20 same-distribution pairs of 500 gave KS p-values down to 0.008 for latency and
output length), and numbers and categories must also show an effect size:

- numbers: KS p < 0.001 AND normalised Wasserstein > 0.1. The KS p-value shrinks with sample
  size, so with a large reference and window it rejects differences of no practical size; the
  Wasserstein bound asks for a tenth of a reference standard deviation on top.
- categories: chi-square p < 0.001 AND Jensen-Shannon distance > 0.1, for the same reason. With
  a 2% reference refusal rate, JS passes 0.1 once live refusals reach about 8%.
- embeddings: MMD permutation p < 0.001, with 1,999 permutations (so the smallest p is 0.0005).
  The permutation test is exactly calibrated, so the level is the false-alarm rate itself; there
  is no unit-free effect size to pair it with (the cosine mean shift depends on the embedding
  model), so it is reported beside MMD but does not decide.
- PSI is reported as a second opinion on numbers (< 0.1 stable, 0.1-0.25 moderate, > 0.25
  significant) and does not decide.

Measured by the unit tests on synthetic traffic through `observe`: no dataset alarm in 20 pairs of
same-distribution samples of 500, nor in 10 ordinary windows of 500 against a reference of 2,000;
each of these detected in a live window of 500: prompts 3x longer, French instead of English, a
refusal rate from 2% to 15%, another topic, another finish-reason mix.

Below `min_numeric` / `min_category` / `min_embedding` observations on either side a feature is
`insufficient`: KS and chi-square on 20 values say little, and a sparse feature (confidence is
only present when logprobs were sampled) should read as "not measured", not as "fine".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import stats
from .features import FeatureKind
from .profile import Profile
from .report import Check, DriftReport, FeatureResult, Status
from .sketch import CategorySketch, EmbeddingSketch, NumericSketch, Sketch


@dataclass(frozen=True, slots=True)
class DriftConfig:
    ks_alpha: float = 0.001
    wasserstein_threshold: float = 0.1
    psi_bins: int = 10
    chi2_alpha: float = 0.001
    js_threshold: float = 0.1
    # Categories seen fewer times than this over both samples share one chi-square column.
    chi2_min_count: float = 10
    mmd_alpha: float = 0.001
    mmd_permutations: int = 1999
    min_numeric: int = 100
    min_category: int = 100
    min_embedding: int = 50
    # Dataset drift: at least one feature drifted and drifted / tested >= this. 0 = any one feature.
    dataset_share: float = 0.0
    # Seeds the MMD permutations, so a comparison of the same two profiles always gives the same report.
    seed: int = 0


def compare(reference: Profile, live: Profile, config: DriftConfig | None = None) -> DriftReport:
    """Test every feature of the reference profile against the live one."""
    config = config if config is not None else DriftConfig()
    rng = np.random.default_rng(config.seed)
    results = []
    for name, ref_sketch in reference.sketches.items():
        live_sketch = live.sketches.get(name)
        results.append(_compare_feature(name, ref_sketch, live_sketch, config, rng))
    tested = [r for r in results if r.status is not Status.INSUFFICIENT]
    drifted = sum(r.drifted for r in tested)
    share = drifted / len(tested) if tested else 0.0
    return DriftReport(
        features=tuple(results),
        n_reference=reference.n,
        n_live=live.n,
        drifted_share=share,
        dataset_share=config.dataset_share,
        dataset_drifted=drifted > 0 and share >= config.dataset_share,
    )


def _compare_feature(
    name: str, ref: Sketch, live: Sketch | None, config: DriftConfig, rng: np.random.Generator
) -> FeatureResult:
    n_live = live.n if live is not None else 0
    minimum = {
        FeatureKind.NUMERIC: config.min_numeric,
        FeatureKind.CATEGORY: config.min_category,
        FeatureKind.EMBEDDING: config.min_embedding,
    }[ref.kind]
    if ref.n < minimum or n_live < minimum:
        return FeatureResult(
            name, ref.kind, Status.INSUFFICIENT, ref.n, n_live, reason=f"fewer than {minimum} observations on a side"
        )
    if isinstance(ref, NumericSketch) and isinstance(live, NumericSketch):
        checks = _numeric(ref, live, config)
    elif isinstance(ref, CategorySketch) and isinstance(live, CategorySketch):
        checks = _category(ref, live, config)
    elif isinstance(ref, EmbeddingSketch) and isinstance(live, EmbeddingSketch):
        checks = _embedding(ref, live, config, rng)
    else:
        raise ValueError(f"feature {name!r} has different kinds in the two profiles")
    deciding = [c for c in checks if c.flagged is not None]
    drifted = all(c.flagged for c in deciding)
    reason = " and ".join(_describe(c) for c in deciding)
    return FeatureResult(name, ref.kind, Status.DRIFTED if drifted else Status.OK, ref.n, n_live, tuple(checks), reason)


def _numeric(ref: NumericSketch, live: NumericSketch, config: DriftConfig) -> list[Check]:
    d, p = stats.ks_test(ref, live)
    _, normalised = stats.wasserstein(ref, live)
    return [
        Check("ks", d, p, config.ks_alpha, p < config.ks_alpha),
        Check("wasserstein_normalised", normalised, None, config.wasserstein_threshold,
              normalised > config.wasserstein_threshold),
        Check("psi", stats.psi(ref, live, config.psi_bins)),
    ]  # fmt: skip


def _category(ref: CategorySketch, live: CategorySketch, config: DriftConfig) -> list[Check]:
    ref_counts, live_counts = ref.counts(), live.counts()
    chi2, p = stats.chi_square(ref_counts, live_counts, config.chi2_min_count)
    js = stats.jensen_shannon(ref_counts, live_counts)
    return [
        Check("chi2", chi2, p, config.chi2_alpha, p < config.chi2_alpha),
        Check("jensen_shannon", js, None, config.js_threshold, js > config.js_threshold),
    ]


def _embedding(
    ref: EmbeddingSketch, live: EmbeddingSketch, config: DriftConfig, rng: np.random.Generator
) -> list[Check]:
    if ref.dim != live.dim:
        raise ValueError(f"embeddings of dimension {ref.dim} and {live.dim} cannot be compared")
    mmd2, p = stats.mmd_test(ref.sample(), live.sample(), rng, config.mmd_permutations)
    return [
        Check("mmd", mmd2, p, config.mmd_alpha, bool(p < config.mmd_alpha) if not math.isnan(p) else False),
        Check("mean_shift_cosine", stats.mean_shift(ref, live)),
    ]


def _describe(check: Check) -> str:
    if check.p_value is not None:
        relation = "<" if check.flagged else ">="
        return f"{check.name} p={check.p_value:.3g} {relation} {check.threshold}"
    relation = ">" if check.flagged else "<="
    return f"{check.name}={check.statistic:.3g} {relation} {check.threshold}"
