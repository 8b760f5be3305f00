"""Sticky weighted assignment and shadow comparison."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from interlock.rollout.assign import Split, choose, key_point
from interlock.rollout.shadow import compare, summarize, token_overlap


def test_same_key_same_version_and_across_processes() -> None:
    rng = random.Random(1)
    w = {"v1": 70.0, "v2": 30.0}
    for k in range(200):
        key = f"key-{k}"
        first = choose(w, key, rng)
        assert all(choose(w, key, random.Random(i)) == first for i in range(5))
        assert Split(w).choose(key, rng) == first
    # The point is BLAKE2b, not the per-process salted hash(): a fixed value.
    assert key_point("key-0") == pytest.approx(
        int.from_bytes(__import__("hashlib").blake2b(b"key-0", digest_size=8).digest(), "big") / 2**64
    )


@pytest.mark.parametrize(
    "weights", [{"v1": 90.0, "v2": 10.0}, {"v1": 50.0, "v2": 50.0}, {"a": 20.0, "b": 30.0, "c": 50.0}]
)
def test_shares_follow_weights_over_100k_keys(weights: dict[str, float]) -> None:
    rng = random.Random(7)
    n = 100_000
    keyed = Counter(choose(weights, f"user-{rng.getrandbits(64):x}", rng) for _ in range(n))
    unkeyed = Counter(choose(weights, None, rng) for _ in range(n))
    split = Split(weights)
    memo = Counter(split.choose(f"user-{rng.getrandbits(64):x}", rng) for _ in range(n))
    total = sum(weights.values())
    for counts in (keyed, unkeyed, memo):
        for v, w in weights.items():
            assert abs(counts[v] / n - w / total) <= 0.02


def test_raising_the_candidate_only_moves_keys_to_it() -> None:
    rng = random.Random(3)
    keys = [f"k{i}" for i in range(5000)]
    before = {k: choose({"v1": 90.0, "v2": 10.0}, k, rng) for k in keys}
    after = {k: choose({"v1": 50.0, "v2": 50.0}, k, rng) for k in keys}
    assert all(after[k] == "v2" for k in keys if before[k] == "v2")
    assert sum(after[k] == "v2" for k in keys) > sum(before[k] == "v2" for k in keys)


def test_zero_weights() -> None:
    rng = random.Random(0)
    assert {choose({"v1": 100.0, "v2": 0.0}, f"k{i}", rng) for i in range(1000)} == {"v1"}
    assert choose({"v1": 0.0, "v2": 0.0}, "k", rng) == "v1"
    assert {Split({"v1": 0.0, "v2": 100.0}).choose(f"k{i}", rng) for i in range(1000)} == {"v2"}


def test_split_memo_is_bounded() -> None:
    split = Split({"v1": 50.0, "v2": 50.0}, memo_size=10)
    rng = random.Random(0)
    for i in range(25):
        split.choose(f"k{i}", rng)
    assert len(split._memo) <= 10


def test_token_overlap() -> None:
    assert token_overlap("The cat sat.", "the CAT sat") == 1.0
    assert token_overlap("a b c d", "a b x y") == pytest.approx(2 / 6)
    assert token_overlap("", "") == 1.0 and token_overlap("x", "") == 0.0


def test_compare_with_and_without_embeddings() -> None:
    c = compare("Paris is the capital of France.", 1.0, "The capital of France is Paris.", 1.5)
    assert not c.error and c.similarity == 1.0 and c.latency_ratio == 1.5 and c.length_ratio == pytest.approx(31 / 31)
    failed = compare("x", 1.0, None, None)
    assert failed.error and failed.similarity is None

    def embed(texts: Sequence[str]) -> NDArray[Any]:
        vectors = {"yes": [1.0, 0.0], "oui": [0.8, 0.6], "no": [-1.0, 0.0]}
        return np.array([vectors[t] for t in texts])

    assert compare("yes", 1.0, "oui", 1.0, embed).similarity == pytest.approx(0.8)
    assert compare("yes", 1.0, "no", 1.0, embed).similarity == 0.0  # clipped to [0, 1]


def test_summary_signals() -> None:
    cs = [compare("a b", 1.0, "a b", 2.0), compare("a b", 1.0, "a c", 1.0), compare("a b", 1.0, None, None)]
    s = summarize(cs)
    assert s.requests == 3 and s.errors == 1 and s.error_share == pytest.approx(1 / 3)
    assert s.similarity_mean == pytest.approx((1 + 1 / 3) / 2) and s.latency_ratio_mean == 1.5
    sig = s.signals()
    assert sig["shadow_requests"] == 3 and sig["shadow_similarity"] == s.similarity_mean
    assert summarize([]).signals()["shadow_similarity"] is None
