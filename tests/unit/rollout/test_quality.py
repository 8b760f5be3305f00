"""One answer on its own: the refusal detector, an answer cut short, JSON validity and whether a
request asked for JSON."""

from __future__ import annotations

import pytest

from interlock.rollout.quality import REFUSAL_WINDOW, is_refusal, json_valid, unfinished, wants_json


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I\u2019m sorry, I cannot provide that information.",  # a typographic apostrophe
        "I am very sorry but I am unable to do this.",
        "I cannot assist with this request.",
        "I can't help with that, as it may be harmful.",
        "I'm unable to share details about other accounts.",
        "I will not provide instructions for that.",
        "As an AI language model, I cannot browse the internet.",
        "As an AI, I don't have access to your account.",
        "I must respectfully decline.",
        "Sorry. That request goes against my guidelines.",
    ],
)
def test_refusals_are_found(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sure! To reset your password, open Settings and choose Security.",
        "I can help with that: the invoice shows two charges because the plan renewed twice.",
        "I am sorry to hear that. Here is how to fix it: renew the certificate in the client.",
        "You can move to the annual plan at any time. I cannot stress enough that your data stays.",
        "",
    ],
)
def test_helpful_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_only_the_opening_of_an_answer_is_read() -> None:
    helpful = "Here is how to change the address on your account, step by step. " * 4
    assert len(helpful) > REFUSAL_WINDOW
    assert not is_refusal(helpful + "I can't help with anything else.")
    assert is_refusal("I can't help with that. " + helpful)


def test_finish_reasons() -> None:
    assert not unfinished("stop") and not unfinished("tool_calls")
    assert unfinished("length") and unfinished("content_filter") and unfinished(None)


def test_json_validity_wants_one_object() -> None:
    assert json_valid('{"answer": "yes"}') and json_valid('  {"a": [1, 2]}\n')
    assert not json_valid("[1, 2]")  # both JSON response formats ask for an object
    assert not json_valid('```json\n{"a": 1}\n```')  # a client parses the content as it is
    assert not json_valid('{"answer": "cut sho')
    assert not json_valid("Sure, here is the JSON: {}")


def test_which_requests_ask_for_json() -> None:
    assert wants_json({"response_format": {"type": "json_object"}})
    assert wants_json({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
    assert not wants_json({"response_format": {"type": "text"}})
    assert not wants_json({"response_format": "json_object"}) and not wants_json({})
