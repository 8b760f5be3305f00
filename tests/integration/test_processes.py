"""`--workers N`: several processes on one port, with metrics merged across them; and the
embedded model's bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
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


def listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                out.add(target[8:-1])
    return out


def assert_one_socket_each(gw: Gateway) -> None:
    workers = [int(pid) for pid in Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()]
    assert len(workers) == 2
    listening = listening_inodes(gw.port)
    assert len(listening) == 2  # one socket per worker, in one SO_REUSEPORT group
    assert [len(socket_inodes(pid) & listening) for pid in workers] == [1, 1]
    assert socket_inodes(workers[0]) & socket_inodes(workers[1]) & listening == set()
    assert not socket_inodes(gw.proc.pid) & listening  # the parent kept none open


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT groups and /proc are Linux's")
async def test_each_worker_accepts_on_its_own_socket_and_a_burst_reaches_both(
    session_tmp: Path, upstream: FakeUpstream
) -> None:
    config = {
        "models": [{"name": "m", "deployments": [{"id": "ok", "backend": "openai", "api_base": upstream.base("ok")}]}]
    }
    gw = Gateway(session_tmp, config, workers=2)
    try:
        assert_one_socket_each(gw)
        # Both workers ready (each answers on its own socket, so wait for both), then 64 new
        # connections at once, as wrk opens them: the kernel spreads them by their addresses.
        body = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0)) as session:

            async def one() -> str:
                async with session.post(gw.url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    return resp.headers["x-request-id"].split("-")[0]  # the prefix names the process

            seen: set[str] = set()
            deadline = time.monotonic() + 30
            while len(seen) < 2 and time.monotonic() < deadline:
                seen |= set(await asyncio.gather(*(one() for _ in range(8))))
            assert len(seen) == 2
            burst = await asyncio.gather(*(one() for _ in range(64)))
        shares = sorted(burst.count(prefix) for prefix in seen)
        assert sum(shares) == 64 and shares[0] >= 12, shares  # Binomial(64, 1/2) is below 12 once in 10^5
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
