"""The embedding service over the real MiniLM model: the store in front, the batcher behind."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.cache.memory import MemoryCache
from interlock.config import MiniLmDeployment
from interlock.embeddings.batcher import MicroBatcher
from interlock.embeddings.minilm import MiniLmEmbedder
from interlock.embeddings.service import EmbeddingService
from interlock.embeddings.store import Embedded, EmbeddingStore
from interlock.errors import BadRequest
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import Endpoint
from interlock.providers.minilm import MiniLmProvider

MODEL = MiniLmEmbedder()  # loaded once for the module's tests (about a second)


def counter(metrics: Metrics, tier: str, result: str) -> float:
    return metrics.embedding_store.labels(tier, result)._value.get()  # type: ignore[no-any-return]


@pytest.fixture
async def service() -> AsyncIterator[tuple[EmbeddingService, Metrics]]:
    metrics = Metrics(CollectorRegistry())
    batcher = MicroBatcher(MODEL.embed_counted, max_batch=16, max_wait_ms=5, on_batch=metrics.embedding_pass)
    store = EmbeddingStore(384, MemoryCache[Embedded](1 << 20, 1 << 20), None, metrics, ttl=3600)
    svc = EmbeddingService(MODEL, batcher, store)
    await svc.start()
    yield svc, metrics
    await svc.close()


async def test_vectors_are_the_models_own_and_a_second_ask_is_a_store_hit(
    service: tuple[EmbeddingService, Metrics],
) -> None:
    svc, metrics = service
    texts = ["how do I reset my password", "what is the capital of France"]
    first, tokens = await svc.embed_counted(texts)
    np.testing.assert_allclose(first, MODEL.embed(texts), atol=1e-5)
    assert tokens == MODEL.embed_counted(texts)[1] and all(t > 0 for t in tokens)
    assert counter(metrics, "memory", "miss") == 2
    again, tokens_again = await svc.embed_counted(texts[::-1])
    np.testing.assert_array_equal(again, first[::-1])
    assert tokens_again == tokens[::-1]
    assert counter(metrics, "memory", "hit") == 2
    assert metrics.embedding_batch._sum.get() == 2  # only the first call reached the model


async def test_a_text_asked_twice_in_one_call_is_embedded_once(service: tuple[EmbeddingService, Metrics]) -> None:
    svc, metrics = service
    vectors = await svc.embed(["same text", "other text", "same text"])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert metrics.embedding_batch._sum.get() == 2


async def test_concurrent_callers_are_batched(service: tuple[EmbeddingService, Metrics]) -> None:
    svc, metrics = service
    results = await asyncio.gather(*(svc.embed([f"question number {i} about invoices"]) for i in range(12)))
    assert all(r.shape == (1, 384) for r in results)
    passes = metrics.embedding_batch._sum.get(), sum(b.get() for b in metrics.embedding_batch._buckets)
    assert passes[0] == 12 and passes[1] < 12  # 12 texts in fewer passes than texts


async def test_a_worker_thread_embeds_through_the_same_batches(service: tuple[EmbeddingService, Metrics]) -> None:
    svc, metrics = service
    direct = await svc.embed(["drift samples this prompt"])
    from_thread = await asyncio.to_thread(svc.blocking().embed, ["drift samples this prompt"])
    np.testing.assert_array_equal(direct, from_thread)
    assert counter(metrics, "memory", "hit") == 1


async def test_warm_stores_each_distinct_query_once(service: tuple[EmbeddingService, Metrics]) -> None:
    svc, metrics = service
    stored, failed = await svc.warm(iter(["a common query", "another one", "a common query"]), batch=2)
    assert (stored, failed) == (3, 0)  # chunks of 2: {"a common query", "another one"}, then the repeat
    assert metrics.embedding_batch._sum.get() == 2  # the repeat was found in the store, not embedded
    await svc.embed(["another one"])
    assert metrics.embedding_batch._sum.get() == 2


def provider(svc: EmbeddingService) -> MiniLmProvider:
    return MiniLmProvider(MiniLmDeployment(id="minilm"), svc)


async def test_the_answer_is_openais_shape_with_dimensions_and_base64(
    service: tuple[EmbeddingService, Metrics],
) -> None:
    svc, _ = service
    p = provider(svc)
    body = {"model": "all-minilm-l6-v2", "input": ["hello world", "good morning"]}
    full = orjson.loads((await p.complete(Endpoint.EMBEDDINGS, body)).body)
    assert full["object"] == "list" and full["model"] == "all-minilm-l6-v2"
    assert [d["index"] for d in full["data"]] == [0, 1] and len(full["data"][0]["embedding"]) == 384
    assert full["usage"]["prompt_tokens"] == full["usage"]["total_tokens"] > 0
    short = orjson.loads((await p.complete(Endpoint.EMBEDDINGS, {**body, "dimensions": 8})).body)
    cut = np.array(short["data"][0]["embedding"])
    head = np.array(full["data"][0]["embedding"][:8])
    np.testing.assert_allclose(cut, head / np.linalg.norm(head), atol=1e-6)
    packed = orjson.loads((await p.complete(Endpoint.EMBEDDINGS, {**body, "encoding_format": "base64"})).body)
    decoded = np.frombuffer(base64.b64decode(packed["data"][1]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, full["data"][1]["embedding"], atol=1e-7)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": 385}, "dimensions"),
        ({"dimensions": "8"}, "dimensions"),
        ({"encoding_format": "binary"}, "encoding_format"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    service: tuple[EmbeddingService, Metrics], change: dict[str, object], param: str
) -> None:
    svc, _ = service
    with pytest.raises(BadRequest) as err:
        await provider(svc).complete(Endpoint.EMBEDDINGS, {"model": "m", "input": "ok", **change})
    assert err.value.param == param


async def test_chat_and_streams_are_refused(service: tuple[EmbeddingService, Metrics]) -> None:
    svc, _ = service
    with pytest.raises(BadRequest, match="embeddings model"):
        await provider(svc).complete(Endpoint.CHAT, {"model": "m", "messages": []})
    with pytest.raises(BadRequest, match="streamed"):
        await provider(svc).open_stream(Endpoint.EMBEDDINGS, {"model": "m", "input": "x"})
