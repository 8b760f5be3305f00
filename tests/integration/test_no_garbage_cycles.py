"""Requests that fail, that are cancelled part way (the client left) and that are served leave no
reference cycles behind. With the collector tuned to run rarely (server.gc_*), cycles would pile
up as memory; this drives the real ASGI app in process, and the native server (edge/server.py,
which calls the app directly) over a real socket, under gc.DEBUG_SAVEALL, and counts what only
the collector could have freed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import uvloop

from interlock.app import build
from interlock.config import HttpLimits, parse_settings
from interlock.edge.server import HttpServer, bind

pytestmark = pytest.mark.integration


ANSWER = orjson.dumps(
    {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
)  # fmt: skip


async def upstream(answers: bool) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if not answers:
                    await asyncio.sleep(3600)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(ANSWER), ANSWER)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def request_body(model: str) -> bytes:
    return orjson.dumps(
        {"model": model, "temperature": 0 if model == "hit" else 1, "messages": [{"role": "user", "content": "hi"}]}
    )


async def call(app: Any, model: str, leave_after: float | None) -> int:
    body = request_body(model)
    status, first, done = 0, True, asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        await (asyncio.sleep(leave_after) if leave_after is not None else done.wait())
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    return status


Call = Callable[[Any, str, "float | None"], Awaitable[int]]
NOTHING = {"failed": Counter(), "cancelled": Counter(), "ok": Counter(), "hit": Counter()}


def test_no_request_path_leaves_cycles() -> None:
    found = uvloop.run(garbage_per_path(lambda app: contextlib.nullcontext(call)))  # uvicorn's loop="uvloop"
    assert found == NOTHING


def test_no_request_path_leaves_cycles_through_the_native_server() -> None:
    assert uvloop.run(garbage_per_path(served)) == NOTHING


@contextlib.asynccontextmanager
async def served(app: Any) -> Any:
    """The native server serving `app` on a free port; yields a `call` that sends one request on
    a connection of its own (closed after `leave_after` seconds, if given, before the answer)."""
    sock = bind("127.0.0.1", 0, 64)
    server = HttpServer(app, HttpLimits(), max_discard=1024)
    await server.start(sock)
    port = sock.getsockname()[1]

    async def over_http(_: Any, model: str, leave_after: float | None) -> int:
        body = request_body(model)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            if leave_after is not None:
                await asyncio.sleep(leave_after)
                return 499
            head = await reader.readuntil(b"\r\n")
            await reader.read()
            return int(head.split()[1])
        finally:
            writer.close()

    try:
        yield over_http
    finally:
        await server.shutdown()


async def garbage_per_path(calls: Callable[[Any], Any]) -> dict[str, Counter[str]]:
    ok, silent = await upstream(True), await upstream(False)

    def group(name: str, port: int, cache: str) -> dict[str, Any]:
        return {
            "name": name,
            "cache": {"mode": cache},
            "deployments": [{"id": name, "backend": "openai", "api_base": f"http://127.0.0.1:{port}/v1"}],
        }

    ok_port, silent_port = ok.sockets[0].getsockname()[1], silent.sockets[0].getsockname()[1]
    settings = parse_settings({
        "router": {"retries": 0},
        "models": [group("failed", 1, "off"), group("cancelled", silent_port, "off"), group("ok", ok_port, "off"), group("hit", ok_port, "deterministic")],
    })  # fmt: skip
    app = build(settings)
    await app._on_startup()
    gc.unfreeze()
    found: dict[str, Counter[str]] = {}
    try:
        async with calls(app) as send:
            for model, leave in (("failed", None), ("cancelled", 0.02), ("ok", None), ("hit", None)):
                await send(app, model, leave)  # warm up: connect, fill the cache
                await asyncio.sleep(0.05)
                gc.collect()
                gc.disable()
                gc.set_debug(gc.DEBUG_SAVEALL)
                try:
                    statuses = Counter([await send(app, model, leave) for _ in range(30)])
                    await asyncio.sleep(0.05)  # aborted connections finish closing
                    gc.collect()
                    found[model] = Counter(type(o).__qualname__ for o in gc.garbage)
                finally:
                    gc.garbage.clear()
                    gc.set_debug(0)
                    gc.enable()
                assert statuses, model
    finally:
        await app._on_shutdown()
        ok.close()
        silent.close()
    return found
