from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from interlock.config import TemplateSettings
from interlock.edge.exchange import Exchange
from interlock.edge.parse import RequestParser, cache_control, parse_body
from interlock.errors import BadRequest
from interlock.pipeline import Endpoint
from interlock.prompts.templates import TemplateBook


def test_parse_body_keeps_unknown_fields_and_names_bad_params() -> None:
    data = parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"x_custom":1}', Endpoint.CHAT, None)
    assert data["x_custom"] == 1
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":5}', Endpoint.CHAT, None)
    assert err.value.param == "temperature"
    azure = parse_body(b'{"input":"hi"}', Endpoint.EMBEDDINGS, "my-deployment")
    assert azure["model"] == "my-deployment"


def test_cache_control_from_header_and_body() -> None:
    body = {"cache": {"no-store": True, "ttl": 30}}
    control = cache_control({b"cache-control": b"no-cache"}, body)
    assert (control.no_cache, control.no_store, control.ttl) == (True, True, 30)
    assert "cache" not in body  # not forwarded upstream
    assert cache_control({b"cache-control": b"max-age=7"}, {}).ttl == 7
    with pytest.raises(BadRequest):
        cache_control({}, {"cache": {"ttl": "soon"}})


TEMPLATES = {
    "summary": TemplateSettings(system="You help {{ team }}.", user="Summarise: {{ ticket }}"),
    "ask": TemplateSettings(user="Q: {{ q }}"),
}


def templated(
    body: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT, book: TemplateBook | None = None
) -> dict[str, Any]:
    return parse_body(orjson.dumps(body), endpoint, None, book or TemplateBook(TEMPLATES))


def test_a_template_becomes_the_first_system_and_last_user_message() -> None:
    call = {"name": "summary", "variables": {"team": "billing", "ticket": "refund"}}
    alone = templated({"model": "m", "template": call})
    assert alone == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You help billing."},
            {"role": "user", "content": "Summarise: refund"},
        ],
    }  # the `template` field is gone: it does not travel upstream
    sent = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    around = templated({"model": "m", "messages": sent, "template": call, "temperature": 0})
    assert [m["content"] for m in around["messages"]] == ["You help billing.", "Be brief.", "Hi", "Summarise: refund"]
    assert "template" not in around and around["temperature"] == 0


def test_a_template_is_the_prompt_of_a_completion() -> None:
    call = {"name": "summary", "variables": {"team": "billing", "ticket": "refund"}}
    assert (
        templated({"model": "m", "template": call}, Endpoint.COMPLETIONS)["prompt"]
        == "You help billing.\n\nSummarise: refund"
    )
    assert (
        templated({"model": "m", "template": {"name": "ask", "variables": {"q": "why"}}}, Endpoint.COMPLETIONS)[
            "prompt"
        ]
        == "Q: why"
    )
    with pytest.raises(BadRequest) as err:
        templated({"model": "m", "prompt": "x", "template": call}, Endpoint.COMPLETIONS)
    assert err.value.param == "prompt"


@pytest.mark.parametrize(
    ("body", "endpoint", "param"),
    [
        ({"template": "summary"}, Endpoint.CHAT, "template"),
        ({"template": {"variables": {}}}, Endpoint.CHAT, "template"),
        ({"template": {"name": "ask", "variables": {"q": "x"}, "extra": 1}}, Endpoint.CHAT, "template"),
        ({"template": {"name": "ask", "variables": ["x"]}}, Endpoint.CHAT, "template.variables"),
        ({"template": {"name": "ask", "variables": {"q": "x"}}, "input": "x"}, Endpoint.EMBEDDINGS, "template"),
        ({"template": {"name": "nope", "variables": {}}}, Endpoint.CHAT, "template.name"),
        ({"template": {"name": "ask"}}, Endpoint.CHAT, "template.variables"),
        ({"template": {"name": "ask", "variables": {"q": None}}}, Endpoint.CHAT, "template.variables.q"),
        # Rendered, the body is checked like any other.
        ({"template": {"name": "ask", "variables": {"q": "x"}}, "messages": "hi"}, Endpoint.CHAT, "messages"),
        ({"template": {"name": "ask", "variables": {"q": "x"}}, "temperature": 9}, Endpoint.CHAT, "temperature"),
    ],
)
def test_bad_template_fields_are_400s_naming_the_param(body: dict[str, Any], endpoint: Endpoint, param: str) -> None:
    with pytest.raises(BadRequest) as err:
        templated({"model": "m", **body}, endpoint)
    assert err.value.param == param


def test_without_templates_configured_a_template_field_is_refused() -> None:
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"model":"m","template":{"name":"ask","variables":{}}}', Endpoint.CHAT, None)
    assert err.value.param == "template.name"


def test_the_semantic_threshold_header_is_a_similarity_or_a_400() -> None:
    assert cache_control({b"x-interlock-semantic-threshold": b"0.97"}, {}).semantic_threshold == 0.97
    assert cache_control({}, {}).semantic_threshold is None
    for bad in (b"high", b"0", b"1.5", b"nan", b"-0.2"):
        with pytest.raises(BadRequest):
            cache_control({b"x-interlock-semantic-threshold": bad}, {})


class Groups:
    def has(self, model: str) -> bool:
        return model == "m"


async def parse_chat(parser: RequestParser, body: dict[str, Any]) -> dict[str, Any]:
    raw = orjson.dumps(body)
    messages = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: object) -> None: ...

    headers = {b"content-type": b"application/json", b"content-length": str(len(raw)).encode()}
    ex = Exchange({"type": "http"}, receive, send, headers, "r", asyncio.get_running_loop())  # type: ignore[arg-type]
    return (await parser.parse(ex, Endpoint.CHAT, None, 0.0)).body


async def test_vector_store_ids_without_a_retrieval_section_are_refused_not_forwarded() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "vector_store_ids": ["vs_1"]}
    with pytest.raises(BadRequest) as refused:
        await parse_chat(RequestParser(Groups(), 1 << 20), body)
    assert refused.value.message == "vector_store_ids needs a retrieval section"
    assert refused.value.param == "vector_store_ids"
    assert (await parse_chat(RequestParser(Groups(), 1 << 20, retrieval=True), body))["vector_store_ids"] == ["vs_1"]
