"""One answer on its own: an answer cut short, JSON validity, whether a request asked for JSON;
refusals are the drift monitor's (tests/unit/observe/drift/test_refusal.py)."""

from __future__ import annotations

from interlock.observe.drift import refusal
from interlock.rollout import quality
from interlock.rollout.quality import json_valid, unfinished, wants_json


def test_a_refusal_means_what_it_means_to_the_drift_monitor() -> None:
    assert quality.is_refusal is refusal.is_refusal
    assert quality.is_refusal("I'm sorry, but I can't help with that.")
    assert not quality.is_refusal("Sure! To reset your password, open Settings and choose Security.")


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
