"""The HTTP side the benchmark runs in its own process (aiohttp, one port):

- `/v1/chat/completions`: a fake model speaking OpenAI's chat completion wire format, answering as
  `traffic.Answers` does (and sleeping the answer's latency); `refuse` is the share of requests it
  refuses, switched by the benchmark;
- `/hooks/alerts`: the alert webhook (Interlock's plain JSON payload), each post kept with the time
  it arrived and how many requests the benchmark had sent by then;
- `/hooks/retrain`: the retraining action's URL, which receives the drift report of the firing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from procs import serve
from traffic import Answers, completion


@dataclass(slots=True)
class Post:
    at: float  # time.time() on arrival
    sent: int  # requests the benchmark had sent when it arrived
    phase: str
    body: dict[str, Any]


@dataclass(slots=True)
class BenchServer:
    answers: Answers
    sent: Callable[[], int]  # the sender's count, read when a webhook post arrives
    phase: Callable[[], str]
    refuse: float = Answers.BASE_REFUSAL
    answered: int = 0
    slept_s: float = 0.0  # the answers' latencies, summed: the sender's round trips less this is overhead
    alerts: list[Post] = field(default_factory=list)
    retrains: list[Post] = field(default_factory=list)
    posted: asyncio.Event = field(default_factory=asyncio.Event)  # set on every webhook post
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/hooks/alerts", self._alert)
        app.router.add_post("/hooks/retrain", self._retrain)
        self._runner, self.port = await serve(app)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _chat(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        answer = self.answers(self.refuse)
        await asyncio.sleep(answer.latency_ms / 1000)
        self.answered += 1
        self.slept_s += answer.latency_ms / 1000
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", ())) // 4
        payload = completion(body.get("model", "fake"), answer, prompt_tokens)
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _alert(self, request: web.Request) -> web.Response:
        self.alerts.append(Post(time.time(), self.sent(), self.phase(), orjson.loads(await request.read())))
        self.posted.set()
        return web.Response(status=200)

    async def _retrain(self, request: web.Request) -> web.Response:
        self.retrains.append(Post(time.time(), self.sent(), self.phase(), orjson.loads(await request.read())))
        self.posted.set()
        return web.Response(status=200)

    def firing(self, since: float = 0.0) -> list[Post]:
        return [p for p in self.alerts if p.body.get("status") == "firing" and p.at >= since]

    def is_firing(self) -> bool:
        """Whether the last post about the drift alert says it is firing."""
        return bool(self.alerts) and self.alerts[-1].body.get("status") == "firing"
