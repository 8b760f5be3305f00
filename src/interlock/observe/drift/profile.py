"""A profile: one sketch per feature, the unit that is built, merged, stored and compared.

A reference profile comes from a JSON Lines file of past traffic (`Profile.from_jsonl`) or from a
window of live traffic; a live profile is what each worker fills and Redis merges. Both are the
same type, so "baseline from a live window" is just keeping a live profile.

The byte form is one blob: a version byte, the observation count, then per feature its name, kind
and sketch bytes (each sketch's own compact serialisation). A reader refuses another version
rather than guess, so a stored profile from an older layout fails loudly.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from .features import FEATURES, FeatureKind, LanguageFn, Observation, observe, topic_text
from .language import LanguageIdentifier
from .sketch import DEFAULT_K, DEFAULT_RESERVOIR, CategorySketch, EmbeddingSketch, NumericSketch, Sketch

VERSION = 1
EmbedFn = Callable[[list[str]], NDArray[np.floating[Any]]]

_KIND_CODES = {FeatureKind.NUMERIC: 0, FeatureKind.CATEGORY: 1, FeatureKind.EMBEDDING: 2}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_HEAD = struct.Struct("<BQH")  # version, observations, features
_ENTRY = struct.Struct("<HBI")  # name length, kind, sketch length


class Profile:
    """Sketches of every feature in `features` over `n` observations. Mutable: `observe` and
    `merge` update it in place. The embedding reservoirs draw from `rng` (fresh entropy if None)."""

    def __init__(
        self,
        features: Mapping[str, FeatureKind] = FEATURES,
        *,
        k: int = DEFAULT_K,
        reservoir: int = DEFAULT_RESERVOIR,
        rng: np.random.Generator | None = None,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.n = 0
        self.sketches: dict[str, Sketch] = {
            name: _new_sketch(kind, k, reservoir, rng) for name, kind in features.items()
        }

    @property
    def features(self) -> dict[str, FeatureKind]:
        return {name: sketch.kind for name, sketch in self.sketches.items()}

    def observe(self, observation: Observation) -> None:
        """Add one exchange. Features outside this profile's spec are ignored; a value of the wrong
        type for its feature's kind is a programming error and raises TypeError."""
        self.n += 1
        for name, value in observation.items():
            sketch = self.sketches.get(name)
            if sketch is None:
                continue
            # One branch per kind (not merged with `or`) so that mypy narrows value and sketch together.
            if isinstance(sketch, NumericSketch) and isinstance(value, int | float):  # noqa: SIM114
                sketch.update(value)
            elif isinstance(sketch, CategorySketch) and isinstance(value, str):  # noqa: SIM114
                sketch.update(value)
            elif isinstance(sketch, EmbeddingSketch) and isinstance(value, np.ndarray):
                sketch.update(value)
            else:
                raise TypeError(f"feature {name!r} is {sketch.kind}, got {type(value).__name__}")

    def merge(self, other: Profile) -> None:
        if other.features != self.features:
            raise ValueError("cannot merge profiles over different features")
        for name, sketch in self.sketches.items():
            _merge_into(sketch, other.sketches[name])
        self.n += other.n

    def to_bytes(self) -> bytes:
        parts = [_HEAD.pack(VERSION, self.n, len(self.sketches))]
        for name, sketch in self.sketches.items():
            encoded_name = name.encode("utf-8")
            payload = sketch.to_bytes()
            parts += [_ENTRY.pack(len(encoded_name), _KIND_CODES[sketch.kind], len(payload)), encoded_name, payload]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: np.random.Generator | None = None) -> Profile:
        version, n, count = _HEAD.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"profile format version {version}; this build reads version {VERSION}")
        rng = rng if rng is not None else np.random.default_rng()
        profile = cls({}, rng=rng)
        profile.n = n
        offset = _HEAD.size
        for _ in range(count):
            name_length, kind_code, length = _ENTRY.unpack_from(data, offset)
            offset += _ENTRY.size
            name = data[offset : offset + name_length].decode("utf-8")
            offset += name_length
            payload = data[offset : offset + length]
            offset += length
            kind = _KINDS[kind_code]
            profile.sketches[name] = _read_sketch(kind, payload, rng)
        if offset != len(data):
            raise ValueError(f"profile blob has {len(data) - offset} trailing bytes")
        return profile

    @classmethod
    def from_jsonl(
        cls,
        source: str | Path | Iterable[str | bytes],
        embed: EmbedFn | None = None,
        *,
        language: LanguageFn | None = None,
        features: Mapping[str, FeatureKind] = FEATURES,
        rng: np.random.Generator | None = None,
        batch: int = 64,
    ) -> Profile:
        """A profile of past traffic. `source` is a path, or an iterable of lines.

        One JSON object a line (blank lines are skipped):

            {"request": {...}, "response": {...}, "latency_ms": 123.4, "pii_count": 2}

        `request` is an OpenAI chat completion (`messages`) or completion (`prompt`) request body
        and is required; `response` is the matching non-streamed response body; `latency_ms` and
        `pii_count` are numbers. All but `request` are optional, and a missing one leaves its
        features out for that line. A line that is not such an object raises ValueError naming
        its line number.

        `embed` maps a batch of texts to a (batch, dim) array (the topic embedder); without it
        there is no `topic` feature. `language` defaults to a new `LanguageIdentifier`, so a
        reference always has the language feature that live traffic will have.
        """
        if language is None:
            language = LanguageIdentifier()
        profile = cls(features, rng=rng)
        records = _records(source)
        while chunk := list(islice(records, batch)):
            vectors: Sequence[NDArray[np.floating[Any]] | None] = [None] * len(chunk)
            if embed is not None:
                vectors = _embed_chunk(embed, [topic_text(r["request"]) for _, r in chunk])
            for (_, record), vector in zip(chunk, vectors, strict=True):
                profile.observe(
                    observe(
                        record["request"],
                        record.get("response"),
                        latency_ms=record.get("latency_ms"),
                        pii_count=record.get("pii_count"),
                        embedding=vector,
                        language=language,
                    )
                )
        return profile


