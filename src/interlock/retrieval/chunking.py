"""Split a document's text into chunks by tokens, with overlap: OpenAI's `chunking_strategy`.

A request names `{"type": "auto"}` (or nothing) or `{"type": "static", "static":
{"max_chunk_size_tokens": 100..4096, "chunk_overlap_tokens": 0..max/2}}`; `parse_strategy`
validates it once into a `ChunkingStrategy`, with a 400 naming the field that is wrong, and
`ChunkingStrategy.echo()` is what a store file reports back (OpenAI reports `auto` as the static
sizes it chose, and so do we).

Tokens are all-MiniLM-L6-v2's own word pieces, counted with its `tokenizer.json` (the
`tokenizers` library), because that model embeds the chunks and reads at most 256 of them,
[CLS] and [SEP] included: `EMBED_WINDOW`, 254 pieces of text. `auto` picks chunks that fit that
window: 192 pieces with 48 of overlap, measured by `bench/rag/run.py --chunking` (bench/RESULTS.md,
"Vector stores"). On its 300 questions, 192/48 and 254/64 retrieved as well as each other
(recall@5 1.000 and 0.997, MRR 0.855 and 0.857), both better than no overlap (254/0: 0.973,
0.790) or smaller chunks (128/32: 0.993, 0.812). Embedding the corpus cost about the same (192/48
took 0.97 of 254/64's time in a quiet run; a busier one said 0.56): more chunks, each cheaper. The
tie goes to the smaller size: a citation points closer to its answer, and the four chunks a chat
request retrieves by default take a quarter fewer prompt tokens.

A static size above the window is allowed, as OpenAI allows up to 4096, but the embedder reads only
the first 254 pieces of such a chunk: the rest is stored and returned as text, and does not count
toward what the chunk is found by.

Chunks end on token boundaries and keep whole words: a word (a run of text without whitespace,
which the tokenizer may cut into several pieces and punctuation) is never split between chunks,
unless it alone is longer than a chunk, when it is cut between its pieces. A chunk is the span of
the original text from its first word to its last, so newlines and spacing inside it are kept.
Overlap is the whole words at the end of one chunk, up to `overlap` pieces, that begin the next.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from tokenizers import Tokenizer

from interlock.embeddings.minilm import default_model_dir
from interlock.errors import BadRequest
from interlock.retrieval.types import Chunk

EMBED_WINDOW = 254  # word pieces MiniLmEmbedder reads of a text: max_seq_length 256 less [CLS] and [SEP]
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
# auto: measured by bench/rag/run.py --chunking (bench/RESULTS.md, "Vector stores").
AUTO_MAX_TOKENS = 192
AUTO_OVERLAP_TOKENS = 48


class ChunkingStrategy(msgspec.Struct, frozen=True, kw_only=True):
    max_tokens: int
    overlap_tokens: int
    auto: bool = False

    def echo(self) -> dict[str, Any]:
        """The strategy as a store file reports it (OpenAI's shape: auto shows its sizes as static)."""
        return {
            "type": "static",
            "static": {"max_chunk_size_tokens": self.max_tokens, "chunk_overlap_tokens": self.overlap_tokens},
        }

    @property
    def truncated(self) -> bool:
        """Whether a full chunk is longer than the embedder reads (its tail is not embedded)."""
        return self.max_tokens > EMBED_WINDOW


AUTO = ChunkingStrategy(max_tokens=AUTO_MAX_TOKENS, overlap_tokens=AUTO_OVERLAP_TOKENS, auto=True)


def static(max_tokens: int, overlap_tokens: int) -> ChunkingStrategy:
    """A static strategy from Python (the CLI, tests), checked as a request's would be."""
    return parse_strategy(
        {"type": "static", "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap_tokens}}
    )


def parse_strategy(value: object, param: str = "chunking_strategy") -> ChunkingStrategy:
    """A request's `chunking_strategy` (None for absent) -> the strategy, or a 400 naming the field."""
    if value is None:
        return AUTO
    if not isinstance(value, Mapping):
        raise BadRequest(f"{param} must be an object", param=param)
    kind = value.get("type")
    if kind == "auto":
        _no_other_keys(value, {"type"}, param)
        return AUTO
    if kind != "static":
        raise BadRequest(f"{param}.type must be 'auto' or 'static'", param=f"{param}.type")
    _no_other_keys(value, {"type", "static"}, param)
    inner = value.get("static")
    if not isinstance(inner, Mapping):
        raise BadRequest(f"{param}.static must be an object when type is 'static'", param=f"{param}.static")
    _no_other_keys(inner, {"max_chunk_size_tokens", "chunk_overlap_tokens"}, f"{param}.static")
    size_param = f"{param}.static.max_chunk_size_tokens"
    overlap_param = f"{param}.static.chunk_overlap_tokens"
    size = _integer(inner.get("max_chunk_size_tokens"), size_param)
    overlap = _integer(inner.get("chunk_overlap_tokens"), overlap_param)
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise BadRequest(f"{size_param} must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}", param=size_param)
    if overlap < 0 or overlap > size // 2:
        raise BadRequest(
            f"{overlap_param} must be at least 0 and at most half of max_chunk_size_tokens", param=overlap_param
        )
    return ChunkingStrategy(max_tokens=size, overlap_tokens=overlap)


def _integer(value: object, param: str) -> int:
    if value is None:
        raise BadRequest(f"{param} is required", param=param)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{param} must be an integer", param=param)
    return value


def _no_other_keys(value: Mapping[Any, Any], allowed: set[str], param: str) -> None:
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        # Keys are the caller's field names, not document content: naming one helps, and is capped.
        raise BadRequest(f"{param} has an unknown field {extra[0][:64]!r}", param=f"{param}.{extra[0][:64]}")


@dataclass(frozen=True, slots=True)
class _Word:
    start: int  # character offsets into the text
    end: int
    tokens: int


class Chunker:
    """Counts MiniLM word pieces and splits texts into chunks. Thread-safe after the first use
    (the tokenizer is loaded once under a lock, then only read); CPU-bound, call it off the loop."""

    def __init__(self, model_dir: Path | None = None) -> None:
        self._model_dir = model_dir
        self._lock = threading.Lock()
        self._tokenizer: Tokenizer | None = None

    def _load(self) -> Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    tokenizer = Tokenizer.from_file(str((self._model_dir or default_model_dir()) / "tokenizer.json"))
                    tokenizer.no_truncation()  # the export carries truncation to 128; we count every piece
                    tokenizer.no_padding()
                    self._tokenizer = tokenizer
        return self._tokenizer

    def count(self, text: str) -> int:
        """Word pieces of `text`, [CLS] and [SEP] not counted."""
        return len(self._load().encode(text, add_special_tokens=False).ids)

    def split(self, text: str, strategy: ChunkingStrategy = AUTO) -> list[Chunk]:
        """`text` in chunks of at most `strategy.max_tokens` pieces, consecutive ones sharing up to
        `strategy.overlap_tokens` pieces of whole words. Empty or blank text gives no chunk."""
        words = self._words(text, strategy.max_tokens)
        chunks: list[Chunk] = []
        first = 0
        while first < len(words):
            last, total = first, 0
            while last < len(words) and total + words[last].tokens <= strategy.max_tokens:
                total += words[last].tokens
                last += 1
            chunks.append(Chunk(index=len(chunks), text=text[words[first].start : words[last - 1].end], tokens=total))
            if last == len(words):
                break
            # The next chunk starts with the trailing whole words of this one, up to the overlap,
            # and always after this one's first word, so every chunk moves forward.
            start, shared = last, 0
            while start - 1 > first and shared + words[start - 1].tokens <= strategy.overlap_tokens:
                shared += words[start - 1].tokens
                start -= 1
            first = start
        return chunks

    def _words(self, text: str, max_tokens: int) -> list[_Word]:
        """The text's words with their piece counts; a word longer than `max_tokens` comes in parts."""
        offsets = self._load().encode(text, add_special_tokens=False).offsets
        words: list[_Word] = []
        begin = 0  # the first token of the current word
        for i in range(1, len(offsets) + 1):
            # A word ends where anything lies between two tokens: whitespace, or characters the
            # tokenizer drops (control characters).
            if i < len(offsets) and offsets[i][0] <= offsets[i - 1][1]:
                continue
            for part in range(begin, i, max_tokens):
                end = min(part + max_tokens, i)
                words.append(_Word(offsets[part][0], offsets[end - 1][1], end - part))
            begin = i
        return words
