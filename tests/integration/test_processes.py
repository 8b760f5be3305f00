"""`--workers N`: several processes on one port, with metrics merged across them; and the
embedded model's bounded queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)

        async def one(i: int) -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": f"q{i}"}]
            )
            return raw.headers["x-request-id"].split("-")[0]  # the prefix names the process

        # The kernel decides which worker accepts a connection; keep sending (bounded) until
        # both have answered.
        prefixes: set[str] = set()
        sent = 0
        while len(prefixes) < 2 and sent < 1200:
            prefixes |= set(await asyncio.gather(*(one(sent + i) for i in range(60))))
            sent += 60
        await client.close()
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
