from __future__ import annotations

import json
import random

import pytest

from interlock.embeddings.minilm import default_model_dir
from interlock.errors import BadRequest
from interlock.retrieval.chunking import AUTO, EMBED_WINDOW, Chunker, ChunkingStrategy, parse_strategy, static

WORDS = [
    "the",
    "quarterly",
    "report",
    "lists",
    "revenue",
    "growth",
    "risks",
    "suppliers",
    "Zürich",
    "naïve",
    "co-operation",
    "e-mail",
    "3.14",
    "don't",
]


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker()


def document(n: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) + rng.choice([".", ",", "!"]))
    return "\n".join(lines)


def test_auto_fits_the_embedders_window() -> None:
    config = json.loads((default_model_dir() / "sentence_bert_config.json").read_text())
    assert config["max_seq_length"] - 2 == EMBED_WINDOW  # [CLS] and [SEP]
    assert AUTO.max_tokens <= EMBED_WINDOW and not AUTO.truncated
    assert 0 < AUTO.overlap_tokens <= AUTO.max_tokens // 2


def test_parse_strategy() -> None:
    assert parse_strategy(None) is AUTO
    assert parse_strategy({"type": "auto"}) is AUTO
    s = parse_strategy({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}})
    assert s == ChunkingStrategy(max_tokens=800, overlap_tokens=400)
    assert s.truncated
    assert s.echo() == {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    assert AUTO.echo()["static"] == {
        "max_chunk_size_tokens": AUTO.max_tokens,
        "chunk_overlap_tokens": AUTO.overlap_tokens,
    }


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("auto", "chunking_strategy"),
        ({"type": "fixed"}, "chunking_strategy.type"),
        ({"type": "static"}, "chunking_strategy.static"),
        ({"type": "auto", "static": {}}, "chunking_strategy.static"),
        ({"type": "static", "static": {"chunk_overlap_tokens": 0}}, "chunking_strategy.static.max_chunk_size_tokens"),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300.0, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": True, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        ({"type": "static", "static": {"max_chunk_size_tokens": 300}}, "chunking_strategy.static.chunk_overlap_tokens"),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 151}},
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": -1}},
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0, "x": 1}},
            "chunking_strategy.static.x",
        ),
    ],
)
def test_bad_strategies_name_the_field(value: object, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_strategy(value)
    assert caught.value.param == param
    assert caught.value.status == 400


def test_limits_are_inclusive() -> None:
    assert static(100, 50).max_tokens == 100
    assert static(4096, 2048).overlap_tokens == 2048


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 50), (254, 64), (512, 100)])
def test_chunks_fit_cover_and_overlap(chunker: Chunker, size: int, overlap: int) -> None:
    text = document(300)
    chunks = chunker.split(text, static(size, overlap))
    assert len(chunks) > 3
    assert [c.index for c in chunks] == list(range(len(chunks)))
    words = text.split()
    position = 0  # where in `words` the previous chunk ended
    for i, chunk in enumerate(chunks):
        assert 0 < chunk.tokens <= size
        assert chunk.tokens == chunker.count(chunk.text)  # counted as the tokenizer counts the chunk alone
        assert chunk.text == chunk.text.strip() and chunk.text in text
        mine = chunk.text.split()
        # Whole words: the chunk's words are a run of the document's words.
        start = next(s for s in range(max(0, position - len(mine)), len(words)) if words[s : s + len(mine)] == mine)
        if i == 0:
            assert start == 0
        else:
            shared = position - start
            assert shared >= 0  # no gap between chunks
            assert chunker.count(" ".join(words[start:position])) <= overlap
            if overlap >= 50:
                assert shared > 0
        position = start + len(mine)
        if i < len(chunks) - 1:
            # Greedy: the next word would not have fitted.
            assert chunk.tokens + chunker.count(words[position]) > size
    assert position == len(words)


def test_overlap_zero_shares_nothing(chunker: Chunker) -> None:
    chunks = chunker.split(document(200), static(100, 0))
    assert " ".join(c.text for c in chunks).split() == document(200).split()


def test_a_word_longer_than_a_chunk_is_cut_between_pieces(chunker: Chunker) -> None:
    long_word = "-".join(f"w{i}" for i in range(200))  # no whitespace: one word of several hundred pieces
    text = f"before {long_word} after"
    chunks = chunker.split(text, static(100, 0))
    assert len(chunks) > 3
    assert all(0 < c.tokens <= 100 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    assert chunks[0].text.startswith("before") and chunks[-1].text.endswith("after")


def test_newlines_inside_a_chunk_are_kept(chunker: Chunker) -> None:
    text = "# Title\n\nFirst paragraph here.\n\n- item one\n- item two"
    [chunk] = chunker.split(text)
    assert chunk.text == text


def test_blank_text_has_no_chunks(chunker: Chunker) -> None:
    assert chunker.split("") == []
    assert chunker.split(" \n\t ") == []
