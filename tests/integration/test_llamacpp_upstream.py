"""A real self-hosted upstream: llama-cpp-python's own OpenAI-compatible server with the same
GGUF, standing in for vLLM (which needs a GPU). The gateway forwards to it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from interlock.providers.local import default_model_path
from tests.support.procs import Gateway, LlamaServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llama(session_tmp: Path) -> Iterator[LlamaServer]:
    server = LlamaServer(session_tmp, str(default_model_path()))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(session_tmp: Path, llama: LlamaServer) -> Iterator[openai.OpenAI]:
    config = {
        "models": [
            {"name": "self-hosted", "strategy": "least_inflight",
             "deployments": [{"id": "llama-server", "backend": "openai", "api_base": llama.url, "model": "smollm2"}]},
            {"name": "self-hosted-embed",
             "deployments": [{"id": "llama-embed", "backend": "openai", "api_base": llama.url,
                              "model": "smollm2-embed"}]},
        ]
    }  # fmt: skip
    gw = Gateway(session_tmp, config)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client
    gw.stop()


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
