"""Embeddings served by the gateway (all-MiniLM-L6-v2 in process), through the official openai
client, with the precomputed store in a real Redis shared by two gateway processes and warmed by
`interlock embeddings warm`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import yaml

from interlock.embeddings.minilm import MiniLmEmbedder
from tests.support.procs import ROOT, Gateway, RedisServer, metric

pytestmark = pytest.mark.integration

MODEL = "all-minilm-l6-v2"
WARMED = ["how do I reset my password", "where is my invoice", "cancel my subscription"]
REDIS_HIT = 'interlock_embedding_store_total{result="hit",tier="redis"}'
MEMORY_HIT = 'interlock_embedding_store_total{result="hit",tier="memory"}'
PASSES = "interlock_embedding_batch_texts_count"


@pytest.fixture(scope="module")
def setup(session_tmp: Path) -> Iterator[dict[str, Any]]:
    redis_server = RedisServer()
    tmp = session_tmp / "embeddings"
    tmp.mkdir()
    config = {
        "models": [{"name": MODEL, "deployments": [{"id": "minilm", "backend": "minilm"}]}],
        "embeddings": {"max_wait_ms": 5, "store": {"redis": {"url": redis_server.url, "timeout_ms": 500}}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    queries = tmp / "queries.txt"
    queries.write_text("\n".join([*WARMED, "", '{"text": "' + WARMED[0] + '"}']) + "\n")
    warm = subprocess.run(
        [sys.executable, "-m", "interlock", "embeddings", "warm", str(queries), "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    gateways = [Gateway(tmp, config), Gateway(tmp, config)]
    try:
        yield {"a": gateways[0], "b": gateways[1], "warm": warm, "tmp": tmp, "config": path}
    finally:
        for gw in gateways:
            gw.stop()
        redis_server.stop()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def test_the_warm_command_stores_each_distinct_query(setup: dict[str, Any]) -> None:
    warm = setup["warm"]
    assert warm.returncode == 0, warm.stderr
    assert "warmed 3 distinct queries" in warm.stdout  # the JSON line repeats the first one


def test_a_warmed_query_is_served_from_redis_without_a_forward_pass(setup: dict[str, Any]) -> None:
    gw = setup["a"]
    passes = metric(gw, PASSES)
    answer = client(gw).embeddings.create(model=MODEL, input=WARMED[1])  # the client asks for base64
    vector = np.array(answer.data[0].embedding)
    reference = MiniLmEmbedder().embed([WARMED[1]])[0]
    np.testing.assert_allclose(vector, reference, atol=1e-5)
    assert answer.usage.prompt_tokens > 0
    assert metric(gw, REDIS_HIT) >= 1
    assert metric(gw, PASSES) == passes


def test_a_vector_computed_by_one_gateway_is_found_by_the_other(setup: dict[str, Any]) -> None:
    a, b = setup["a"], setup["b"]
    text = "a question neither gateway has seen before"
    first = client(a).embeddings.create(model=MODEL, input=[text], encoding_format="float")
    hits = metric(b, REDIS_HIT)
    passes = metric(b, PASSES)
    second = client(b).embeddings.create(model=MODEL, input=[text], encoding_format="float")
    assert second.data[0].embedding == pytest.approx(first.data[0].embedding, abs=1e-6)
    assert metric(b, REDIS_HIT) == hits + 1 and metric(b, PASSES) == passes
    client(b).embeddings.create(model=MODEL, input=[text])
    assert metric(b, MEMORY_HIT) >= 1  # and then from its own memory


def test_the_azure_path_and_dimensions(setup: dict[str, Any]) -> None:
    gw = setup["a"]
    azure = openai.AzureOpenAI(azure_endpoint=gw.url, api_key="unused", api_version="2024-10-21", max_retries=0)
    answer = azure.embeddings.create(model=MODEL, input=["cancel my subscription", "thanks"], dimensions=32)
    assert [len(d.embedding) for d in answer.data] == [32, 32]
    assert np.linalg.norm(answer.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_bad_requests_are_openai_errors(setup: dict[str, Any]) -> None:
    c = client(setup["a"])
    with pytest.raises(openai.BadRequestError) as err:
        c.embeddings.create(model=MODEL, input="x", dimensions=1000)
    assert err.value.body["param"] == "dimensions"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "embeddings model" in err.value.body["message"]  # type: ignore[index]


def test_a_malformed_line_fails_the_warm_command_naming_the_line_not_its_text(setup: dict[str, Any]) -> None:
    bad = setup["tmp"] / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"name": "jane.doe@example.com"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "interlock", "embeddings", "warm", str(bad), "--config", str(setup["config"])],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "bad.jsonl:2" in done.stderr and "jane.doe" not in done.stderr
