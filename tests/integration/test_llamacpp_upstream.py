"""A real self-hosted upstream: llama-cpp-python's own OpenAI-compatible server with the same
GGUF, standing in for vLLM (which needs a GPU). The gateway forwards to it over HTTP.

Logprobs: llama-cpp-python's server returns chat logprobs only when `top_logprobs` is present
(`logprobs: true` alone answers `"logprobs": null`), which is why a sampled request asks for
`top_logprobs: 0` too. A second gateway samples every request; greedy answers through it must
equal the first gateway's exactly, JSON and streamed, while its metrics record their confidence."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from interlock.providers.local import default_model_path
from tests.support.procs import Gateway, LlamaServer, http_get

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llama(session_tmp: Path) -> Iterator[LlamaServer]:
    server = LlamaServer(session_tmp, str(default_model_path()))
    yield server
    server.stop()


def llama_config(llama: LlamaServer, logprobs_sample: float) -> dict[str, Any]:
    return {
        "models": [
            {"name": "self-hosted", "strategy": "least_inflight",
             "deployments": [{"id": "llama-server", "backend": "openai", "api_base": llama.url, "model": "smollm2",
                              "version": "q4-1"}]},
            {"name": "self-hosted-embed",
             "deployments": [{"id": "llama-embed", "backend": "openai", "api_base": llama.url,
                              "model": "smollm2-embed"}]},
        ],
        "cache": {"memory_bytes": 0},  # every request reaches the model
        "telemetry": {"logprobs_sample": logprobs_sample},
    }  # fmt: skip


@pytest.fixture(scope="module")
def gateway(session_tmp: Path, llama: LlamaServer) -> Iterator[Gateway]:
    gw = Gateway(session_tmp, llama_config(llama, 0.0))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def sampled(session_tmp: Path, llama: LlamaServer) -> Iterator[Gateway]:
    gw = Gateway(session_tmp, llama_config(llama, 1.0))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_chat_through_a_real_model_server(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="self-hosted", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5, temperature=0
    )
    out = raw.parse()
    assert raw.headers["x-interlock-deployment"] == "llama-server"
    assert out.choices[0].message.content
    assert out.usage is not None and out.usage.completion_tokens <= 5


def test_stream_through_a_real_model_server(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="self-hosted",
            messages=[{"role": "user", "content": "Count to three"}],
            max_tokens=8,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_embeddings_through_a_real_model_server(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="self-hosted-embed", input=["one", "two"], encoding_format="float")
    # llama_cpp.server has no pooling setting, so it answers one vector per token; the gateway
    # passes the upstream's answer through unchanged.
    assert [d.index for d in out.data] == [0, 1]
    assert out.data[0].embedding and out.usage.prompt_tokens > 0


GREEDY = {"model": "self-hosted", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8,
          "temperature": 0}  # fmt: skip
CONFIDENCE = {"model": "self-hosted", "deployment": "llama-server", "version": "q4-1"}


def post(gw: Gateway, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(gw.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
    if not body.get("stream"):
        return json.loads(raw)
    return [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]


def comparable(answer: Any) -> Any:
    """llama.cpp stamps every answer with a fresh id and the time; all else is the model's."""
    if isinstance(answer, list):
        return [comparable(a) for a in answer]
    return {k: v for k, v in answer.items() if k not in ("id", "created")}


def metric(gw: Gateway, name: str, **labels: str) -> float:
    total = 0.0
    for line in http_get(gw.url + "/metrics")[2].decode().splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_sampled_logprobs_from_a_real_model_server_are_recorded_and_stripped(
    gateway: Gateway, sampled: Gateway
) -> None:
    expected = post(gateway, GREEDY)
    got = post(sampled, GREEDY)
    assert got["choices"][0]["logprobs"] is None
    assert comparable(got) == comparable(expected)  # the caller's answer, untouched otherwise
    assert metric(sampled, "interlock_logprob_mean_count", **CONFIDENCE) == 1
    assert metric(gateway, "interlock_logprob_mean_count", **CONFIDENCE) == 0
    perplexity = metric(sampled, "interlock_perplexity_sum", **CONFIDENCE)
    assert perplexity >= 1.0

    stream = {**GREEDY, "stream": True}
    expected_events = post(gateway, stream)
    got_events = post(sampled, stream)
    assert all(choice["logprobs"] is None for e in got_events for choice in e["choices"])
    assert comparable(got_events) == comparable(expected_events)
    assert metric(sampled, "interlock_logprob_mean_count", **CONFIDENCE) == 2
    assert metric(sampled, "interlock_itl_seconds_count", **CONFIDENCE) == 1
    assert metric(sampled, "interlock_ttft_seconds_count", **CONFIDENCE) == 1


def test_logprobs_a_caller_asks_a_real_model_server_for_arrive_and_are_recorded(sampled: Gateway) -> None:
    with openai.OpenAI(base_url=sampled.url + "/v1", api_key="unused", max_retries=0) as client:
        before = metric(sampled, "interlock_logprob_mean_count", **CONFIDENCE)
        out = client.chat.completions.create(
            model="self-hosted", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4, temperature=0,
            logprobs=True, top_logprobs=2,
        )  # fmt: skip
        content = out.choices[0].logprobs.content if out.choices[0].logprobs else None
        assert content and all(t.logprob <= 0 for t in content) and len(content[0].top_logprobs) >= 1
        chunks = list(
            client.chat.completions.create(
                model="self-hosted", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4,
                temperature=0, logprobs=True, top_logprobs=1, stream=True,
            )
        )  # fmt: skip
        assert any(c.choices and c.choices[0].logprobs for c in chunks)
    assert metric(sampled, "interlock_logprob_mean_count", **CONFIDENCE) == before + 2
