from __future__ import annotations

import pytest

from interlock.observe.drift import is_refusal
from interlock.observe.drift.refusal import refusal_pattern


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
