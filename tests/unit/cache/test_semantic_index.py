from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from interlock.cache.semantic_index import VectorIndex

DIM = 32
FOREVER = float("inf")


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> NDArray[np.float32]:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_best(vectors: dict[str, NDArray[np.float32]], q: NDArray[np.float32]) -> str:
    return max(vectors, key=lambda i: float(vectors[i] @ q))


def test_search_returns_ids_and_cosines_best_first() -> None:
    index = VectorIndex(3, capacity=10)
    index.add("x", np.array([1, 0, 0], np.float32), FOREVER)
    index.add("y", np.array([0, 1, 0], np.float32), FOREVER)
    index.add("xy", np.array([1, 1, 0], np.float32) / np.sqrt(2), FOREVER)
    got = index.search(np.array([1, 0.2, 0], np.float32), k=2, now=0)
    assert [i for i, _ in got] == ["x", "xy"]
    q = np.array([1, 0.2, 0]) / np.linalg.norm([1, 0.2, 0])
    assert got[0][1] == pytest.approx(q[0], abs=1e-6)
    assert got[1][1] == pytest.approx((q[0] + q[1]) / np.sqrt(2), abs=1e-6)
    assert len(index.search(np.array([0, 0, 1], np.float32), k=5, now=0)) == 3
    assert index.search(np.array([0, 0, 1], np.float32), k=0, now=0) == []


def test_vectors_are_normalised_and_checked() -> None:
    index = VectorIndex(2, capacity=4)
    index.add("a", np.array([3, 4], np.float32), FOREVER)
    ((_, score),) = index.search(np.array([6, 8], np.float32), k=1, now=0)
    assert score == pytest.approx(1.0)
    with pytest.raises(ValueError):
        index.add("b", np.zeros(2, np.float32), FOREVER)
    with pytest.raises(ValueError):
        index.search(np.ones(3, np.float32), k=1, now=0)


def test_expired_entries_are_skipped() -> None:
    index = VectorIndex(2, capacity=4)
    index.add("old", np.array([1, 0], np.float32), expires=10)
    index.add("new", np.array([0.9, 0.1], np.float32), expires=20)
    assert [i for i, _ in index.search(np.array([1, 0], np.float32), 2, now=5)] == ["old", "new"]
    assert [i for i, _ in index.search(np.array([1, 0], np.float32), 2, now=10)] == ["new"]
    assert index.search(np.array([1, 0], np.float32), 2, now=20) == []


def test_capacity_evicts_the_oldest_and_re_adding_makes_an_entry_newest() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(DIM, capacity=3)
    v = unit(rng, 5)
    for i in range(3):
        index.add(f"e{i}", v[i], FOREVER)
    index.add("e0", v[0], FOREVER)  # e0 is now the newest; e1 the oldest
    index.add("e3", v[3], FOREVER)
    assert len(index) == 3
    assert {i for i, _ in index.search(v[1], 3, now=0)} == {"e0", "e2", "e3"}
    index.add("e4", v[4], FOREVER)
    assert {i for i, _ in index.search(v[1], 3, now=0)} == {"e0", "e3", "e4"}


def test_removal_frees_the_row_for_the_next_entry() -> None:
    rng = np.random.default_rng(2)
    index = VectorIndex(DIM, capacity=100)
    v = unit(rng, 3)
    index.add("a", v[0], FOREVER)
    index.add("b", v[1], FOREVER)
    index.remove("a")
    index.remove("a")  # twice is fine
    index.remove("never-added")
    assert len(index) == 1
    assert [i for i, _ in index.search(v[0], 5, now=0)] == ["b"]
    index.add("c", v[2], FOREVER)
    assert index.search(v[2], 1, now=0)[0] == ("c", pytest.approx(1.0))
    assert index._rows == 2  # "c" took the row "a" left


def test_past_the_exact_limit_the_graph_answers_like_exact_search() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(DIM, capacity=600, exact_limit=64)
    vectors = dict(zip((f"e{i}" for i in range(400)), unit(rng, 400), strict=True))
    for entry_id, v in vectors.items():
        index.add(entry_id, v, FOREVER)
    assert index._graph is not None and not index._backlog
    queries = unit(rng, 50)
    hits = sum(index.search(q, 1, now=0)[0][0] == exact_best(vectors, q) for q in queries)
    assert hits >= 48
    # The scores are exact cosines whichever search found them.
    for q in queries[:5]:
        for entry_id, score in index.search(q, 3, now=0):
            assert score == pytest.approx(float(vectors[entry_id] @ q), abs=1e-5)


def test_the_graph_is_fed_gradually_and_used_only_once_complete() -> None:
    rng = np.random.default_rng(4)
    index = VectorIndex(DIM, capacity=1000, exact_limit=100)
    v = unit(rng, 100)
    for i in range(49):
        index.add(f"e{i}", v[i], FOREVER)
    assert index._graph is None
    index.add("e49", v[49], FOREVER)  # half the limit: the graph starts with the newest entry
    assert index._graph is not None and index._graph.get_current_count() == 1 + 2 and len(index._backlog) == 47
    for i in range(50, 74):
        index.add(f"e{i}", v[i], FOREVER)
    assert not index._backlog and index._graph.get_current_count() == 74
    # Every entry is found, before and after the switch to the graph.
    for i in range(74):
        assert index.search(v[i], 1, now=0)[0][0] == f"e{i}"
    for i in range(74, 100):
        index.add(f"e{i}", v[i], FOREVER)
    for i in range(100):
        assert index.search(v[i], 1, now=0)[0][0] == f"e{i}"


def test_graph_removal_eviction_and_expiry() -> None:
    rng = np.random.default_rng(5)
    index = VectorIndex(DIM, capacity=200, exact_limit=40)
    v = unit(rng, 400)
    for i in range(400):  # twice the capacity: every add past 200 evicts the oldest
        index.add(f"e{i}", v[i], expires=1000 if i % 2 else 50)
    assert len(index) == 200 and index._graph is not None and index._graph.get_current_count() == 200
    assert index._rows == 200
    assert index.search(v[10], 1, now=0)[0][0] != "e10"  # evicted
    assert index.search(v[300], 1, now=0)[0][0] == "e300"
    index.remove("e301")
    assert index.search(v[301], 1, now=0)[0][0] != "e301"
    # At 50 the even entries expire: none is answered, and the graph drops those it met.
    assert index.search(v[300], 1, now=50)[0][0] != "e300"
    got = index.search(v[300], 5, now=50)
    assert len(got) == 5 and all(int(i[1:]) % 2 for i, _ in got)
    assert len(index) < 199


def test_a_small_capacity_never_builds_a_graph() -> None:
    rng = np.random.default_rng(6)
    index = VectorIndex(DIM, capacity=50, exact_limit=64)
    for i, v in enumerate(unit(rng, 200)):
        index.add(f"e{i}", v, FOREVER)
    assert index._graph is None and len(index) == 50 and len(index._vectors) == 50
