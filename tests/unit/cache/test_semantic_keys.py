"""What the semantic cache compares by meaning (the last user turn) and what it matches exactly."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.cache.semantic_keys import last_user_turn, partition_key, semantic_question
from interlock.pipeline.context import Endpoint, Protection
from interlock.security.roles import OPEN
from tests.support.context import context

SYSTEM = {"role": "system", "content": "You are terse."}


def chat(last: str = "What is the capital of France?", **fields: Any) -> dict[str, Any]:
    messages = fields.pop("messages", [SYSTEM])
    return {"model": "m", "temperature": 0, "messages": [*messages, {"role": "user", "content": last}], **fields}


def key(body: dict[str, Any], tenant: str = "t", model: str = "m", conversation: str | None = None) -> str:
    return partition_key(tenant, model, Endpoint.CHAT, body, conversation)


def test_the_last_user_turn_is_its_text_or_nothing_to_compare() -> None:
    assert last_user_turn(chat("hello")) == "hello"
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert last_user_turn({"messages": [{"role": "user", "content": parts}]}) == "one\ntwo"
    image = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert last_user_turn({"messages": [{"role": "user", "content": image}]}) is None
    assert (
        last_user_turn({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}) is None
    )
    assert last_user_turn({"messages": [{"role": "user", "content": "  "}]}) is None
    assert last_user_turn({"messages": []}) is None


def test_only_the_last_user_turn_is_left_out_of_the_partition() -> None:
    # Never a key that hashes the whole request: two questions share a partition.
    assert key(chat("What is the capital of France?")) == key(chat("Which city is France's capital?"))
    # Fields that never change an answer do not split it either.
    assert key(chat(user="alice", metadata={"a": 1})) == key(chat())


@pytest.mark.parametrize(
    "other",
    [
        {"temperature": 0.5},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"seed": 7},
        {"stream": True},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"messages": [{"role": "system", "content": "You are verbose."}]},
        {"messages": [SYSTEM, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    ],
)
def test_every_parameter_system_prompt_and_earlier_turn_splits_the_partition(other: dict[str, Any]) -> None:
    assert key(chat(**other)) != key(chat())


def test_tenant_model_and_conversation_split_the_partition() -> None:
    body = chat()
    assert len({key(body), key(body, tenant="u"), key(body, model="n"), key(body, conversation="c1")}) == 4


def test_a_request_with_dlp_findings_is_kept_to_its_conversation() -> None:
    body = chat("What did <PERSON_1> order?")
    clean = semantic_question(context(body, identity=OPEN))
    found = context(body, identity=OPEN)
    found.protection = Protection(findings={"PERSON": 1})
    assert semantic_question(found) is None  # no conversation to keep it to: never cached
    in_conversation = context(body, identity=OPEN, conversation="c1")
    in_conversation.protection = Protection(findings={"PERSON": 1})
    scoped = semantic_question(in_conversation)
    assert clean is not None and scoped is not None
    assert scoped[0] != clean[0] and scoped[1] == clean[1]


def test_only_chat_requests_are_compared_by_meaning() -> None:
    assert semantic_question(context({"model": "m", "prompt": "hi"}, endpoint=Endpoint.COMPLETIONS)) is None
