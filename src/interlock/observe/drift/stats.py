"""Two-sample tests over sketches. scipy does the distributions and distances; what is written here
is only what scipy lacks: reading a test's inputs off a sketch, and the MMD permutation test.

Numbers (KLL sketches). A KLL sketch is an exact weighted sample of its stream: each retained item
stands for `weight` values. So:

- Kolmogorov-Smirnov: the statistic D is the largest gap between the two sketches' CDFs, taken at
  every retained item of either (the CDFs are step functions that move only there). Each sketch's
  CDF may be off by its rank error (0 while exact, 0.68% at k = 400), so the p-value is computed
  for D minus both errors, which can only make it larger (conservative). The p-value is scipy's
  asymptotic two-sample one, `kstwo.sf(D, round(n*m/(n+m)))` as in `ks_2samp(method="asymp")`,
  with the true counts n and m: the effective sample size is the streams', not the sketches'.
  With large samples the sketch error, not n, bounds the smallest KS distance that can reject:
  about 0.014 at k = 400.
- Wasserstein-1: `scipy.stats.wasserstein_distance` on the two weighted samples, divided by the
  reference's standard deviation (by the pooled one when the reference is constant), so 0.1
  means "a tenth of a reference standard deviation" whatever the feature's unit. This is the
  normalisation Evidently uses; we prefer the std to the IQR because several features
  (message_count, pii_rate) have an IQR of 0 in ordinary traffic.
- PSI over the reference's decile bins (fewer when values repeat), with half a count added to
  every bin so an empty bin does not make it infinite. Usual reading: < 0.1 stable, 0.1-0.25
  moderate, > 0.25 significant.

Categories: chi-square test of homogeneity on the 2 x K table (`chi2_contingency`), after pooling
categories seen fewer than `min_count` times over both samples into one column, because the
chi-square approximation fails on tiny expected counts (a category new in live traffic still
counts, inside the pool). Jensen-Shannon distance, base 2 (0 same, 1 disjoint), on the unpooled
shares.

Embeddings: the cosine distance between the two mean vectors (from the exact running sums), and
the squared maximum mean discrepancy between the two reservoirs with a Gaussian kernel whose
width is the median pairwise distance of the pooled sample (Gretton's heuristic), with a
permutation p-value: (1 + #{permuted MMD >= observed}) / (1 + permutations).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps
from scipy.spatial import distance

from .sketch import EmbeddingSketch, NumericSketch

POOLED = "(rare)"


def ks_test(reference: NumericSketch, live: NumericSketch) -> tuple[float, float]:
    """(D, p-value); see the module docstring for the sketch-error correction."""
    ref_items, _ = reference.weighted_items()
    live_items, _ = live.weighted_items()
    points = np.unique(np.concatenate([ref_items, live_items]))
    d = float(np.max(np.abs(reference.cdf(points) - live.cdf(points))))
    deflated = max(0.0, d - reference.rank_error - live.rank_error)
    n, m = reference.n, live.n
    effective = max(1, round(n * m / (n + m)))
    return d, float(sps.kstwo.sf(deflated, effective))


def wasserstein(reference: NumericSketch, live: NumericSketch) -> tuple[float, float]:
    """(Wasserstein-1 distance in the feature's unit, that distance over the reference scale)."""
    ref_items, ref_weights = reference.weighted_items()
    live_items, live_weights = live.weighted_items()
    w = float(sps.wasserstein_distance(ref_items, live_items, ref_weights, live_weights))
    scale = _weighted_std(ref_items, ref_weights)
    if scale == 0.0:
        scale = _weighted_std(np.concatenate([ref_items, live_items]), np.concatenate([ref_weights, live_weights]))
    return w, (w / scale if scale > 0.0 else 0.0)


def psi(reference: NumericSketch, live: NumericSketch, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins."""
    ranks = np.arange(1, bins) / bins
    edges = np.unique(reference.quantiles(ranks))
    ref_share = np.diff(np.concatenate([[0.0], reference.cdf(edges), [1.0]]))
    live_share = np.diff(np.concatenate([[0.0], live.cdf(edges), [1.0]]))
    p = _smoothed(ref_share, reference.n)
    q = _smoothed(live_share, live.n)
    return float(np.sum((q - p) * np.log(q / p)))


def chi_square(reference: dict[str, float], live: dict[str, float], min_count: float = 10) -> tuple[float, float]:
    """(chi-square statistic, p-value) of the hypothesis that both samples share one category mix."""
    table = _pooled_table(reference, live, min_count)
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category in both: nothing can differ
    result = sps.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon(reference: dict[str, float], live: dict[str, float]) -> float:
    names = sorted(set(reference) | set(live))
    p = np.array([reference.get(c, 0.0) for c in names])
    q = np.array([live.get(c, 0.0) for c in names])
    return float(distance.jensenshannon(p / p.sum(), q / q.sum(), base=2))


def mean_shift(reference: EmbeddingSketch, live: EmbeddingSketch) -> float:
    """Cosine distance between the mean vectors: 0 same direction, 1 orthogonal."""
    a, b = reference.mean(), live.mean()
    if a is None or b is None or not np.any(a) or not np.any(b):
        return math.nan
    return float(distance.cosine(a, b))


def mmd_test(
    x: NDArray[np.floating], y: NDArray[np.floating], rng: np.random.Generator, permutations: int = 1999
) -> tuple[float, float]:
    """(squared MMD, permutation p-value) between samples x and y (rows are vectors)."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        return math.nan, math.nan
    z = np.concatenate([x, y]).astype(np.float64)
    squared = distance.squareform(distance.pdist(z, "sqeuclidean"))
    median = float(np.median(squared[np.triu_indices(m + n, 1)]))
    kernel = np.exp(-squared / (2.0 * median)) if median > 0 else np.ones_like(squared)
    # MMD^2 (biased) = a' K a with a = 1/m on the x rows and -1/n on the y rows; a permutation
    # shuffles a, so all permutations are one matrix product.
    labels = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    observed = float(labels @ kernel @ labels)
    exceed = 0
    for start in range(0, permutations, 256):
        block = rng.permuted(np.tile(labels, (min(256, permutations - start), 1)), axis=1)
        null = np.einsum("pi,pi->p", block @ kernel, block)
        exceed += int(np.count_nonzero(null >= observed - 1e-12))
    return observed, (1 + exceed) / (1 + permutations)


def _pooled_table(reference: dict[str, float], live: dict[str, float], min_count: float) -> NDArray[np.float64]:
    columns: dict[str, list[float]] = {}
    for name in set(reference) | set(live):
        r, lv = reference.get(name, 0.0), live.get(name, 0.0)
        key = name if r + lv >= min_count else POOLED
        pair = columns.setdefault(key, [0.0, 0.0])
        pair[0] += r
        pair[1] += lv
    return np.array([[c[0] for c in columns.values()], [c[1] for c in columns.values()]])


def _weighted_std(values: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    if values.size == 0:
        return 0.0
    mean = np.average(values, weights=weights)
    return float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))


def _smoothed(shares: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    return (np.clip(shares, 0.0, None) * n + 0.5) / (n + 0.5 * shares.size)
