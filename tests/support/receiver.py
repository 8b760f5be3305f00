"""A webhook receiver for the alert tests: a real aiohttp server on a loopback port, run in the
test's own event loop. Each path can be told to fail its first N posts (with a status) or to fail
them all; everything posted is kept, failed attempts included."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int  # what we answered


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.seen: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.fail_first: dict[str, tuple[int, int]] = {}  # path -> (posts to fail, status)
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()
        self.port = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.attempts[path] += 1
        fail, status = self.fail_first.get(path, (0, 500))
        answer = status if self.attempts[path] <= fail else 200
        body = orjson.loads(await request.read())
        self.seen.append(Received(path, dict(request.query), dict(request.headers), body, answer))
        self._arrived.set()
        return web.Response(status=answer, text="ok" if answer == 200 else "no")

    def delivered(self, path: str) -> list[Any]:
        return [r.body for r in self.seen if r.path == path and r.status == 200]

    async def wait_delivered(self, path: str, n: int, timeout: float = 5.0) -> list[Any]:
        async def until() -> None:
            while len(self.delivered(path)) < n:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(until(), timeout)
        return self.delivered(path)
