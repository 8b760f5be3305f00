from __future__ import annotations

import numpy as np
import pytest

from interlock.observe.drift import (
    FEATURES,
    FeatureKind,
    LanguageIdentifier,
    estimate_tokens,
    mean_logprob,
    observe,
    prompt_text,
    topic_text,
)

CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Please summarise the main points of the report below."},
                                     {"type": "image_url", "image_url": {"url": "data:,"}}]},
    ],
}  # fmt: skip
REPLY = {
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The report makes three points about revenue."},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": "The", "logprob": -0.2}, {"token": " report", "logprob": -0.4}]},
        }
    ],
    "usage": {"prompt_tokens": 999, "completion_tokens": 999},
}


def test_every_feature_of_a_chat_exchange(language: LanguageIdentifier) -> None:
    vector = np.arange(8, dtype=np.float64)
    o = observe(CHAT, REPLY, latency_ms=512.0, pii_count=2, embedding=vector, language=language)
    assert set(o) == set(FEATURES)
    text = prompt_text(CHAT)
    assert o["prompt_tokens"] == estimate_tokens(text)  # the estimate, not usage.prompt_tokens
    assert o["message_count"] == 4.0
    assert o["language"] == "en"
    assert o["pii_rate"] == pytest.approx(2 * 1000 / len(text))
    topic = o["topic"]
    assert isinstance(topic, np.ndarray) and topic.dtype == np.float32 and topic.tolist() == list(range(8))
    assert o["output_tokens"] == estimate_tokens("The report makes three points about revenue.")
    assert o["finish_reason"] == "stop"
    assert o["refusal"] == "no"
    assert o["confidence"] == pytest.approx(-0.3)
    assert o["latency_ms"] == 512.0
    assert {FEATURES[name] for name in o} == set(FeatureKind)


def test_missing_inputs_leave_their_features_out() -> None:
    o = observe(CHAT, None, latency_ms=None)
    assert set(o) == {"prompt_tokens", "message_count"}  # no response, no PII count, no detector, no vector


def test_completions_prompt_and_text() -> None:
    body = {"model": "m", "prompt": "Once upon a time"}
    reply = {"choices": [{"text": " I'm sorry, but I cannot continue this story.", "finish_reason": "stop",
                          "logprobs": {"token_logprobs": [-1.0, None, -3.0]}}]}  # fmt: skip
    o = observe(body, reply, latency_ms=10.0)
    assert o["prompt_tokens"] == 4.0  # 16 bytes / 4
    assert "message_count" not in o
    assert o["refusal"] == "yes"
    assert o["confidence"] == pytest.approx(-2.0)
    assert observe({"prompt": [101, 2023, 2003]}, None, latency_ms=None)["prompt_tokens"] == 3.0  # token ids


def test_token_estimate_is_bytes_over_four_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("日本語") == 3  # 9 bytes


def test_topic_text_is_the_last_user_message() -> None:
    assert topic_text(CHAT) == "Please summarise the main points of the report below."
    assert topic_text({"messages": [{"role": "system", "content": "Be brief."}]}) == "Be brief."
    assert topic_text({"prompt": ["a", "b"]}) == "a\nb"


def test_structured_refusal_and_tool_calls() -> None:
    refused = {
        "choices": [{"message": {"role": "assistant", "content": None, "refusal": "No."}, "finish_reason": "stop"}]
    }
    assert observe(CHAT, refused, latency_ms=1.0)["refusal"] == "yes"
    tool = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"city": "Paris"}'}}]},
        "finish_reason": "tool_calls"}]}  # fmt: skip
    o = observe(CHAT, tool, latency_ms=1.0)
    assert o["output_tokens"] == estimate_tokens('{"city": "Paris"}')
    assert o["finish_reason"] == "tool_calls" and o["refusal"] == "no"


def test_confidence_passed_in_wins_and_absent_logprobs_mean_none() -> None:
    assert observe(CHAT, REPLY, latency_ms=1.0, confidence=-1.5)["confidence"] == -1.5
    assert mean_logprob({"choices": [{"message": {"content": "x"}}]}) is None
    assert "confidence" not in observe(CHAT, {"choices": [{"message": {"content": "x"}}]}, latency_ms=1.0)
