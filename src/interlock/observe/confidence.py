"""Confidence from token logprobs: the mean and the minimum token logprob of an answer, and its
perplexity (exp of minus the mean).

Pure: decoded answers in, numbers out. The format is OpenAI's chat one,
`choices[].logprobs.content[].logprob`; a stream carries the same in each chunk, so a tally is fed
chunk by chunk and read once at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_EXPONENT = 700.0  # math.exp overflows a float a little past 709


@dataclass(frozen=True, slots=True)
class Confidence:
    mean_logprob: float
    min_logprob: float
    perplexity: float
    tokens: int
    sampled: bool  # the gateway asked for the logprobs; the caller did not see them


class LogprobTally:
    """Sums the logprobs of the tokens it is shown."""

    __slots__ = ("count", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.minimum = 0.0

    def add_choices(self, choices: object) -> None:
        if not isinstance(choices, list):
            return
        for choice in choices:
            logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
            if not isinstance(logprobs, dict):
                continue
            tokens = logprobs.get("content")
            if not isinstance(tokens, list):
                continue
            for token in tokens:
                value = token.get("logprob") if isinstance(token, dict) else None
                if isinstance(value, float | int) and not isinstance(value, bool) and not math.isnan(value):
                    self.count += 1
                    self.total += value
                    if value < self.minimum:
                        self.minimum = value

    def result(self, sampled: bool) -> Confidence | None:
        if not self.count:
            return None
        mean = self.total / self.count
        perplexity = math.exp(min(-mean, MAX_EXPONENT))
        return Confidence(mean, self.minimum, perplexity, self.count, sampled)


def with_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """The request as sent upstream when the gateway samples logprobs. `top_logprobs: 0` asks for
    no alternatives; llama.cpp's server only returns chat logprobs when it is present."""
    asked = {**body, "logprobs": True}
    asked.setdefault("top_logprobs", 0)
    return asked


def strip_logprobs(choices: object) -> bool:
    """Set each choice's `logprobs` back to null, as the backend answers when not asked.

    Returns whether anything changed, so an unchanged answer keeps its original bytes."""
    changed = False
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("logprobs") is not None:
                choice["logprobs"] = None
                changed = True
    return changed
