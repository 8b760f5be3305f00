"""`--workers N`: several processes on one port, with metrics merged across them; and the
embedded model's bounded queue."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, http_get

pytestmark = pytest.mark.integration


async def test_two_workers_share_a_port_and_their_metrics_add_up(session_tmp: Path, upstream: FakeUpstream) -> None:
    config = {
        "models": [{"name": "m", "deployments": [{"id": "ok", "backend": "openai", "api_base": upstream.base("ok")}]}]
    }
    gw = Gateway(session_tmp, config, workers=2)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
        # A fresh connection per request: the kernel hands each to whichever worker accepts
        # first, and a worker may still be starting. Keep sending (bounded) until both answered.
        prefixes: set[str] = set()
        sent = 0
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

            async def one() -> str:
                async with session.post(gw.url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    return resp.headers["x-request-id"].split("-")[0]  # the prefix names the process

            while len(prefixes) < 2 and time.monotonic() < deadline:
                prefixes |= set(await asyncio.gather(*(one() for _ in range(20))))
                sent += 20
                await asyncio.sleep(0.05)
        assert len(prefixes) == 2, "both workers should have served requests"
        for _ in range(3):  # whichever worker answers the scrape reports the sum
            text = http_get(gw.url + "/metrics")[2].decode()
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('interlock_requests_total{cache="none",endpoint="chat/completions",model="m"')
            )
            assert total == sent
    finally:
        gw.stop()


async def test_local_queue_full_answers_503_with_retry_after(session_tmp: Path) -> None:
    config = {
        "models": [{"name": "tiny", "deployments": [{"id": "local", "backend": "local", "max_queue": 1,
                                                    "embeddings": False, "retry_after": 3}]}]
    }  # fmt: skip
    gw = Gateway(session_tmp, config)
    try:
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        ask = {"model": "tiny", "messages": [{"role": "user", "content": "Tell a story"}], "max_tokens": 40}
        results = await asyncio.gather(
            *(client.chat.completions.with_raw_response.create(**ask) for _ in range(6)),
            return_exceptions=True,
        )
        await client.close()
        ok = [r for r in results if not isinstance(r, BaseException)]
        full = [r for r in results if isinstance(r, openai.APIStatusError)]
        assert len(ok) >= 2  # one generating, one waiting
        assert full and all(e.status_code == 503 for e in full)
        assert all(e.response.headers["retry-after"] == "3" for e in full)
        assert len(ok) + len(full) == 6
    finally:
        gw.stop()
