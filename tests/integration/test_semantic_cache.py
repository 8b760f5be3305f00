"""The semantic cache shared by two gateway processes through a Redis of the test's own: an
entry written through one is found through the other by a paraphrase; another question,
another tenant, another temperature miss; an invalidation through one reaches the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, Gateway, RedisServer, json_request

pytestmark = pytest.mark.integration

SECRET = "test-server-secret-0123456789"
FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"  # 0.94 from FRANCE (MiniLM)
OTHER_PARAPHRASE = "Tell me the capital city of France."  # 0.92 from FRANCE
BREAD = "How do I bake bread?"


@pytest.fixture(scope="module")
def pair(session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    redis = RedisServer()
    tmp = session_tmp / "semantic"
    tmp.mkdir()
    config = {
        "models": [
            {
                "name": "m",
                "deployments": [{"id": "ok", "backend": "openai", "api_base": upstream.base("ok")}],
                # Every request is cacheable, so a temperature can be a partition of its own; the
                # timeout is generous: a loaded machine is not what this test is about.
                "cache": {"mode": "always", "semantic": {"threshold": 0.9, "timeout_ms": 3000}},
            }
        ],
        "cache": {"redis": {"url": redis.url, "timeout_ms": 200, "retry_after_s": 0.2}},
        "security": {"server_secret": "os.environ/TEST_SECRET", "keys": {"sqlite_path": "keys.db"}},
    }
    config_path = tmp / "interlock.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {"TEST_SECRET": SECRET, "OPENBLAS_NUM_THREADS": "1"}
    boot = subprocess.run(
        [sys.executable, "-m", "interlock", "keys", "create", "--config", str(config_path), "--name", "boot",
         "--role", "admin"],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, check=True,
    )  # fmt: skip
    admin = json.loads(boot.stdout)["key"]
    a, b = Gateway(tmp, config, env=env), Gateway(tmp, config, env=env)
    try:
        acme = json_request(a, "POST", "/admin/keys", admin, {"name": "acme", "tenant": "acme"})[1]["key"]
        yield {"a": a, "b": b, "admin": admin, "acme": acme}
    finally:
        a.stop()
        b.stop()
        redis.stop()


def ask(gw: Gateway, key: str, text: str, temperature: float = 0, **headers: str) -> dict[str, str]:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, default_headers=headers)
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": text}], temperature=temperature
    )
    assert raw.parse().choices[0].message.content == "answer from ok"
    return {k: raw.headers[k] for k in raw.headers if k.startswith("x-interlock")}


def until_semantic(gw: Gateway, key: str, text: str, deadline_s: float = 10.0) -> dict[str, str]:
    """Ask until the answer is a semantic hit (the entry travels through Redis). no-store: a
    miss must not leave an entry of this process's own to be found next time."""
    deadline = time.monotonic() + deadline_s
    while True:
        headers = ask(gw, key, text, **{"Cache-Control": "no-store"})
        if headers["x-interlock-cache"] == "semantic" or time.monotonic() > deadline:
            return headers
        time.sleep(0.1)


def test_an_entry_written_through_one_process_is_found_through_the_other(pair: dict[str, Any]) -> None:
    a, b, key = pair["a"], pair["b"], pair["admin"]
    assert ask(a, key, FRANCE)["x-interlock-cache"] == "miss"
    on_a = ask(a, key, PARAPHRASE)
    assert on_a["x-interlock-cache"] == "semantic" and float(on_a["x-interlock-similarity"]) >= 0.9
    on_b = until_semantic(b, key, OTHER_PARAPHRASE)
    assert on_b["x-interlock-cache"] == "semantic"
    assert on_b["x-interlock-semantic-entry"] == on_a["x-interlock-semantic-entry"]  # a's entry, found by b


def test_another_question_tenant_or_temperature_misses(pair: dict[str, Any]) -> None:
    a, b, key = pair["a"], pair["b"], pair["admin"]
    ask(a, key, FRANCE)
    assert until_semantic(b, key, PARAPHRASE)["x-interlock-cache"] == "semantic"
    assert ask(b, key, BREAD)["x-interlock-cache"] == "miss"
    assert ask(b, pair["acme"], PARAPHRASE)["x-interlock-cache"] == "miss"  # another tenant
    assert ask(b, key, PARAPHRASE, temperature=0.5)["x-interlock-cache"] == "miss"


def test_a_stricter_threshold_header_misses_a_looser_one_is_ignored(pair: dict[str, Any]) -> None:
    a, key = pair["a"], pair["admin"]
    ask(a, key, FRANCE)
    strict = ask(a, key, PARAPHRASE, **{"x-interlock-semantic-threshold": "0.99", "Cache-Control": "no-store"})
    assert strict["x-interlock-cache"] == "miss"
    loose = ask(a, key, PARAPHRASE, **{"x-interlock-semantic-threshold": "0.1"})
    assert loose["x-interlock-cache"] == "semantic"


def test_an_invalidation_through_one_process_reaches_the_other(pair: dict[str, Any]) -> None:
    a, b, key = pair["a"], pair["b"], pair["admin"]
    ask(a, key, FRANCE)
    assert until_semantic(b, key, PARAPHRASE)["x-interlock-cache"] == "semantic"
    assert json_request(a, "DELETE", "/admin/cache/semantic/m", pair["acme"])[0] == 403  # a user key
    status, body = json_request(a, "DELETE", "/admin/cache/semantic/m", key)
    assert status == 200 and body["dropped"] >= 1
    assert ask(a, key, PARAPHRASE, **{"Cache-Control": "no-store"})["x-interlock-cache"] == "miss"
    deadline = time.monotonic() + 10
    while ask(b, key, PARAPHRASE, **{"Cache-Control": "no-store"})["x-interlock-cache"] == "semantic":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert json_request(a, "DELETE", "/admin/cache/semantic/nope", key)[0] == 404
