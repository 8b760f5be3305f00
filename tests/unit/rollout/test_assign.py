"""Sticky weighted assignment."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from interlock.rollout.assign import Split, choose, key_point


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
