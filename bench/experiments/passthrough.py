"""A reference point, not a gateway: the least a Python gateway on the same stack can do.

A raw ASGI app on uvicorn (uvloop, httptools) that reads the body, takes `model` from it with
orjson, and either answers from a dict keyed by the raw body (groups whose cache mode is not
"off") or forwards the bytes with one shared aiohttp session. No validation, routing, retries or
metrics beyond one counter. It speaks the `interlock serve` CLI and config, so bench/run.sh can
measure it in place of Interlock and show the ceiling of uvicorn + aiohttp on this machine:

    BENCH_INTERLOCK=".venv/bin/python bench/experiments/passthrough.py" bench/run.sh
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import aiohttp
import orjson
import uvicorn
import yaml

JSON = (b"content-type", b"application/json")


class Passthrough:
    def __init__(self, config: dict[str, Any]) -> None:
        self.upstreams: dict[str, str] = {}
        self.cached_groups: set[str] = set()
        for group in config["models"]:
            base = group["deployments"][0]["api_base"].rstrip("/")
            self.upstreams[group["name"]] = f"{base}/chat/completions"
            if (group.get("cache") or {}).get("mode", "deterministic") != "off":
                self.cached_groups.add(group["name"])
        self.cache: dict[bytes, bytes] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        self.session: aiohttp.ClientSession | None = None
        self.headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["path"] == "/healthz":
            await self.answer(send, 200, b'{"status":"ok"}', [])
            return
        if scope["path"] == "/metrics":
            lines = [
                f'interlock_requests_total{{model="{m}",cache="{c}",status="200"}} {n}'
                for (m, c), n in self.counts.items()
            ]
            await self.answer(send, 200, "\n".join(lines).encode() + b"\n", [])
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        model = orjson.loads(body)["model"]
        if model in self.cached_groups and (answer := self.cache.get(body)) is not None:
            self.counts[model, "hit"] += 1
            await self.answer(send, 200, answer, [(b"x-interlock-cache", b"hit")])
            return
        assert self.session is not None
        async with self.session.post(self.upstreams[model], data=body, headers=self.headers) as resp:
            answer = await resp.read()
            status = resp.status
        if model in self.cached_groups and status == 200:
            self.cache[body] = answer
        self.counts[model, "miss" if model in self.cached_groups else "none"] += 1
        await self.answer(send, status, answer, [])

    async def answer(self, send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [JSON, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=1000, limit_per_host=256)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            else:
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> int:
    parser = argparse.ArgumentParser(prog="passthrough")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        app = Passthrough(yaml.safe_load(f))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
