from __future__ import annotations

import numpy as np
import pytest

from interlock.observe.drift import (
    FEATURES,
    FeatureKind,
    LanguageIdentifier,
    estimate_tokens,
    is_refusal,
    mean_logprob,
    observe,
    prompt_text,
    topic_text,
)
from interlock.observe.drift.language import OTHER, UNKNOWN
from interlock.observe.drift.refusal import refusal_pattern

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


@pytest.fixture(scope="module")
def language() -> LanguageIdentifier:
    return LanguageIdentifier()


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


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Can you help me write a cover letter for an engineering job?", "en"),
        ("What is the capital of Australia?", "en"),
        ("Pouvez-vous m'aider à écrire une lettre de motivation ?", "fr"),
        ("Quelle est la capitale de l'Australie ?", "fr"),
        ("Kannst du mir helfen, ein Anschreiben zu verfassen?", "de"),
        ("Was ist die Hauptstadt von Australien?", "de"),
        ("¿Puedes ayudarme a escribir una carta de presentación?", "es"),
        ("¿Cuál es la capital de Australia?", "es"),
        ("PLEASE SUMMARISE THE FOLLOWING REPORT ABOUT QUARTERLY REVENUE.", "en"),
        ("这是一个关于季度收入的报告，请帮我总结一下。", "zh"),  # noqa: RUF001 - a Chinese sentence has Chinese commas
    ],
)
def test_language_of_clear_sentences(language: LanguageIdentifier, text: str, code: str) -> None:
    assert language(text) == code


def test_language_outside_the_list_and_unsure_text(language: LanguageIdentifier) -> None:
    assert language("Hej, kan du hjälpa mig att skriva ett brev till min hyresvärd?") == OTHER  # Swedish
    assert language("") == UNKNOWN
    assert language("yes") == UNKNOWN
    assert language("line one\nline two of an English text about the weather today") == "en"
    assert LanguageIdentifier(["en"])("Quelle est la capitale de l'Australie ?") == OTHER


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I\u2019m sorry, but I cannot assist with creating malware.",  # curly apostrophe, as models emit it
        "I can't help with that request.",
        "As an AI language model, I do not have personal opinions.",
        "I apologize, but I cannot provide medical dosages.",
        "Sorry, I can't help with that.",
        "I must decline to write that.",
        "Je suis désolé, mais je ne peux pas répondre à cette question.",
        "Lo siento, pero no puedo ayudarte con eso.",
        "Es tut mir leid, aber ich kann dabei nicht helfen.",
    ],
)
def test_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is the summary you asked for.",
        "The capital of Australia is Canberra.",
        "Cannot is spelled as one word. " * 20 + "I can't help with that.",  # past the opening
        "As an aside, the function returns None.",
        "",
        None,
    ],
)
def test_not_refusals(text: str | None) -> None:
    assert not is_refusal(text)


def test_a_custom_phrase_list() -> None:
    pattern = refusal_pattern(["computer says no", "computer says"])
    assert is_refusal("Computer says no.", pattern)
    assert is_refusal("computer says maybe", pattern)  # the shorter phrase suffices
    assert not is_refusal("I'm sorry, but I can't help with that.", pattern)
