"""The official openai client, sync and async, against `interlock serve` with no config: the
embedded SmolLM2 model, run in-process by llama.cpp, and the all-MiniLM-L6-v2 embeddings model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.support.procs import Gateway, http_get

pytestmark = pytest.mark.integration
MODEL = "smollm2"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def gateway(session_tmp: Path) -> Iterator[Gateway]:
    gw = Gateway(session_tmp, None)  # no --config: the embedded models
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_embedded_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL, "all-minilm-l6-v2"]


def test_the_default_embeddings_model_gives_sentence_vectors(client: openai.OpenAI) -> None:
    out = client.embeddings.create(
        model="all-minilm-l6-v2", input=["how do I reset my password", "I forgot my password", "capital of France"]
    )
    a, b, c = (np.array(d.embedding) for d in out.data)
    assert a.shape == (384,) and float(a @ b) > float(a @ c) + 0.3  # a paraphrase is nearer than another topic


def test_chat_completion_honours_max_tokens_and_reports_usage(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=5, temperature=0)
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 5
    assert out.choices[0].message.content


def test_seed_makes_sampling_repeatable_and_cache_is_bypassed(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=12, temperature=0.9, seed=11)
    a = client.chat.completions.with_raw_response.create(**kwargs, extra_headers={"cache-control": "no-cache"})
    b = client.chat.completions.with_raw_response.create(**kwargs, extra_headers={"cache-control": "no-cache"})
    assert a.headers["x-interlock-cache"] == b.headers["x-interlock-cache"] == "miss"
    assert a.parse().choices[0].message.content == b.parse().choices[0].message.content


def test_stop_sequence_ends_generation(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count: 1, 2, 3, 4, 5, 6"}], max_tokens=40,
        temperature=0, stop=[","],
    )  # fmt: skip
    assert "," not in (out.choices[0].message.content or "")
    assert out.choices[0].finish_reason == "stop"


def test_logprobs_when_asked(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = out.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(tok.logprob <= 0 for tok in content)
    assert len(content[0].top_logprobs) == 2


def test_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_deterministic_request_is_cached_and_replayed_as_a_stream(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0)
    first = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
    first_text = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
    again = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
    again_text = "".join(c.choices[0].delta.content or "" for c in again.parse() if c.choices)
    assert (first.headers["x-interlock-cache"], again.headers["x-interlock-cache"]) == ("miss", "hit")
    assert again_text == first_text


def test_legacy_completions(client: openai.OpenAI) -> None:
    out = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=4, temperature=0)
    assert out.choices[0].text
    assert out.usage is not None and out.usage.completion_tokens <= 4


def test_embeddings_default_base64_and_float(client: openai.OpenAI) -> None:
    as_b64 = client.embeddings.create(model=MODEL, input=["red apple", "green tea"])  # client asks base64
    as_float = client.embeddings.create(model=MODEL, input="red apple", encoding_format="float")
    assert len(as_b64.data) == 2
    assert len(as_b64.data[0].embedding) == len(as_float.data[0].embedding) > 100
    assert as_b64.data[0].embedding[:4] == pytest.approx(as_float.data[0].embedding[:4], rel=1e-5)


def test_errors_have_openai_types(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[])
    assert bad.value.param == "messages"


async def test_async_client_chat_and_stream(gateway: Gateway) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    out = await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, temperature=0)
    assert out.choices[0].message.content
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, stream=True)
    parts = [c async for c in stream]
    assert parts[-1].choices[0].finish_reason in {"length", "stop"}
    await client.close()


def test_health_ready_and_metrics(gateway: Gateway) -> None:
    assert json.loads(http_get(gateway.url + "/healthz")[2]) == {"status": "ok"}
    status, _, body = http_get(gateway.url + "/readyz")
    assert status == 200 and json.loads(body)["deployments"] == {"local": True, "minilm": True}
    metrics = http_get(gateway.url + "/metrics")[2].decode()
    assert 'interlock_requests_total{cache="miss",endpoint="chat/completions",model="smollm2",status="200"}' in metrics
    assert "interlock_tokens_total" in metrics
