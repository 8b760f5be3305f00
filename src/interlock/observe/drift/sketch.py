"""Mergeable sketches, one per feature kind, so each worker keeps its own window and windows merge.

- Numbers: Apache DataSketches KLL (`kll_floats_sketch`) with `k = 400`. Its normalised rank
  error is 0.68% (99% confidence), it keeps about 300 items for 500 values and about 1,150 for
  100,000, and serialises to 1.2 KB and 4.6 KB respectively. k = 200 (the library default) would
  double the error to 1.3%, a tenth of the KS distance that counts as drift at 500 samples.
- Categories: DataSketches frequent items (`frequent_strings_sketch`) with a map of 2^6: counts
  are exact while there are at most 48 distinct values, which holds for every category feature
  here (about 20 languages, a handful of finish reasons, yes/no). Past that, `counts()` puts the
  unattributed weight under `OTHER_BUCKET`.
- Embeddings: the running sum (for the mean) and a uniform reservoir sample of at most 256
  vectors in float32 for MMD. Merging draws how many of the merged reservoir come from each side
  from the hypergeometric distribution of their counts, then subsamples each side uniformly: the
  result is distributed as a reservoir sampled from the concatenated stream. 256 x 384 float32
  is 384 KB, the largest part of a serialised profile.

Sketches mutate in place (`update`, `merge`); randomness (only the reservoir's) comes from an
injected `numpy.random.Generator`.
"""

from __future__ import annotations

import struct
from typing import Any

import datasketches
import numpy as np
from numpy.typing import NDArray

from .features import FeatureKind

DEFAULT_K = 400
DEFAULT_LG_MAP = 6
DEFAULT_RESERVOIR = 256
OTHER_BUCKET = "(other)"


