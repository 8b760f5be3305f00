"""Which request paths leave reference cycles (garbage only gc can free), per request, in-process.

    PYTHONPATH=/tmp/ilhead/src .venv/bin/python bench/experiments/cycles.py [--fix runner,pool]

Drives the real ASGI app (interlock.app.build) directly, under uvloop, no HTTP server:
  failed    the deployment's port refuses connections: 502 (also 503 once the circuit opens)
  cancelled the upstream accepts and never answers; the client disconnects after 20 ms, so the
            disconnect watch cancels the request mid-call (what wrk does when a run ends)
  ok        a tiny local upstream answers 200 at once (cache off): the normal miss path
  hit       the same body to a cached group: the cache-hit path
For each: gc.DEBUG_SAVEALL, N requests, gc.collect(), then garbage objects per request by type.

--fix applies candidate fixes by monkeypatching (src/ is not edited):
  runner    Pipeline.run drops its `error` local before the frame ends (no exc->tb->frame->exc)
  pool      _Connection drops its httptools parser when the connection is lost or aborted
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
from typing import Any

import orjson
import uvloop
from memprobe import cycle_path

from interlock.app import build
from interlock.config import parse_settings
from interlock.pipeline import runner
from interlock.providers import pool

ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})  # fmt: skip


def apply_fixes(fixes: set[str]) -> None:
    if "runner" in fixes:
        original = runner.Pipeline.run

        async def run(self: runner.Pipeline, ctx: Any) -> Any:
            # Same logic as src/interlock/pipeline/runner.py, with the `error` local cleared
            # once raised, so the exception's traceback does not keep a frame that keeps it.
            ran = 0
            result = None
            error: BaseException | None = None
            try:
                for stage in self._stages:
                    ran += 1
                    result = await stage.before(ctx)
                    if result is not None:
                        break
                else:
                    result = await self._terminal(ctx)
            except BaseException as exc:
                error = exc
            for stage in reversed(self._stages[:ran]):
                try:
                    result = await stage.after(ctx, result, error)
                except BaseException as exc:
                    error = exc
            if error is not None:
                try:
                    raise error
                finally:
                    error = None
            assert result is not None
            return result

        assert original is not None
        runner.Pipeline.run = run  # type: ignore[method-assign]
    if "pool" in fixes:
        conn = pool._Connection
        lost = conn.connection_lost

        def connection_lost(self: Any, exc: Exception | None) -> None:
            lost(self, exc)
            self.parser = None  # parser -> bound methods -> self: the cycle

        conn.connection_lost = connection_lost  # type: ignore[method-assign]


async def upstream(mode: str) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if mode == "never":
                    await asyncio.sleep(3600)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(ANSWER), ANSWER))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def settings(ok_port: int, never_port: int) -> Any:
    def group(name: str, port: int, cache: str) -> dict[str, Any]:
        return {"name": name, "cache": {"mode": cache, "ttl": 3600},
                "deployments": [{"backend": "openai", "id": name, "api_base": f"http://127.0.0.1:{port}/v1",
                                 "api_key": "x", "timeout": 30}]}  # fmt: skip

    return parse_settings({
        "server": {"log_level": "error"},
        "router": {"retries": 0},
        "models": [group("failed", 1, "off"), group("cancelled", never_port, "off"),
                   group("ok", ok_port, "off"), group("hit", ok_port, "deterministic")],
    })  # fmt: skip


async def request(app: Any, model: str, disconnect_after: float | None) -> int:
    body = orjson.dumps({"model": model, "temperature": 0 if model == "hit" else 1,
                         "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    sent_body = False
    status = 0
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnect_after is not None:
            await asyncio.sleep(disconnect_after)
        else:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            done.set()

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}  # fmt: skip
    await app(scope, receive, send)
    return status


async def main(fixes: set[str], n: int, cycles_of: list[str]) -> None:
    apply_fixes(fixes)
    ok_server, ok_port = await upstream("ok")
    never_server, never_port = await upstream("never")
    app = build(settings(ok_port, never_port))
    await app._on_startup()
    gc.set_threshold(700, 10, 10)  # the probe decides when to collect, not tune_gc
    gc.unfreeze()
    for model, disconnect in (("failed", None), ("cancelled", 0.02), ("ok", None), ("hit", None)):
        await request(app, model, disconnect)  # warm: the first call connects, caches, etc.
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        statuses: collections.Counter[int] = collections.Counter()
        for _ in range(n):
            statuses[await request(app, model, disconnect)] += 1
        await asyncio.sleep(0.05)  # aborted connections finish closing
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
        types = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage)
        print(f"{model:<10} statuses {dict(statuses)}: {len(garbage) / n:6.1f} garbage objects per request;"
              f" top {[(k.split('.')[-1], round(v / n, 1)) for k, v in types.most_common(8)]}")  # fmt: skip
        if garbage and cycles_of:
            for wanted in cycles_of:
                start = next((o for o in garbage if type(o).__qualname__ == wanted), None)
                if start is not None:
                    print(f"    cycle through {wanted}:\n      " + "\n      ".join(cycle_path(start, garbage)))
        del garbage
        gc.collect()
    await app._on_shutdown()
    ok_server.close()
    never_server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--fix", default="")
    p.add_argument("-n", type=int, default=200)
    p.add_argument("--cycles", default="", help="type names to print one reference cycle for")
    a = p.parse_args()
    fixes = {f for f in a.fix.split(",") if f}
    print(f"fixes: {sorted(fixes) or 'none'}")
    uvloop.run(main(fixes, a.n, [c for c in a.cycles.split(",") if c]))
