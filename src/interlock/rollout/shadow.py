"""Comparing a shadow answer with the stable one, and summing the comparisons of an interval. Pure.

Per pair: whether the shadow failed, its latency over the stable one's, its output length over
the stable one's (in characters), and a similarity in [0, 1]: the cosine of the two answers'
embeddings when an embed function is given (`embed.MiniLmEmbedder.embed`, whose rows are unit
length; call it off the event loop), otherwise the Jaccard index of the two answers' sets of
lower-cased words. And what the shadow answer says on its own (`quality.py`): a refusal, an
answer cut short, invalid JSON when the request asked for JSON.

The same comparison serves the self-consistency baseline, where the "shadow" is the stable
version answering the same request again: its summary is the stable side of every relative
`shadow_*` condition.

Why Jaccard of word sets for the cheap path: it is two `set` builds and two set operations in C,
linear in the answers' length, with no parameters; ROUGE-L F1 would also reward word order but
needs a longest-common-subsequence table, quadratic in Python, which for two 500-word answers is
a quarter of a million steps per pair. For "does the candidate say roughly the same thing", word
overlap is the usual cheap proxy, and the analysis compares it against a threshold or against
what the stable version scores, never as an absolute truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from ..embeddings.minilm import cosine
from .quality import is_refusal, json_valid, unfinished

EmbedFn = Callable[[Sequence[str]], NDArray[Any]]
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class ShadowComparison:
    error: bool  # the shadow call failed (the stable answer is the caller's; it did not fail)
    latency_ratio: float | None  # shadow latency / stable latency
    length_ratio: float | None  # shadow output length / stable output length
    similarity: float | None  # None when the shadow failed
    refusal: bool = False  # the shadow answer declines to help
    unfinished: bool = False  # the shadow answer did not end by itself (finish_reason not stop)
    json_invalid: bool | None = None  # None: the request did not ask for JSON


def token_overlap(a: str, b: str) -> float:
    """Jaccard index of the two texts' sets of lower-cased words; 1.0 for two empty texts."""
    wa = set(_WORD.findall(a.lower()))
    wb = set(_WORD.findall(b.lower()))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def compare(
    stable_text: str,
    stable_latency_s: float,
    shadow_text: str | None,
    shadow_latency_s: float | None,
    embed: EmbedFn | None = None,
    *,
    shadow_finish: str | None = "stop",
    wants_json: bool = False,
) -> ShadowComparison:
    """One pair. `shadow_text` None means the shadow call failed; `shadow_finish` is the shadow
    answer's finish reason; `wants_json` whether the request's `response_format` asked for JSON."""
    if shadow_text is None:
        return ShadowComparison(error=True, latency_ratio=None, length_ratio=None, similarity=None)
    latency = shadow_latency_s / stable_latency_s if shadow_latency_s is not None and stable_latency_s > 0 else None
    length = len(shadow_text) / len(stable_text) if stable_text else (1.0 if not shadow_text else None)
    if embed is not None:
        rows = embed([stable_text, shadow_text])
        similarity = max(0.0, min(1.0, cosine(rows[0], rows[1])))
    else:
        similarity = token_overlap(stable_text, shadow_text)
    return ShadowComparison(
        error=False,
        latency_ratio=latency,
        length_ratio=length,
        similarity=similarity,
        refusal=is_refusal(shadow_text),
        unfinished=unfinished(shadow_finish),
        json_invalid=not json_valid(shadow_text) if wants_json else None,
    )


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """An interval's comparisons: the signals `shadow_*` of an analysis."""

    requests: int
    errors: int
    similarity_mean: float | None
    latency_ratio_mean: float | None
    length_ratio_mean: float | None
    refusals: int = 0
    unfinished: int = 0
    json_requests: int = 0  # pairs whose request asked for JSON and whose shadow answered
    json_invalid: int = 0

    @property
    def error_share(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def signals(self) -> dict[str, float | None]:
        """The `shadow_*` signals. The refusal and unfinished rates are over the shadows that
        answered; the JSON rate over those asked for JSON, and 0 when none was (nothing was broken)."""
        answered = self.requests - self.errors
        return {
            "shadow_requests": float(self.requests),
            "shadow_answered": float(answered),
            "shadow_json_requests": float(self.json_requests),
            "shadow_error_rate": self.error_share,
            "shadow_similarity": self.similarity_mean,
            "shadow_latency_ratio": self.latency_ratio_mean,
            "shadow_length_ratio": self.length_ratio_mean,
            "shadow_refusal_rate": self.refusals / answered if answered else None,
            "shadow_unfinished_rate": self.unfinished / answered if answered else None,
            "shadow_json_invalid_rate": (
                self.json_invalid / self.json_requests if self.json_requests else 0.0 if answered else None
            ),
        }


def summarize(comparisons: Iterable[ShadowComparison]) -> ShadowSummary:
    n = errors = refusals = cut = asked = invalid = 0
    sims: list[float] = []
    lats: list[float] = []
    lens: list[float] = []
    for c in comparisons:
        n += 1
        errors += c.error
        if c.similarity is not None:
            sims.append(c.similarity)
        if c.latency_ratio is not None:
            lats.append(c.latency_ratio)
        if c.length_ratio is not None:
            lens.append(c.length_ratio)
        if not c.error:
            refusals += c.refusal
            cut += c.unfinished
            if c.json_invalid is not None:
                asked += 1
                invalid += c.json_invalid
    return ShadowSummary(n, errors, _mean(sims), _mean(lats), _mean(lens), refusals, cut, asked, invalid)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
