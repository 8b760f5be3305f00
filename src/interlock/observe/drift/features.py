"""The features the drift monitor watches, and the pure function that reads them off one exchange.

Per request: `prompt_tokens`, `message_count`, `language`, `pii_rate`, `topic`. Per response:
`output_tokens`, `finish_reason`, `refusal`, `confidence`, `latency_ms`. `FEATURES` names each
one's kind, which decides its sketch and its tests.

Choices that keep a reference built from logs comparable with live traffic:

- Token counts are always estimated from the text, as UTF-8 bytes / 4 rounded up (about one token
  per 4 bytes of English for the GPT and Llama tokenizers, and about one per CJK character, which
  is 3 bytes). `usage` is deliberately ignored: logs often lack it and streams may not carry it,
  and a feature whose source changed between reference and live would drift by construction.
  A `/v1/completions` prompt given as token ids counts its ids.
- `language` and `topic` describe the last user message (what this request is about), not the
  system prompt, which is usually one fixed English template whatever the user writes.
- `pii_rate` is PII entities per 1,000 characters of the whole prompt. Detection happens in the
  security pipeline; the caller passes the count, and no count means no feature (a default of 0
  would make a reference without counts look PII-free and alarm on the first live PII).
- `confidence` is the mean token logprob of the first choice: passed in, or read from the
  response's `logprobs` when the backend returned them; absent otherwise.
- A missing feature is omitted, never filled: the tests count each feature's own sample size.
  Only the first choice of a response is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .refusal import is_refusal


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORY = "category"
    EMBEDDING = "embedding"


FEATURES: Mapping[str, FeatureKind] = MappingProxyType(
    {
        "prompt_tokens": FeatureKind.NUMERIC,
        "message_count": FeatureKind.NUMERIC,
        "language": FeatureKind.CATEGORY,
        "pii_rate": FeatureKind.NUMERIC,
        "topic": FeatureKind.EMBEDDING,
        "output_tokens": FeatureKind.NUMERIC,
        "finish_reason": FeatureKind.CATEGORY,
        "refusal": FeatureKind.CATEGORY,
        "confidence": FeatureKind.NUMERIC,
        "latency_ms": FeatureKind.NUMERIC,
    }
)

FeatureValue = float | str | NDArray[np.float32]
LanguageFn = Callable[[str], str]


class Observation(Mapping[str, FeatureValue]):
    """One exchange's features: a read-only mapping of feature name to value, missing ones absent.
    Numbers are floats, categories strings, embeddings 1-D float32 arrays."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, FeatureValue]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> FeatureValue:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> ItemsView[str, FeatureValue]:
        return self._values.items()  # the dict's own view: Mapping's generic one is 3x slower

    def __repr__(self) -> str:
        shown = {k: (f"<vector {v.shape[0]}>" if isinstance(v, np.ndarray) else v) for k, v in self._values.items()}
        return f"Observation({shown})"


def observe(
    request_body: Mapping[str, Any],
    response_body: Mapping[str, Any] | None,
    *,
    latency_ms: float | None,
    pii_count: int | None = None,
    embedding: Sequence[float] | NDArray[np.floating[Any]] | None = None,
    confidence: float | None = None,
    language: LanguageFn | None = None,
) -> Observation:
    """Features of one exchange. `language` is the identifier to run on the user's text (a
    `LanguageIdentifier`); without one the feature is omitted. `embedding` is the topic vector of
    `topic_text(request_body)` when this request was sampled for embedding."""
    values: dict[str, FeatureValue] = {}
    text = prompt_text(request_body)
    values["prompt_tokens"] = float(_prompt_token_count(request_body, text))
    messages = request_body.get("messages")
    if isinstance(messages, list):
        values["message_count"] = float(len(messages))
    if language is not None:
        values["language"] = language(topic_text(request_body))
    if pii_count is not None and text:
        values["pii_rate"] = pii_count * 1000.0 / len(text)
    if embedding is not None:
        values["topic"] = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if response_body is not None:
        choice = _first_choice(response_body)
        if choice is not None:
            values["output_tokens"] = float(estimate_tokens(response_text(response_body)))
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                values["finish_reason"] = reason
            values["refusal"] = "yes" if _refused(choice) else "no"
        if confidence is None:
            confidence = mean_logprob(response_body)
    if confidence is not None and math.isfinite(confidence):
        values["confidence"] = float(confidence)
    if latency_ms is not None:
        values["latency_ms"] = float(latency_ms)
    return Observation(values)


def estimate_tokens(text: str) -> int:
    """UTF-8 bytes / 4, rounded up: see the module docstring for why an estimate and why this one."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // 4)


def prompt_text(request_body: Mapping[str, Any]) -> str:
    """Every message's text (chat) or the prompt (completions), joined by newlines."""
    messages = request_body.get("messages")
    if isinstance(messages, list):
        return "\n".join(t for m in messages if isinstance(m, dict) and (t := _content_text(m.get("content"))))
    return _completion_prompt_text(request_body.get("prompt"))


def topic_text(request_body: Mapping[str, Any]) -> str:
    """The last user message's text (chat) or the prompt (completions): what `language` and the
    topic embedding describe. Embed exactly this text for live traffic and for the reference."""
    messages = request_body.get("messages")
    if isinstance(messages, list):
        texts = [(m.get("role"), t) for m in messages if isinstance(m, dict) and (t := _content_text(m.get("content")))]
        for role, t in reversed(texts):
            if role == "user":
                return t
        return texts[-1][1] if texts else ""
    return _completion_prompt_text(request_body.get("prompt"))


def response_text(response_body: Mapping[str, Any]) -> str:
    """The first choice's text: the message content (or refusal, or tool-call arguments) for chat,
    `text` for completions."""
    choice = _first_choice(response_body)
    if choice is None:
        return ""
    message = choice.get("message")
    if isinstance(message, dict):
        parts = [_content_text(message.get("content")), _str(message.get("refusal"))]
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts.append(_str(function.get("arguments")))
        return "\n".join(p for p in parts if p)
    return _str(choice.get("text"))


def mean_logprob(response_body: Mapping[str, Any]) -> float | None:
    """Mean token logprob of the first choice, from chat (`logprobs.content[].logprob`) or
    completions (`logprobs.token_logprobs`) shape; None when the backend returned none."""
    choice = _first_choice(response_body)
    logprobs = choice.get("logprobs") if choice is not None else None
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list):
        values = [t.get("logprob") for t in content if isinstance(t, dict)]
    else:
        values = list(logprobs.get("token_logprobs") or ())
    numbers = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(numbers) / len(numbers) if numbers else None


def _refused(choice: Mapping[str, Any]) -> bool:
    message = choice.get("message")
    if isinstance(message, dict):
        if _str(message.get("refusal")):  # the API's own structured-output refusal
            return True
        return is_refusal(_content_text(message.get("content")))
    return is_refusal(_str(choice.get("text")))


def _first_choice(response_body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = response_body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _prompt_token_count(request_body: Mapping[str, Any], text: str) -> int:
    prompt = request_body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], str):
        # Token ids: a list of ints, or a batch of such lists.
        if isinstance(prompt[0], int):
            return len(prompt)
        return sum(len(p) for p in prompt if isinstance(p, list))
    return estimate_tokens(text)


def _completion_prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(p for p in prompt if isinstance(p, str))
    return ""


def _content_text(content: Any) -> str:
    """Message content is a string or a list of parts; only text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for part in content if isinstance(part, dict) and (t := _str(part.get("text"))))
    return ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
