"""The cost of reading an upload: `edge/forms.py`'s `read_form` (python-multipart) against the
standard library's `email` parser, on an 8 MiB file of random bytes in the body httpx (the
official openai client's transport) encodes, delivered in 64 KiB ASGI messages; median of 5.

    flock /tmp/interlock-bench.lock env PYTHONPATH=src .venv/bin/python bench/multipart_cost.py
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import os
import statistics
import time
from typing import Any

import httpx

from interlock.edge.exchange import Exchange
from interlock.edge.forms import read_form

SIZE = 8 * 1024 * 1024
MESSAGE = 64 * 1024


async def ours(body: bytes, ctype: bytes, data: bytes) -> float:
    messages = [
        {"type": "http.request", "body": body[i : i + MESSAGE], "more_body": i + MESSAGE < len(body)}
        for i in range(0, len(body), MESSAGE)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: object) -> None:
        pass

    headers = {b"content-type": ctype, b"content-length": str(len(body)).encode()}
    ex = Exchange({"type": "http"}, receive, send, headers, "r", asyncio.get_running_loop())  # type: ignore[arg-type]
    started = time.perf_counter()
    form = await read_form(ex, 2 * SIZE)
    seconds = time.perf_counter() - started
    assert bytes(form["file"].data) == data
    return seconds


def stdlib(body: bytes, ctype: bytes, data: bytes) -> float:
    started = time.perf_counter()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype + b"\r\n\r\n" + body
    )
    parts = {
        p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in message.iter_parts()
    }
    seconds = time.perf_counter() - started
    assert parts["file"] == data
    return seconds


def main() -> None:
    data = os.urandom(SIZE)
    request = httpx.Request(
        "POST", "http://x/v1/files", files={"file": ("a.pdf", data)}, data={"purpose": "assistants"}
    )
    body, ctype = request.read(), request.headers["content-type"].encode()
    mine = statistics.median(asyncio.run(ours(body, ctype, data)) for _ in range(5))
    theirs = statistics.median(stdlib(body, ctype, data) for _ in range(5))
    print(
        f"read_form (python-multipart): {mine * 1000:.1f} ms; email.parser: {theirs * 1000:.1f} ms ({theirs / mine:.1f}x)"
    )


if __name__ == "__main__":
    main()