def _embed_chunk(embed: EmbedFn, texts: list[str]) -> list[NDArray[np.floating[Any]] | None]:
    """Embed the non-empty texts of a chunk in one call; an empty prompt has no topic."""
    wanted = [i for i, t in enumerate(texts) if t]
    out: list[NDArray[np.floating[Any]] | None] = [None] * len(texts)
    if wanted:
        matrix = np.asarray(embed([texts[i] for i in wanted]))
        if matrix.ndim != 2 or matrix.shape[0] != len(wanted):
            raise ValueError(f"embed returned shape {matrix.shape} for {len(wanted)} texts")
        for row, i in enumerate(wanted):
            out[i] = matrix[row]
    return out


def _records(source: str | Path | Iterable[str | bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(source, str | Path):
        with open(source, "rb") as lines:
            yield from _parse(lines)
    else:
        yield from _parse(source)


def _parse(lines: Iterable[str | bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
            raise ValueError(f'line {number}: expected an object with a "request" object')
        response = record.get("response")
        if response is not None and not isinstance(response, dict):
            raise ValueError(f'line {number}: "response" must be an object')
        for key in ("latency_ms", "pii_count"):
            value = record.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f'line {number}: "{key}" must be a number')
        yield number, record


def _merge_into(mine: Sketch, theirs: Sketch) -> None:
    # One branch per kind (not merged with `or`) so that mypy checks each merge's argument type.
    if isinstance(mine, NumericSketch) and isinstance(theirs, NumericSketch):  # noqa: SIM114
        mine.merge(theirs)
    elif isinstance(mine, CategorySketch) and isinstance(theirs, CategorySketch):  # noqa: SIM114
        mine.merge(theirs)
    elif isinstance(mine, EmbeddingSketch) and isinstance(theirs, EmbeddingSketch):
        mine.merge(theirs)
    else:
        raise ValueError(f"cannot merge a {theirs.kind} sketch into a {mine.kind} sketch")


def _new_sketch(kind: FeatureKind, k: int, reservoir: int, rng: np.random.Generator) -> Sketch:
    if kind is FeatureKind.NUMERIC:
        return NumericSketch(k)
    if kind is FeatureKind.CATEGORY:
        return CategorySketch()
    return EmbeddingSketch(reservoir, rng=rng)


def _read_sketch(kind: FeatureKind, payload: bytes, rng: np.random.Generator) -> Sketch:
    if kind is FeatureKind.NUMERIC:
        return NumericSketch.from_bytes(payload)
    if kind is FeatureKind.CATEGORY:
        return CategorySketch.from_bytes(payload)
    return EmbeddingSketch.from_bytes(payload, rng=rng)