class NumericSketch:
    kind = FeatureKind.NUMERIC

    def __init__(self, k: int = DEFAULT_K, *, sketch: Any = None) -> None:
        self._sketch = sketch if sketch is not None else datasketches.kll_floats_sketch(k)

    @property
    def n(self) -> int:
        return int(self._sketch.n)

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    def update(self, value: float) -> None:
        self._sketch.update(float(value))

    def merge(self, other: NumericSketch) -> None:
        self._sketch.merge(other._sketch)

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> NumericSketch:
        return cls(sketch=datasketches.kll_floats_sketch.deserialize(data))

    @property
    def rank_error(self) -> float:
        """Bound on the error of any CDF value (99% confidence); 0 while the sketch is exact."""
        if not self._sketch.is_estimation_mode():
            return 0.0
        return float(self._sketch.normalized_rank_error(False))

    def weighted_items(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The retained items and their weights, sorted by item: a weighted sample that stands for
        every value seen (each weight is the number of values the item represents)."""
        if self.n == 0:
            return np.empty(0), np.empty(0)
        pairs = np.array([(item, weight) for item, weight in self._sketch], dtype=np.float64)
        order = np.argsort(pairs[:, 0], kind="stable")
        return pairs[order, 0], pairs[order, 1]

    def cdf(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(X <= x) at each of the sorted, unique `points`."""
        if self.n == 0 or points.size == 0:
            return np.zeros(points.size)
        return np.asarray(self._sketch.get_cdf(points.tolist(), True)[:-1], dtype=np.float64)

    def quantiles(self, ranks: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.n == 0:
            return np.full(ranks.size, np.nan)
        return np.asarray(self._sketch.get_quantiles(ranks.tolist()), dtype=np.float64)


class CategorySketch:
    kind = FeatureKind.CATEGORY

    def __init__(self, lg_max_map: int = DEFAULT_LG_MAP, *, sketch: Any = None) -> None:
        self._sketch = sketch if sketch is not None else datasketches.frequent_strings_sketch(lg_max_map)

    @property
    def n(self) -> int:
        return int(self._sketch.total_weight)

    def update(self, value: str) -> None:
        self._sketch.update(value)

    def merge(self, other: CategorySketch) -> None:
        self._sketch.merge(other._sketch)

    def to_bytes(self) -> bytes:
        return bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> CategorySketch:
        return cls(sketch=datasketches.frequent_strings_sketch.deserialize(data))

    def counts(self) -> dict[str, float]:
        """Count per category, largest first; exact while the sketch holds every distinct value."""
        if self.n == 0:
            return {}
        items = self._sketch.get_frequent_items(datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        counts = {str(item): float(estimate) for item, estimate, _lower, _upper in items}
        rest = self.n - sum(counts.values())
        if rest > 0:
            counts[OTHER_BUCKET] = counts.get(OTHER_BUCKET, 0.0) + rest
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


_EMBEDDING_HEADER = struct.Struct("<IQII")  # capacity, n, dim, rows kept


class EmbeddingSketch:
    kind = FeatureKind.EMBEDDING

    def __init__(self, capacity: int = DEFAULT_RESERVOIR, *, rng: np.random.Generator | None = None) -> None:
        if capacity < 1:
            raise ValueError("an embedding reservoir needs room for at least one vector")
        self.capacity = capacity
        self._rng = rng if rng is not None else np.random.default_rng()
        self._n = 0
        self._sum: NDArray[np.float64] | None = None
        self._sample: NDArray[np.float32] | None = None  # (capacity, dim), the first `_rows` valid
        self._rows = 0

    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return None if self._sum is None else int(self._sum.shape[0])

    def update(self, vector: NDArray[np.floating[Any]]) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        sample, total = self._buffers(vector.shape[0])
        total += vector
        self._n += 1
        if self._rows < self.capacity:
            sample[self._rows] = vector
            self._rows += 1
        else:
            # Algorithm R: the n-th vector replaces a random slot with probability capacity / n.
            slot = int(self._rng.integers(self._n))
            if slot < self.capacity:
                sample[slot] = vector

    def merge(self, other: EmbeddingSketch) -> None:
        if other.capacity != self.capacity:
            raise ValueError(f"cannot merge reservoirs of {other.capacity} and {self.capacity} vectors")
        if other._n == 0 or other._sum is None or other._sample is None:
            return
        sample, total = self._buffers(other._sum.shape[0])
        mine = sample[: self._rows]
        theirs = other._sample[: other._rows]
        keep = min(self.capacity, self._n + other._n)
        # A uniform `keep`-subset of the merged stream takes a hypergeometric share from each side,
        # and each side's reservoir is itself a uniform sample of that side.
        from_mine = int(self._rng.hypergeometric(self._n, other._n, keep))
        from_theirs = keep - from_mine
        merged = np.concatenate(
            [
                mine[self._rng.choice(mine.shape[0], from_mine, replace=False)],
                theirs[self._rng.choice(theirs.shape[0], from_theirs, replace=False)],
            ]
        )
        sample[: merged.shape[0]] = merged
        self._rows = merged.shape[0]
        total += other._sum
        self._n += other._n

    def mean(self) -> NDArray[np.float64] | None:
        return None if self._sum is None or self._n == 0 else self._sum / self._n

    def sample(self) -> NDArray[np.float32]:
        """The reservoir: a uniform sample of at most `capacity` of the vectors seen."""
        if self._sample is None:
            return np.empty((0, 0), dtype=np.float32)
        return self._sample[: self._rows]

    def to_bytes(self) -> bytes:
        dim = self.dim or 0
        header = _EMBEDDING_HEADER.pack(self.capacity, self._n, dim, self._rows)
        if self._sum is None:
            return header
        return header + self._sum.astype("<f8").tobytes() + self.sample().astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: np.random.Generator | None = None) -> EmbeddingSketch:
        capacity, n, dim, rows = _EMBEDDING_HEADER.unpack_from(data)
        sketch = cls(capacity, rng=rng)
        if dim == 0:
            return sketch
        offset = _EMBEDDING_HEADER.size
        expected = offset + 8 * dim + 4 * rows * dim
        if len(data) != expected or rows > capacity:
            raise ValueError(f"embedding sketch: {len(data)} bytes, expected {expected}")
        sample, total = sketch._buffers(dim)
        total[:] = np.frombuffer(data, dtype="<f8", count=dim, offset=offset)
        sample[:rows] = np.frombuffer(data, dtype="<f4", count=rows * dim, offset=offset + 8 * dim).reshape(rows, dim)
        sketch._n = n
        sketch._rows = rows
        return sketch

    def _buffers(self, dim: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        if self._sum is None or self._sample is None:
            self._sum = np.zeros(dim, dtype=np.float64)
            self._sample = np.empty((self.capacity, dim), dtype=np.float32)
        elif self._sum.shape[0] != dim:
            raise ValueError(f"embedding of dimension {dim} in a sketch of dimension {self._sum.shape[0]}")
        return self._sample, self._sum


Sketch = NumericSketch | CategorySketch | EmbeddingSketch
