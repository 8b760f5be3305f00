"""Prompt templates through a running gateway, with the official `openai` client: the request names
a template and its variables (`extra_body`), the upstream gets the rendered messages or prompt and
no `template` field, DLP sees the rendered text (an email in a variable is tokenized before the
upstream gets it, and put back into the answer), the exact cache keys on the rendered request,
and unknown templates and missing variables are 400s naming them but never a value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway

pytestmark = pytest.mark.integration
EMAIL = "jane.doe@example.com"
SYSTEM = "You summarise support tickets for the {{ team }} team."
USER = "Summarise this ticket from {{ customer }}:\n{{ ticket }}"


@pytest.fixture(scope="module")
def gateway(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": "echo", "deployments": [{"id": "echo", "backend": "openai", "api_base": upstream.base("echo")}]},
            {"name": "text", "deployments": [{"id": "text", "backend": "openai", "api_base": upstream.base("text")}]},
        ],
        "templates": {"support-summary": {"system": SYSTEM, "user": USER}, "plain": {"user": "Q: {{ q }}"}},
        "dlp": {
            "tokenization_key": "os.environ/TEST_TOKEN_KEY",
            "policies": {"default": {"actions": {"EMAIL": "tokenize"}}},
        },
        "router": {"retries": 0},
    }
    gw = Gateway(session_tmp, config, env={"TEST_TOKEN_KEY": "k" * 40})
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def summary(**variables: Any) -> dict[str, Any]:
    return {"template": {"name": "support-summary", "variables": variables}}


def test_the_upstream_gets_the_rendered_messages_with_pii_tokenized(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    out = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "Some context first."}],
        extra_body=summary(team="billing", customer=EMAIL, ticket="My refund is late."),
    )
    (sent,) = upstream.state.bodies("echo")
    assert "template" not in sent
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "user"]
    system, context, user = (m["content"] for m in sent["messages"])
    assert system == "You summarise support tickets for the billing team."
    assert context == "Some context first."
    # DLP screened the rendered text: the email in a variable left as a token.
    assert EMAIL not in json.dumps(sent) and user.startswith("Summarise this ticket from <EMAIL_")
    assert user.endswith(">:\nMy refund is late.")
    # The echo of the last message comes back with the value in place of its token.
    assert out.choices[0].message.content == f"Summarise this ticket from {EMAIL}:\nMy refund is late."


def test_a_completion_gets_the_rendered_prompt(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    out = client.completions.create(
        model="text", prompt="", extra_body=summary(team="sales", customer=EMAIL, ticket="Invoice?")
    )
    assert out.choices[0].text == "fake text"
    (sent,) = upstream.state.bodies("text")
    assert "template" not in sent and EMAIL not in sent["prompt"]
    assert sent["prompt"].startswith(
        "You summarise support tickets for the sales team.\n\nSummarise this ticket from <EMAIL_"
    )


def test_the_cache_keys_on_the_rendered_request(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    asked = {"model": "echo", "temperature": 0, "messages": []}
    variables = {"team": "billing", "customer": "a customer", "ticket": "Where is my parcel?"}
    first = client.chat.completions.with_raw_response.create(**asked, extra_body=summary(**variables))
    again = client.chat.completions.with_raw_response.create(**asked, extra_body=summary(**variables))
    assert (first.headers["x-interlock-cache"], again.headers["x-interlock-cache"]) == ("miss", "hit")
    # The same request written out by hand is the same request.
    (sent,) = upstream.state.bodies("echo")
    by_hand = client.chat.completions.with_raw_response.create(model="echo", temperature=0, messages=sent["messages"])
    assert by_hand.headers["x-interlock-cache"] == "hit"
    assert upstream.state.calls["echo"] == 1


def test_unknown_templates_and_missing_variables_are_400s_naming_them(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="echo", messages=[], extra_body={"template": {"name": "support", "variables": {}}}
        )
    assert err.value.body["param"] == "template.name"  # type: ignore[index]
    assert "`support`" in err.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="echo", messages=[], extra_body=summary(customer=EMAIL))
    body = err.value.body
    assert body["param"] == "template.variables"  # type: ignore[index]
    assert "`team`, `ticket`" in body["message"] and EMAIL not in json.dumps(body)  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="echo",
            messages=[],
            extra_body={"template": {"name": "plain", "variables": {"q": "x", "email": EMAIL}}},
        )
    assert "`email`" in err.value.body["message"] and EMAIL not in json.dumps(err.value.body)  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(
            model="echo", input="x", extra_body={"template": {"name": "plain", "variables": {"q": "x"}}}
        )
    assert err.value.body["param"] == "template"  # type: ignore[index]
    assert upstream.state.calls["echo"] == 0
