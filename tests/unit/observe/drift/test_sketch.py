from __future__ import annotations

import numpy as np
import pytest

from interlock.observe.drift import CategorySketch, EmbeddingSketch, NumericSketch
from interlock.observe.drift.sketch import OTHER_BUCKET


def numeric(values: np.ndarray) -> NumericSketch:
    sketch = NumericSketch()
    for v in values:
        sketch.update(float(v))
    return sketch


def test_numeric_round_trip_and_merge_match_one_sketch_over_all_data() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(5, 1, 20_000), rng.lognormal(6, 0.5, 5_000)
    left, right, whole = numeric(a), numeric(b), numeric(np.concatenate([a, b]))
    copy = NumericSketch.from_bytes(left.to_bytes())
    assert copy.n == left.n and copy.to_bytes() == left.to_bytes()
    copy.merge(right)
    assert copy.n == whole.n == 25_000
    ranks = np.linspace(0.01, 0.99, 50)
    truth = np.quantile(np.concatenate([a, b]), ranks)
    # Rank error of each sketch at k=400 is 0.68%; compare in rank space, where the bound holds.
    for sketch in (copy, whole):
        assert (
            np.max(np.abs(np.searchsorted(np.sort(np.concatenate([a, b])), sketch.quantiles(ranks)) / 25_000 - ranks))
            < 0.015
        )
    assert np.max(np.abs(copy.cdf(truth) - whole.cdf(truth))) < 0.015
    assert copy.rank_error == pytest.approx(0.0068, abs=0.0005)


def test_numeric_sketch_is_exact_while_small() -> None:
    values = np.arange(100, dtype=float)
    sketch = numeric(values)
    assert sketch.rank_error == 0.0
    items, weights = sketch.weighted_items()
    assert items.tolist() == values.tolist() and set(weights.tolist()) == {1.0}
    assert sketch.cdf(np.array([49.0]))[0] == pytest.approx(0.5)


def test_category_round_trip_and_merge_are_exact_counts() -> None:
    left, right = CategorySketch(), CategorySketch()
    for value, times in [("en", 70), ("fr", 20), ("de", 10)]:
        for _ in range(times):
            left.update(value)
    for value, times in [("en", 5), ("ja", 3)]:
        for _ in range(times):
            right.update(value)
    copy = CategorySketch.from_bytes(left.to_bytes())
    copy.merge(CategorySketch.from_bytes(right.to_bytes()))
    assert copy.counts() == {"en": 75.0, "fr": 20.0, "de": 10.0, "ja": 3.0}
    assert copy.n == 108


def test_category_overflow_keeps_the_total_under_other() -> None:
    sketch = CategorySketch()
    for i in range(500):
        sketch.update(f"v{i % 200}")
    for _ in range(300):
        sketch.update("common")
    counts = sketch.counts()
    assert sum(counts.values()) == pytest.approx(800)  # the weight of the values it let go is kept
    assert OTHER_BUCKET in counts
    assert 300 <= counts["common"] <= 300 + 0.055 * 800  # the sketch's error bound, epsilon * n


def test_embedding_round_trip() -> None:
    rng = np.random.default_rng(1)
    sketch = EmbeddingSketch(16, rng=rng)
    vectors = rng.normal(size=(40, 8))
    for v in vectors:
        sketch.update(v)
    copy = EmbeddingSketch.from_bytes(sketch.to_bytes(), rng=rng)
    assert (copy.n, copy.dim, copy.capacity) == (40, 8, 16)
    assert np.array_equal(copy.sample(), sketch.sample())
    mean = copy.mean()
    assert mean is not None and np.allclose(mean, vectors.mean(axis=0))
    empty = EmbeddingSketch.from_bytes(EmbeddingSketch(16).to_bytes())
    assert empty.n == 0 and empty.mean() is None and empty.sample().shape == (0, 0)


def test_embedding_reservoir_merge_is_weighted_by_counts() -> None:
    """Merge a stream of 1,500 vectors tagged 0 with one of 500 tagged 1, many times: the merged
    reservoir must hold the tags in proportion 3:1, like a reservoir over the joined stream, and
    the mean must be the exact mean of all 2,000."""
    rng = np.random.default_rng(2)
    shares = []
    for _ in range(30):
        big, small = EmbeddingSketch(64, rng=rng), EmbeddingSketch(64, rng=rng)
        for _ in range(1500):
            big.update(np.zeros(2))
        for _ in range(500):
            small.update(np.ones(2))
        big.merge(small)
        assert big.n == 2000 and big.sample().shape == (64, 2)
        mean = big.mean()
        assert mean is not None and np.allclose(mean, 0.25)
        shares.append(big.sample()[:, 0].mean())
    assert np.mean(shares) == pytest.approx(0.25, abs=0.03)
    # Hypergeometric spread: the sd of one share is about 0.053 (sqrt(0.25 * 0.75 / 64), a little
    # less for the finite population); a merge that ignored the counts would give 0.5 and no spread.
    assert 0.03 < np.std(shares) < 0.08


def test_reservoir_of_one_stream_is_uniform() -> None:
    rng = np.random.default_rng(3)
    hits = np.zeros(1000)
    for _ in range(40):
        sketch = EmbeddingSketch(50, rng=rng)
        for i in range(1000):
            sketch.update(np.array([float(i)]))
        hits[sketch.sample()[:, 0].astype(int)] += 1
    # Each of the 1,000 positions is kept with probability 5%: first and second halves alike.
    assert hits[:500].sum() == pytest.approx(hits[500:].sum(), rel=0.15)


def test_embedding_dimension_mismatch_raises() -> None:
    sketch = EmbeddingSketch(4)
    sketch.update(np.zeros(3))
    with pytest.raises(ValueError, match="dimension"):
        sketch.update(np.zeros(4))
    with pytest.raises(ValueError, match="merge"):
        sketch.merge(EmbeddingSketch(8))
