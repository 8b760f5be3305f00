"""The retrieval stage over the real service: the chunks go into the prompt through the
retrieval template, `vector_store_ids` does not leave the gateway, the answer and a stream's first
event carry the citations, a group's configured stores apply, the request takes the store's data
class, and a template that names other variables is a config error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from interlock.config import GroupRetrieval, TemplateSettings
from interlock.errors import ConfigError
from interlock.pipeline.context import RequestContext
from interlock.pipeline.result import Completion, Result, StreamResult
from interlock.pipeline.streams import aclose_quietly
from interlock.prompts.templates import TemplateBook
from interlock.retrieval.stage import DEFAULT_SYSTEM, RetrievalStage
from interlock.security.roles import Identity
from tests.support.context import context
from tests.unit.retrieval.conftest import ADMIN, USER, Parts

DOCS = {"pets.txt": b"The office cat is named Biscuit.", "kestrel.md": b"Project Kestrel ships on 14 March."}
ANSWER = orjson.dumps({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})


async def store_with_docs(
    parts: Parts, who: Identity = USER, data_class: str | None = None
) -> tuple[str, dict[str, str]]:
    store = await parts.service.create_store(who, "docs", {}, data_class)
    ids = {}
    for name, content in DOCS.items():
        record = await parts.service.upload(who, name, "assistants", content)
        await parts.service.attach(who, store.id, record.id, {}, None)
        ids[name] = record.id
    await parts.ingestor.drained()
    return store.id, ids


def stage(
    parts: Parts, groups: dict[str, GroupRetrieval] | None = None, **templates: TemplateSettings
) -> RetrievalStage:
    book = TemplateBook({"retrieval": TemplateSettings(system=DEFAULT_SYSTEM), **templates})
    name = next(iter(templates), "retrieval")
    return RetrievalStage(parts.service, groups or {}, book, name, max_results=1)


class Rest:
    def __init__(self, result: Result | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self._result = result

    async def __call__(self, ctx: RequestContext) -> Result:
        self.seen.append(ctx.body)
        return self._result or Completion(ANSWER)


def chat(text: str, who: Identity = USER, **extra: Any) -> RequestContext:
    return context({"model": "m", "messages": [{"role": "user", "content": text}], **extra}, identity=who)


async def test_the_chunks_go_into_the_prompt_and_the_answer_cites_them(parts: Parts) -> None:
    store_id, ids = await store_with_docs(parts)
    rest = Rest()
    ctx = chat("What is the cat called?", vector_store_ids=[store_id])
    result = await stage(parts)(ctx, rest)
    (sent,) = rest.seen
    assert "vector_store_ids" not in sent and "vector_store_ids" in ctx.request.body
    assert (
        sent["messages"][0]["role"] == "system"
        and "[1] pets.txt (chunk 0)\nThe office cat" in sent["messages"][0]["content"]
    )
    assert sent["messages"][1] == {"role": "user", "content": "What is the cat called?"}
    assert isinstance(result, Completion)
    (cited,) = orjson.loads(result.body)["citations"]
    assert cited["file_id"] == ids["pets.txt"] and cited["chunk_index"] == 0 and cited["vector_store_id"] == store_id
    assert ctx.retrieval is not None and ctx.data_class == "internal"


async def test_a_request_without_stores_passes_untouched(parts: Parts) -> None:
    rest = Rest()
    ctx = chat("hello")
    result = await stage(parts)(ctx, rest)
    assert rest.seen == [ctx.request.body] and ctx.retrieval is None
    assert isinstance(result, Completion) and result.body == ANSWER


async def test_a_groups_configured_stores_apply(parts: Parts) -> None:
    store_id, ids = await store_with_docs(parts)
    rest = Rest()
    groups = {"m": GroupRetrieval(vector_store_ids=[store_id], max_results=2)}
    result = await stage(parts, groups)(chat("When does Kestrel ship?"), rest)
    assert isinstance(result, Completion)
    citations = orjson.loads(result.body)["citations"]
    assert len(citations) == 2 and citations[0]["file_id"] == ids["kestrel.md"]


async def test_a_stream_carries_the_citations_in_its_first_event_only(parts: Parts) -> None:
    store_id, ids = await store_with_docs(parts)
    events = [orjson.dumps({"choices": [{"delta": {"content": w}}]}) for w in ("a", "b")] + [b"[DONE]"]

    async def upstream() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    result = await stage(parts)(chat("cat?", vector_store_ids=[store_id]), Rest(StreamResult(upstream())))
    assert isinstance(result, StreamResult)
    out = [e async for e in result.events]
    await aclose_quietly(result.events)
    assert orjson.loads(out[0])["citations"][0]["file_id"] == ids["pets.txt"]
    assert out[1:] == events[1:]


async def test_a_restricted_store_makes_the_request_restricted(parts: Parts) -> None:
    store_id, _ = await store_with_docs(parts, ADMIN, "restricted")
    ctx = chat("cat?", ADMIN, vector_store_ids=[store_id])
    await stage(parts)(ctx, Rest())
    assert ctx.data_class == "restricted"


async def test_a_template_of_its_own_may_take_the_question(parts: Parts) -> None:
    store_id, _ = await store_with_docs(parts)
    rest = Rest()
    template = TemplateSettings(user="Sources:\n{{ sources }}\n\nQuestion: {{ question }}")
    await stage(parts, mine=template)(chat("What is the cat called?", vector_store_ids=[store_id]), rest)
    (sent,) = rest.seen
    assert len(sent["messages"]) == 1
    assert sent["messages"][0]["content"].endswith("Question: What is the cat called?")
    assert "Biscuit" in sent["messages"][0]["content"]


@pytest.mark.parametrize("source", ["{{ question }}", "{{ sources }} {{ tenant }}"])
def test_a_template_naming_other_variables_is_a_config_error(parts: Parts, source: str) -> None:
    with pytest.raises(ConfigError, match="retrieval template"):
        stage(parts, bad=TemplateSettings(system=source))


async def test_tokens_of_the_chunks_in_the_answer_come_back_only_for_read_pii(parts: Parts) -> None:
    store = await parts.service.create_store(USER, "contacts", {}, None)
    record = await parts.service.upload(USER, "c.txt", "assistants", b"Report cat sightings to cats@example.com.")
    await parts.service.attach(USER, store.id, record.id, {}, None)
    await parts.ingestor.drained()

    async def echo(ctx: RequestContext) -> Result:  # a model that repeats its sources
        content = ctx.body["messages"][0]["content"]
        return Completion(
            orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
        )

    answers = {}
    for name, who in (("user", USER), ("admin", ADMIN)):
        result = await stage(parts)(chat("Where do I report cats?", who, vector_store_ids=[store.id]), echo)
        assert isinstance(result, Completion)
        answers[name] = orjson.loads(result.body)
    assert "<EMAIL_" in answers["user"]["choices"][0]["message"]["content"]
    assert "cats@example.com" not in answers["user"]["choices"][0]["message"]["content"]
    assert "cats@example.com" in answers["admin"]["choices"][0]["message"]["content"]
    assert answers["admin"]["citations"] == answers["user"]["citations"]
