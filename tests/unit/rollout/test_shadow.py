"""Shadow comparison: word overlap, embeddings, and the summary of an interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from interlock.rollout.shadow import compare, summarize, token_overlap


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


def test_a_shadow_answer_on_its_own_refusal_finish_and_json() -> None:
    refusal = compare("Open Settings.", 1.0, "I'm sorry, but I can't help with that.", 1.0, shadow_finish="stop")
    assert refusal.refusal and not refusal.unfinished and refusal.json_invalid is None
    cut = compare("Open Settings.", 1.0, '{"answer": "Open Sett', 1.0, shadow_finish="length", wants_json=True)
    assert cut.unfinished and cut.json_invalid and not cut.refusal
    fine = compare('{"a": 1}', 1.0, '{"a": 2}', 1.0, wants_json=True)
    assert not (fine.refusal or fine.unfinished or fine.json_invalid)
    s = summarize([refusal, cut, fine, compare("x", 1.0, None, None, wants_json=True)])
    assert (s.refusals, s.unfinished, s.json_requests, s.json_invalid) == (1, 1, 2, 1)  # a failed shadow: none
    sig = s.signals()
    assert sig["shadow_refusal_rate"] == pytest.approx(1 / 3) and sig["shadow_unfinished_rate"] == pytest.approx(1 / 3)
    assert sig["shadow_json_invalid_rate"] == 0.5
    # No request asked for JSON: nothing was broken (0), not unknown; no answer at all: unknown.
    assert summarize([refusal]).signals()["shadow_json_invalid_rate"] == 0.0
    assert summarize([compare("x", 1.0, None, None)]).signals()["shadow_json_invalid_rate"] is None
