"""A fake OpenAI-compatible (and Azure OpenAI) upstream speaking the real wire format.

It stands in for what cannot run here (Azure) and for failures a real server will not produce
on demand. The scenario is the first path segment, so one server can play many deployments:
`http://127.0.0.1:PORT/{scenario}/v1` as an `api_base`.

Scenarios: ok, fail-once (500 on the first call per scenario, then ok), fail (always 500),
hang (sleeps past any timeout), reject (400), slow-reject (400 after 0.5 s), ratelimit-once (429 with Retry-After: 1, then ok), cut (a stream
that stops part way without [DONE]), slow (answers after 2 s and records whether the caller
went away first), slow-stream (a 5 s stream that records the same), unavailable (503), logprobs (token
logprobs in OpenAI's wire format when asked, `"logprobs": null` otherwise, in JSON and in every
stream chunk), length (finish_reason "length"), reject-logprobs (400 when logprobs are asked for, as
Azure's reasoning models answer; otherwise as logprobs), flaky (500 on three calls in ten, the
3rd, 6th and 9th of every ten to this scenario: a canary candidate that fails 30% of requests), refuse
(HTTP 200 with a refusal: a canary candidate worse in quality only). Azure: `/azure/openai/deployments/{name}/...`
checks the api-version query and the api-key or bearer token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

AZURE_KEY = "azure-test-key"
AZURE_TOKEN = "entra-test-token"
IDENTITY_HEADER = "identity-header-secret"


@dataclass
class Seen:
    scenario: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class UpstreamState:
    seen: list[Seen] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    disconnected: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    def bodies(self, scenario: str) -> list[dict[str, Any]]:
        return [s.body for s in self.seen if s.scenario == scenario]


def chat_answer(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None, **choice: Any) -> bytes:
    event = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, **choice, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(event) + b"\n\n"


# The logprob of each word the `logprobs` scenario answers, in order (then -0.5 for any more).
WORD_LOGPROBS = [-0.25, -1.5, -0.05]


def token_logprobs(word: str, logprob: float) -> dict[str, Any]:
    """One entry of `choices[].logprobs.content`, as OpenAI sends it (top_logprobs empty when
    `top_logprobs` is 0 or absent)."""
    return {"token": word, "logprob": logprob, "bytes": list(word.encode()), "top_logprobs": []}


class FakeUpstream:
    def __init__(self) -> None:
        self.state = UpstreamState()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.jwks: dict[str, Any] = {"keys": []}  # what /oidc/jwks serves; tests set it
        # A HashiCorp Vault (KV v2, AppRole login) of the tests: mount/path -> data.
        self.vault: dict[str, dict[str, str]] = {}
        self.vault_approle = ("role-1", "secret-1")
        self.vault_tokens: set[str] = set()

    # -- lifecycle (runs on its own thread and loop, beside the test) -----------------------------
    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/azure/openai/deployments/{deployment}/{endpoint:.*}", self._azure)
        app.router.add_get("/azure/openai/models", self._azure_models)
        app.router.add_get("/identity", self._identity)
        app.router.add_get("/oidc/.well-known/openid-configuration", self._oidc_discovery)
        app.router.add_get("/oidc/jwks", self._oidc_jwks)
        app.router.add_post("/v1/auth/approle/login", self._vault_login)
        app.router.add_get("/v1/auth/token/lookup-self", self._vault_lookup)
        app.router.add_get("/v1/{mount}/data/{path:.*}", self._vault_read)
        app.router.add_post("/{scenario}/v1/{endpoint:.*}", self._openai)
        app.router.add_get("/{scenario}/v1/models", self._models)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def base(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}/v1"

    def reset(self) -> None:
        self.state = UpstreamState()

    # -- handlers ------------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _identity(self, request: web.Request) -> web.Response:
        """An App Service managed-identity endpoint, as azure-identity's ManagedIdentityCredential
        calls it when IDENTITY_ENDPOINT and IDENTITY_HEADER are set."""
        self.state.calls["identity"] += 1
        self.state.seen.append(Seen("identity", request.path, dict(request.query), dict(request.headers), {}))
        if request.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            return web.json_response({"error": "bad identity header"}, status=401)
        return web.json_response(
            {
                "access_token": AZURE_TOKEN,
                "expires_on": str(int(time.time()) + 3600),
                "resource": request.query.get("resource", ""),
                "token_type": "Bearer",
            }
        )

    async def _oidc_discovery(self, request: web.Request) -> web.Response:
        self.state.calls["oidc-discovery"] += 1
        return web.json_response({"issuer": self.issuer(), "jwks_uri": self.issuer() + "/jwks"})

    async def _oidc_jwks(self, request: web.Request) -> web.Response:
        self.state.calls["oidc-jwks"] += 1
        return web.json_response(self.jwks)

    async def _vault_login(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.state.calls["vault-login"] += 1
        if (body.get("role_id"), body.get("secret_id")) != self.vault_approle:
            return web.json_response({"errors": ["invalid role or secret ID"]}, status=400)
        token = f"hvs.{len(self.vault_tokens) + 1}"
        self.vault_tokens.add(token)
        return web.json_response({"auth": {"client_token": token, "lease_duration": 3600, "renewable": True}})

    async def _vault_lookup(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Vault-Token") not in self.vault_tokens:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        return web.json_response({"data": {"ttl": 3600}})

    async def _vault_read(self, request: web.Request) -> web.Response:
        self.state.calls["vault-read"] += 1
        if request.headers.get("X-Vault-Token") not in self.vault_tokens:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        key = f"{request.match_info['mount']}/{request.match_info['path']}"
        if key not in self.vault:
            return web.json_response({"errors": []}, status=404)
        return web.json_response({"data": {"data": self.vault[key], "metadata": {"version": 1, "deletion_time": ""}}})

    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/oidc"

    async def _azure_models(self, request: web.Request) -> web.Response:
        if "api-version" not in request.query:
            return web.json_response({"error": {"message": "missing api-version"}}, status=404)
        return web.json_response({"data": []})

    async def _record(self, request: web.Request, scenario: str) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.state.seen.append(Seen(scenario, request.path, dict(request.query), dict(request.headers), body))
        self.state.calls[scenario] += 1
        return body

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request, "azure")
        if not request.query.get("api-version"):
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        auth_ok = request.headers.get("api-key") == AZURE_KEY or (
            request.headers.get("Authorization") == f"Bearer {AZURE_TOKEN}"
        )
        if not auth_ok:
            return web.json_response(
                {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}},
                status=401,
            )
        deployment = request.match_info["deployment"]
        return await self._answer(request, body, "ok", text=f"azure:{deployment}")

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["scenario"]
        body = await self._record(request, scenario)
        n = self.state.calls[scenario]
        flaky = scenario == "flaky" and n % 10 in (3, 6, 9)
        if scenario == "fail" or (scenario == "fail-once" and n == 1) or flaky:
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if scenario == "unavailable":
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        if scenario == "refuse":
            return await self._answer(request, body, scenario, text="I'm sorry, but I can't help with that request.")
        if scenario == "ratelimit-once" and n == 1:
            return web.json_response(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": "1"},
            )
        if scenario == "slow-reject":
            await asyncio.sleep(0.5)
        if scenario == "reject-logprobs" and body.get("logprobs"):
            return web.json_response(
                {"error": {"message": "logprobs is not supported with this model.", "type": "invalid_request_error",
                           "param": "logprobs", "code": "unsupported_parameter"}},
                status=400,
            )  # fmt: skip
        if scenario in ("reject", "slow-reject"):
            return web.json_response(
                {
                    "error": {
                        "message": "bad parameter",
                        "type": "invalid_request_error",
                        "param": "x",
                        "code": None,
                    }
                },
                status=400,
            )
        if scenario == "hang":
            for _ in range(300):
                await asyncio.sleep(0.1)
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=499)
        if scenario == "slow":
            # aiohttp does not cancel handlers when the client goes away: watch the transport.
            for _ in range(40):
                await asyncio.sleep(0.05)
                if request.transport is None or request.transport.is_closing():
                    self.state.disconnected.append(scenario)
                    return web.Response(status=499)
            self.state.completed.append(scenario)
        return await self._answer(request, body, scenario)

    async def _slow_stream(self, request: web.Request, body: dict[str, Any], scenario: str) -> web.StreamResponse:
        """A long stream (an event every 0.1 s for 5 s) that notes whether the caller left early."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(50):
            if request.transport is None or request.transport.is_closing():
                self.state.disconnected.append(scenario)
                return resp
            try:
                await resp.write(chunk(body, {"content": f"w{i} "}))
            except ConnectionError:
                self.state.disconnected.append(scenario)
                return resp
            await asyncio.sleep(0.1)
        self.state.completed.append(scenario)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _echo(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """Answers with the last message's text, and a tool call whose arguments carry it too;
        streamed three characters per chunk, so anything in it gets split across chunks."""
        text = str(body["messages"][-1]["content"])
        arguments = orjson.dumps({"echo": text}).decode()
        if not body.get("stream"):
            answer = chat_answer(body, text)
            answer["choices"][0]["message"]["tool_calls"] = [
                {"id": "call_1", "type": "function", "function": {"name": "echo", "arguments": arguments}}
            ]
            return web.json_response(answer)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(text), 3):
            await resp.write(chunk(body, {"content": text[i : i + 3]}))
        await resp.write(chunk(body, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                       "function": {"name": "echo", "arguments": ""}}]}))  # fmt: skip
        for i in range(0, len(arguments), 4):
            await resp.write(
                chunk(body, {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 4]}}]})
            )
        await resp.write(chunk(body, {}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _with_logprobs(self, request: web.Request, body: dict[str, Any], scenario: str) -> web.StreamResponse:
        """Three words; with `logprobs: true`, each word's logprob (WORD_LOGPROBS), exactly as
        OpenAI's chat API returns them: in the choice (JSON) or in each chunk's choice (stream),
        and `"logprobs": null` when they were not asked for."""
        words = ["answer", " with", " logprobs"]
        asked = bool(body.get("logprobs"))
        finish = "length" if scenario == "length" else "stop"
        logprobs = [
            token_logprobs(w, WORD_LOGPROBS[i] if i < len(WORD_LOGPROBS) else -0.5) for i, w in enumerate(words)
        ]
        if not body.get("stream"):
            answer = chat_answer(body, "".join(words))
            answer["choices"][0]["finish_reason"] = finish
            answer["choices"][0]["logprobs"] = {"content": logprobs, "refusal": None} if asked else None
            return web.json_response(answer)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chunk(body, {"role": "assistant", "content": "", "refusal": None}, logprobs=None))
        for word, entry in zip(words, logprobs, strict=True):
            await asyncio.sleep(0.02)
            await resp.write(
                chunk(body, {"content": word}, logprobs={"content": [entry], "refusal": None} if asked else None)
            )
        await resp.write(chunk(body, {}, finish, logprobs=None))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
                     "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}  # fmt: skip
            await resp.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _answer(
        self, request: web.Request, body: dict[str, Any], scenario: str, text: str | None = None
    ) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        if endpoint == "embeddings":
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
            return web.json_response(
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 2, "total_tokens": 2},
                }
            )
        if endpoint == "completions":
            return web.json_response(
                {
                    "id": "cmpl-fake", "object": "text_completion", "created": 1, "model": body.get("model"),
                    "choices": [{"index": 0, "text": "fake text", "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
                }
            )  # fmt: skip
        if scenario == "slow-stream" and body.get("stream"):
            return await self._slow_stream(request, body, scenario)
        if scenario == "echo":
            return await self._echo(request, body)
        if scenario in ("logprobs", "reject-logprobs", "length"):
            return await self._with_logprobs(request, body, scenario)
        answer_text = text or f"answer from {scenario}"
        if not body.get("stream"):
            return web.json_response(chat_answer(body, answer_text))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chunk(body, {"role": "assistant", "content": ""}))
        for word in answer_text.split(" "):
            await resp.write(chunk(body, {"content": word + " "}))
            await asyncio.sleep(0.01)
        if scenario == "cut":
            # Stop part way: close the connection without finish_reason or [DONE].
            request.transport.close()  # type: ignore[union-attr]
            return resp
        await resp.write(chunk(body, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
                     "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}  # fmt: skip
            await resp.write(b"data: " + orjson.dumps(usage) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
