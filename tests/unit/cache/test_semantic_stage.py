"""The semantic cache stage with the real MiniLM embedder: paraphrases hit, other questions,
tenants, temperatures and conversations do not; the guard, the threshold header, cache
control, tool calls, streams, a slow embedder and invalidation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.cache.semantic_memory import SemanticMemory
from interlock.cache.semantic_stage import SemanticCacheStage
from interlock.cache.stage import CacheStage, ReplayStream
from interlock.config import GroupCache, SemanticCacheSettings
from interlock.embeddings.types import TextEmbedder
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import CacheControl, Protection, RequestContext
from interlock.pipeline.result import Completion, Result, StreamResult
from interlock.pipeline.runner import chain
from interlock.security.roles import OPEN, Identity
from tests.support.context import context
from tests.support.embedder import Slow, minilm

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"  # 0.94 from FRANCE with MiniLM
GERMANY = "What is the capital of Germany?"  # 0.66 from FRANCE
BREAD = "How do I bake bread?"


def answer_for(text: str) -> bytes:
    return orjson.dumps({"choices": [{"message": {"role": "assistant", "content": f"about {text}"}}]})


class Upstream:
    """The rest of the pipeline: answers each request with a body naming its question."""

    def __init__(self, answer: Result | None = None) -> None:
        self.asked: list[str] = []
        self._answer = answer

    async def __call__(self, ctx: RequestContext) -> Result:
        text = ctx.body["messages"][-1]["content"]
        self.asked.append(text)
        return self._answer if self._answer is not None else Completion(answer_for(text))


def make(
    threshold: float = 0.92, mode: str = "deterministic", embedder: TextEmbedder | None = None, **semantic: Any
) -> tuple[SemanticCacheStage, Metrics]:
    semantic.setdefault("timeout_ms", 10_000)  # a loaded machine is not a slow embedder: only one test has one
    settings = SemanticCacheSettings(threshold=threshold, **semantic)
    policy = GroupCache(mode=mode, semantic=settings)  # type: ignore[arg-type]
    metrics = Metrics(CollectorRegistry())
    memories = {"m": SemanticMemory(384, settings.max_entries, settings.max_partitions)}
    return SemanticCacheStage({"m": policy}, memories, embedder or minilm(), metrics), metrics


def ctx_for(text: str, tenant: str = "t", **fields: Any) -> RequestContext:
    body = {"model": "m", "temperature": fields.pop("temperature", 0), "messages": [{"role": "user", "content": text}]}
    body.update(fields.pop("body", {}))
    identity = Identity(subject="s", kind="key", tenant=tenant, roles=(), permissions=OPEN.permissions)
    return context(body, identity=identity, **fields)


async def ask(stage: SemanticCacheStage, upstream: Upstream, ctx: RequestContext) -> Result:
    return await stage(ctx, upstream)


def count(metrics: Metrics, result: str) -> float:
    return metrics.registry.get_sample_value("interlock_semantic_cache_total", {"model": "m", "result": result}) or 0.0


async def test_a_paraphrase_is_answered_with_the_earlier_answer() -> None:
    stage, metrics = make()
    upstream = Upstream()
    first = ctx_for(FRANCE)
    await ask(stage, upstream, first)
    assert first.semantic is None and upstream.asked == [FRANCE]
    again = ctx_for(PARAPHRASE)
    result = await ask(stage, upstream, again)
    assert upstream.asked == [FRANCE]  # answered here
    assert isinstance(result, Completion) and result.body == answer_for(FRANCE)
    assert again.semantic is not None and 0.92 <= again.semantic.similarity < 1.0
    assert again.cache_result == "semantic"
    assert count(metrics, "hit") == 1 and count(metrics, "miss") == 1
    assert metrics.registry.get_sample_value("interlock_semantic_lookup_seconds_count", {"model": "m"}) == 2


async def test_another_question_another_tenant_or_temperature_is_a_miss() -> None:
    stage, _ = make(mode="always")
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE))
    for ctx in (ctx_for(BREAD), ctx_for(PARAPHRASE, tenant="other"), ctx_for(PARAPHRASE, temperature=0.7)):
        await ask(stage, upstream, ctx)
        assert ctx.semantic is None
    assert upstream.asked == [FRANCE, BREAD, PARAPHRASE, PARAPHRASE]


async def test_the_guard_refuses_a_near_neighbour_that_asks_something_else() -> None:
    # At a threshold France and Germany pass (0.66), the guard is what tells them apart.
    stage, metrics = make(threshold=0.6)
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE))
    germany = ctx_for(GERMANY)
    result = await ask(stage, upstream, germany)
    assert germany.semantic is None and isinstance(result, Completion) and result.body == answer_for(GERMANY)
    assert count(metrics, "guarded") == 1


async def test_nondeterministic_requests_are_not_compared_in_deterministic_mode() -> None:
    stage, _ = make()
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE, temperature=0.7))
    paraphrase = ctx_for(PARAPHRASE, temperature=0.7)
    await ask(stage, upstream, paraphrase)
    assert paraphrase.semantic is None and len(upstream.asked) == 2


async def test_the_threshold_header_tightens_and_never_loosens() -> None:
    stage, _ = make()
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE))
    strict = ctx_for(PARAPHRASE, cache_control=CacheControl(semantic_threshold=0.99))
    await ask(stage, upstream, strict)
    assert strict.semantic is None
    loose = ctx_for(BREAD, cache_control=CacheControl(semantic_threshold=0.05))  # below 0.92: ignored
    await ask(stage, upstream, loose)
    assert loose.semantic is None
    assert upstream.asked == [FRANCE, PARAPHRASE, BREAD]


async def test_no_cache_skips_the_lookup_and_no_store_the_store() -> None:
    stage, _ = make()
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE, cache_control=CacheControl(no_store=True)))
    probe = ctx_for(PARAPHRASE, cache_control=CacheControl(no_cache=True))
    await ask(stage, upstream, probe)  # not answered from cache, but its answer is stored
    assert probe.semantic is None
    hit = ctx_for(FRANCE)
    result = await ask(stage, upstream, hit)
    assert hit.semantic is not None and isinstance(result, Completion) and result.body == answer_for(PARAPHRASE)
    assert upstream.asked == [FRANCE, PARAPHRASE]


async def test_answers_with_tool_calls_are_never_cached() -> None:
    stage, _ = make()
    body = orjson.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "c"}]}}]})
    upstream = Upstream(Completion(body))
    await ask(stage, upstream, ctx_for(FRANCE))
    await ask(stage, upstream, ctx_for(FRANCE))
    assert len(upstream.asked) == 2


async def gen(events: list[bytes], fail: bool = False) -> AsyncIterator[bytes]:
    for e in events:
        yield e
    if fail:
        raise ConnectionError("cut")


EVENTS = [b'{"choices":[{"delta":{"content":"Paris"}}]}', b'{"choices":[{"delta":{},"finish_reason":"stop"}]}']


async def drain(result: Result) -> list[bytes]:
    assert isinstance(result, StreamResult)
    return [e async for e in result.events]


async def test_a_completed_stream_is_replayed_as_a_stream_and_a_broken_one_is_not_kept() -> None:
    stage, _ = make()
    stream = {"body": {"stream": True}, "stream": True}
    broken = StreamResult(gen(EVENTS, fail=True))
    with pytest.raises(ConnectionError):
        await drain(await ask(stage, Upstream(broken), ctx_for(FRANCE, **dict(stream))))
    upstream = Upstream(StreamResult(gen(EVENTS)))
    assert await drain(await ask(stage, upstream, ctx_for(FRANCE, **dict(stream)))) == EVENTS
    replay = ctx_for(PARAPHRASE, **dict(stream))
    result = await ask(stage, upstream, replay)
    assert replay.semantic is not None and isinstance(result, StreamResult)
    assert isinstance(result.events, ReplayStream) and await drain(result) == EVENTS
    plain = ctx_for(PARAPHRASE)  # a stream is only served to a stream: `stream` is in the partition
    await ask(stage, Upstream(), plain)
    assert plain.semantic is None


async def test_an_embedder_past_its_timeout_is_a_miss_not_an_error() -> None:
    slow = Slow(0.2)
    stage, metrics = make(embedder=slow, timeout_ms=20)
    upstream = Upstream()
    result = await ask(stage, upstream, ctx_for(FRANCE))
    assert isinstance(result, Completion) and upstream.asked == [FRANCE] and slow.calls == 1
    assert count(metrics, "timeout") == 1


async def test_dlp_findings_match_only_their_own_conversation() -> None:
    stage, _ = make()
    upstream = Upstream()

    def found(text: str, conversation: str | None) -> RequestContext:
        ctx = ctx_for(text, conversation=conversation)
        ctx.protection = Protection(findings={"PERSON": 1})
        return ctx

    await ask(stage, upstream, found(FRANCE, "c1"))
    for ctx in (found(PARAPHRASE, "c2"), found(PARAPHRASE, None), ctx_for(PARAPHRASE)):
        await ask(stage, upstream, ctx)
        assert ctx.semantic is None
    same = found(PARAPHRASE, "c1")
    await ask(stage, upstream, same)
    assert same.semantic is not None


async def test_invalidation_forgets_the_group() -> None:
    stage, _ = make()
    upstream = Upstream()
    await ask(stage, upstream, ctx_for(FRANCE))
    assert stage.invalidate("m") == 1 and stage.invalidate("other") is None
    ctx = ctx_for(PARAPHRASE)
    await ask(stage, upstream, ctx)
    assert ctx.semantic is None


async def test_after_the_exact_cache_a_semantic_hit_is_not_copied_under_the_exact_key() -> None:
    semantic, _ = make()
    exact = CacheStage({"m": GroupCache()}, MemoryCache(1 << 20, 1 << 16), None, Metrics(CollectorRegistry()))
    upstream = Upstream()
    run = chain([exact, semantic], upstream)
    await run(ctx_for(FRANCE))
    for _ in range(2):  # a semantic hit both times: invalidation would not reach an exact copy
        ctx = ctx_for(PARAPHRASE)
        await run(ctx)
        assert ctx.cache_result == "semantic"
    again = ctx_for(FRANCE)
    await run(again)
    assert again.cache_result == "hit"  # the identical request is the exact cache's


def test_a_stream_or_body_calling_a_tool_is_recognised() -> None:
    from interlock.cache.entry import CachedAnswer
    from interlock.cache.semantic_stage import has_tool_calls

    call = b'{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}'
    assert has_tool_calls(CachedAnswer("sse", events=[EVENTS[0], call, EVENTS[1]]))
    assert has_tool_calls(CachedAnswer("json", b'{"choices":[{"message":{},"finish_reason":"tool_calls"}]}'))
    assert not has_tool_calls(CachedAnswer("sse", events=EVENTS))
    assert not has_tool_calls(CachedAnswer("json", b'{"choices":[{"message":{"content":"no tool_calls here"}}]}'))


async def test_an_embedding_service_too_busy_to_take_the_turn_is_a_miss_not_an_error() -> None:
    import asyncio

    from interlock.app import embedding_service
    from interlock.config import EmbeddingsSettings
    from interlock.lifecycle import Lifecycle

    life = Lifecycle()
    service, start, close = embedding_service(
        EmbeddingsSettings(max_batch=1, max_queue=1, store=None), Metrics(CollectorRegistry()), life
    )
    await start()
    try:
        stage, metrics = make(embedder=service)
        upstream = Upstream()
        # Both turns reach the service before its worker runs: the second finds the queue full.
        await asyncio.gather(ask(stage, upstream, ctx_for(FRANCE)), ask(stage, upstream, ctx_for(BREAD)))
        assert sorted(upstream.asked) == sorted([FRANCE, BREAD])  # both answered
        assert count(metrics, "busy") == 1
    finally:
        await close()
