"""The HTTP side the rollout benchmark runs in its own process (aiohttp, one port):

- `/{version}/v1/chat/completions`: a fake model speaking OpenAI's chat completion wire format,
  one path prefix per model version (`VERSIONS`): `v1` (stable) and `v2-healthy` answer in 20-60 ms;
  `v2-flaky` answers the same way but fails `flaky_share` of its requests with HTTP 500 and an
  OpenAI error body; `v2-slow` adds `slow_extra_ms` to every answer. Worse models that answer
  HTTP 200 at the stable latency (issue 17): `v2-identical` is the stable model again,
  `v2-offtopic` answers from another vocabulary, `v2-refusal` declines every request,
  `v2-rambling` pads its answer to 5-9 times the length (cut at `max_tokens` words, finish reason
  `length`), `v2-json` answers prose when `response_format` asks for a JSON object (which the
  others then give: `{"answer": "..."}`).
- `/hooks/alerts`: the alert webhook (Interlock's plain JSON payload: `RolloutAborted` posts).

Every call is recorded with the request's tag (`[req N]` in the user message, put there by the
load generator), so the benchmark knows which version a caller's request reached even when the
gateway answered it with an error (error answers carry no `x-interlock-deployment`), and which
calls were shadow copies (a second call with the same tag, made after the caller's answer).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from procs import serve

VERSIONS = ("v1", "v2-healthy", "v2-flaky", "v2-slow", "v2-identical", "v2-offtopic", "v2-refusal", "v2-rambling",
            "v2-json")  # fmt: skip
TAG = re.compile(r"\[req (\d+)\]")
_SENTENCE = (
    "the request was handled and the account settings were updated as asked; the change applies at the next "
    "sign-in and a confirmation was sent to the address on file"
)
WORDS = tuple(_SENTENCE.split(" "))
_ELSEWHERE = (
    "bananas ripen faster beside apples because ethylene gas speeds their softening in a warm kitchen bowl overnight "
    "while cold storage slows it down for weeks"
)
OFF_TOPIC = tuple(_ELSEWHERE.split(" "))
REFUSAL = "I'm sorry, but I can't help with that request."


@dataclass(slots=True)
class Call:
    at: float  # time.time() when the answer was sent
    tag: int | None
    version: str
    status: int


@dataclass(slots=True)
class Hook:
    at: float
    body: dict[str, Any]


@dataclass(slots=True)
class FakeUpstream:
    seed: int = 7
    base_ms: tuple[float, float] = (20.0, 60.0)
    flaky_share: float = 0.20
    slow_extra_ms: float = 300.0
    calls: list[Call] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)
    port: int = 0
    _rng: random.Random = field(init=False)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{version}/v1/chat/completions", self._chat)
        app.router.add_post("/hooks/alerts", self._hook)
        self._runner, self.port = await serve(app)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def base(self, version: str) -> str:
        return f"http://127.0.0.1:{self.port}/{version}/v1"

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/alerts"

    async def _chat(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in VERSIONS:
            raise web.HTTPNotFound()
        body = orjson.loads(await request.read())
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", ()))
        found = TAG.search(prompt)
        tag = int(found[1]) if found else None
        delay_ms = self._rng.uniform(*self.base_ms) + (self.slow_extra_ms if version == "v2-slow" else 0.0)
        fail = version == "v2-flaky" and self._rng.random() < self.flaky_share
        await asyncio.sleep(delay_ms / 1000)
        if fail:
            self.calls.append(Call(time.time(), tag, version, 500))
            error = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                               "type": "server_error", "param": None, "code": None}}  # fmt: skip
            return web.Response(status=500, body=orjson.dumps(error), content_type="application/json")
        text, n, finish = self._text(version, body)
        prompt_tokens = max(1, len(prompt) // 4)
        answer = {
            "id": f"chatcmpl-{version}-{self._rng.getrandbits(48):012x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{body.get('model', 'fake')}-{version}",
            "system_fingerprint": f"fp_{version}",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                 "logprobs": None}
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
        }  # fmt: skip
        self.calls.append(Call(time.time(), tag, version, 200))
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    def _text(self, version: str, body: dict[str, Any]) -> tuple[str, int, str]:
        """The answer's text, its length in words (the completion tokens) and its finish reason."""
        fmt = body.get("response_format")
        wants_json = isinstance(fmt, dict) and fmt.get("type") == "json_object"
        if version == "v2-refusal":
            return REFUSAL, len(REFUSAL.split()), "stop"
        n = self._rng.randint(8, 30)
        words = OFF_TOPIC if version == "v2-offtopic" else WORDS
        finish = "stop"
        if version == "v2-rambling":
            n *= self._rng.randint(5, 9)
            limit = int(body.get("max_tokens") or 4096)
            if n > limit:
                n, finish = limit, "length"
        text = " ".join(self._rng.choice(words) for _ in range(n)).capitalize() + "."
        if wants_json and version != "v2-json" and finish == "stop":
            text = orjson.dumps({"answer": text}).decode()
        return text, n, finish

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append(Hook(time.time(), orjson.loads(await request.read())))
        return web.Response(status=200)
