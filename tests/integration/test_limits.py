"""Rate limits held across processes by Redis: 200 concurrent requests over two gateway processes
against a key limited to 50 requests per minute let exactly 50 through; token reservations are
reconciled with the usage the upstream reports; a cache hit counts as a request and spends no
tokens."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from interlock.security.limits import FLUSH_S
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, Gateway, RedisServer

pytestmark = pytest.mark.integration
SECRET = "limits-test-secret-0123456789"


@pytest.fixture(scope="module")
def setup(session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    redis_server = RedisServer()
    tmp = session_tmp / "limits"
    tmp.mkdir()
    config = {
        "models": [
            {
                "name": "m",
                "deployments": [
                    {
                        "id": "m",
                        "backend": "openai",
                        "api_base": upstream.base("ok"),
                        "price": {"input": 5, "output": 10},
                    }
                ],
            },
            {
                "name": "cached",
                "cache": {"mode": "deterministic"},
                "deployments": [{"id": "cached", "backend": "openai", "api_base": upstream.base("ok")}],
            },
        ],
        "security": {"server_secret": "os.environ/TEST_SECRET", "keys": {"sqlite_path": "keys.db"}},
        "limits": {
            "redis": {"url": redis_server.url, "timeout_ms": 500},
            "tenants": {"metered": {"tpm": 1000}},
        },
    }
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"TEST_SECRET": SECRET}

    def make_key(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "interlock", "keys", "create", "--config", str(path), *args],
            capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, check=True,
        )  # fmt: skip
        return str(json.loads(out.stdout)["key"])

    keys = {
        "fifty": make_key("--name", "fifty", "--rpm", "50"),
        "metered": make_key("--name", "tok", "--tenant", "metered"),
        "budget": make_key("--name", "thrifty", "--budget", "0.0002"),
        "tokens": make_key("--name", "tokens", "--rpm", "1000", "--tpm", "100"),
        "auditor": make_key("--name", "ops", "--role", "auditor"),
    }
    a, b = Gateway(tmp, config, env=env), Gateway(tmp, config, env=env)
    yield {"a": a, "b": b, "keys": keys}
    a.stop()
    b.stop()
    redis_server.stop()


async def post(
    session: aiohttp.ClientSession,
    gw: Gateway,
    key: str,
    max_tokens: int = 16,
    model: str = "m",
    text: str = "hello there",
    temperature: float = 1.0,
) -> tuple[int, dict[str, str]]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    async with session.post(
        gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_two_hundred_concurrent_requests_over_two_processes_let_exactly_fifty_through(
    setup: dict[str, Any],
) -> None:
    key = setup["keys"]["fifty"]
    # Windows are fixed minutes: a burst that straddles two windows may rightly pass 50 in each.
    into_minute = time.time() % 60
    if into_minute > 50:
        await asyncio.sleep(60 - into_minute + 0.1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        results = await asyncio.gather(*(post(session, setup["a" if i % 2 else "b"], key) for i in range(200)))
    statuses = [s for s, _ in results]
    assert statuses.count(200) == 50, Counter(statuses)
    assert statuses.count(429) == 150
    refused = next(h for s, h in results if s == 429)
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["x-ratelimit-limit-requests"] == "50" and refused["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused["x-ratelimit-reset-requests"].removesuffix("s")) <= 60
    served = [h for s, h in results if s == 200]
    assert {h["x-ratelimit-limit-requests"] for h in served} == {"50"}
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for h in served) == list(range(50))


async def test_token_reservations_are_reconciled_with_reported_usage(setup: dict[str, Any]) -> None:
    # The tenant may use 1000 tokens a minute. Each request reserves about 110 (its prompt and
    # max_tokens 100), so without reconciliation only 9 would fit; the upstream reports 10 used,
    # and the reservation is brought down to that once the answer is in.
    key = setup["keys"]["metered"]
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(30):
            status, headers = await post(session, setup["a" if i % 2 else "b"], key, max_tokens=100)
            statuses.append(status)
            # The reconciliation leaves the response path: the other process's adjustment is summed
            # for FLUSH_S, then sent in one round trip. Wait well past that, on a loaded machine too.
            await asyncio.sleep(FLUSH_S * 5)
    assert statuses == [200] * 30
    assert 1000 - 30 * 10 - 110 <= int(headers["x-ratelimit-remaining-tokens"]) <= 1000 - 29 * 10 - 110


async def test_a_spend_budget_stops_a_key_once_used_up(setup: dict[str, Any]) -> None:
    # Each answer reports 7 prompt and 3 completion tokens; at $5 and $10 per million that is
    # $0.000065. A budget of $0.0002 admits requests while less than it is spent: four of them.
    key = setup["keys"]["budget"]
    statuses = []
    async with aiohttp.ClientSession() as session:
        for i in range(6):
            status, _ = await post(session, setup["a" if i % 2 else "b"], key)
            statuses.append(status)
            await asyncio.sleep(0.05)  # the cost is added off the response path
    assert statuses == [200, 200, 200, 200, 429, 429]
    auth = {"Authorization": f"Bearer {setup['keys']['auditor']}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        scraped = ""
        for g in "ab":
            async with session.get(setup[g].url + "/metrics") as resp:
                scraped += await resp.text()
    spent = sum(
        float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines() if line.startswith("interlock_spend_usd_total")
    )
    assert spent >= 4 * 0.000065


async def test_a_cache_hit_counts_as_a_request_and_spends_no_tokens(setup: dict[str, Any]) -> None:
    # The key may use 100 tokens a minute; each call reserves about 30 and uses 10. Once the
    # tokens are used up, calls are refused, but the answer already cached is still served: a hit
    # counts against requests per minute only, and its headers say so.
    key, gw = setup["keys"]["tokens"], setup["a"]
    async with aiohttp.ClientSession() as session:
        status, headers = await post(session, gw, key, model="cached", temperature=0)
        assert status == 200 and headers["x-interlock-cache"] == "miss"
        assert "x-ratelimit-remaining-tokens" in headers
        refused = None
        for i in range(30):  # a new minute in between starts the tokens afresh: bounded, not exact
            status, headers = await post(session, gw, key, model="cached", text=f"call {i}", temperature=0)
            if status == 429:
                refused = headers
                break
            # The reconciliation leaves the response path: the other process's adjustment is summed
            # for FLUSH_S, then sent in one round trip. Wait well past that, on a loaded machine too.
            await asyncio.sleep(FLUSH_S * 5)
        assert refused is not None and refused["x-ratelimit-limit-tokens"] == "100"
        assert int(refused["x-ratelimit-remaining-tokens"]) < 30  # less than the call would reserve
        status, headers = await post(session, gw, key, model="cached", temperature=0)
    assert status == 200 and headers["x-interlock-cache"] == "hit"
    assert "x-ratelimit-remaining-tokens" not in headers and "x-ratelimit-limit-tokens" not in headers
    assert headers["x-ratelimit-limit-requests"] == "1000"
    assert int(headers["x-ratelimit-remaining-requests"]) <= 1000 - 3
