from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interlock.embeddings.minilm import DIM, MiniLmEmbedder, cosine, default_model_dir

REFERENCE = Path(__file__).parent.parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def embedder() -> MiniLmEmbedder:
    e = MiniLmEmbedder()
    e.load()
    return e


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(REFERENCE.read_text(encoding="utf-8"))["items"]
    return items


@pytest.fixture(scope="module")
def batched(embedder: MiniLmEmbedder, reference: list[dict[str, Any]]) -> np.ndarray:
    """The reference texts embedded in one call (the forward pass is the slow part of this module)."""
    return embedder.embed([item["text"] for item in reference])


def test_matches_sentence_transformers(batched: np.ndarray, reference: list[dict[str, Any]]) -> None:
    for row, item in zip(batched, reference, strict=True):
        expected = np.asarray(item["vector"], dtype=np.float32)
        assert cosine(row, expected) > 0.9999, item["text"][:40]
        assert np.abs(row - expected).max() < 1e-3, item["text"][:40]


def test_the_reference_exercises_truncation(embedder: MiniLmEmbedder, reference: list[dict[str, Any]]) -> None:
    # Between 128 (tokenizer.json's own truncation) and 256 (sentence-transformers'), and past 256.
    pieces = [item["word_pieces"] for item in reference]
    assert any(128 < n <= 256 for n in pieces) and any(n > 256 for n in pieces)
    assert embedder.max_seq_length == 256
    longest = max(reference, key=lambda item: item["word_pieces"])["text"]
    a, b = embedder.embed([longest, longest + " Words past the limit are not read, so they change nothing."])
    assert np.abs(a - b).max() < 1e-6  # equal but for BLAS rounding in a batch of two


def test_a_batch_equals_single_calls(
    embedder: MiniLmEmbedder, batched: np.ndarray, reference: list[dict[str, Any]]
) -> None:
    alone = np.stack([embedder.embed([item["text"]])[0] for item in reference])
    assert np.abs(batched - alone).max() < 1e-5  # padding and chunking do not change a row


def test_similar_sentences_score_higher_than_unrelated(embedder: MiniLmEmbedder) -> None:
    cat, kitten, revenue, password, login = embedder.embed(
        [
            "The cat is sleeping on the mat.",
            "A kitten naps on the rug.",
            "Quarterly revenue rose by twelve percent.",
            "How do I reset my password?",
            "I forgot my login credentials and cannot sign in.",
        ]
    )
    assert cosine(cat, kitten) > cosine(cat, revenue) + 0.3
    assert cosine(password, login) > cosine(password, revenue) + 0.3
    assert cosine(password, login) > cosine(password, kitten)


def test_shape_dtype_and_unit_rows(embedder: MiniLmEmbedder) -> None:
    out = embedder.embed(["one", "two words", ""])
    assert out.shape == (3, DIM) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIM)
    with pytest.raises(TypeError):
        embedder.embed("a string is not a list of texts")


def test_concurrent_callers_load_once_and_agree(reference: list[dict[str, Any]]) -> None:
    # Small groups: rows must still come back in the caller's order. Two passes at once: they share the weights.
    fresh = MiniLmEmbedder(batch_size=3, concurrency=2)
    reads = 0
    count_lock = threading.Lock()
    real_read = fresh._read

    def counting_read(model_dir: Path) -> Any:
        nonlocal reads
        with count_lock:
            reads += 1
        return real_read(model_dir)

    fresh._read = counting_read  # type: ignore[method-assign]  # count loads on this instance only
    texts = [item["text"] for item in reference if item["word_pieces"] <= 128]  # the short ones: this is about threads
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: fresh.embed(texts[i:] + texts[:i]), range(4)))
    assert reads == 1
    for i, got in enumerate(results):
        rotated = texts[i:] + texts[:i]
        for row, text in zip(got, rotated, strict=True):
            expected = next(item["vector"] for item in reference if item["text"] == text)
            assert cosine(row, np.asarray(expected)) > 0.9999


def test_cosine() -> None:
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine(np.array([3.0, 4.0]), np.array([6.0, 8.0])) == pytest.approx(1.0)
    assert cosine(np.zeros(3), np.ones(3)) == 0.0
    with pytest.raises(ValueError):
        cosine(np.ones(2), np.ones(3))


def test_refuses_a_model_it_would_compute_wrongly(tmp_path: Path) -> None:
    source = default_model_dir()
    for name in ("config.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(source / name, tmp_path / name)
    pooling = tmp_path / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps(config | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="only mean pooling"):
        MiniLmEmbedder(tmp_path).load()
