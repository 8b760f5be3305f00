"""multipart/form-data as httpx (the official openai client's transport) encodes it: parts by
name, binary bytes intact, and a 400 or 413 for what is wrong."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from interlock.edge import forms
from interlock.edge.exchange import Exchange
from interlock.edge.forms import read_form
from interlock.errors import BadRequest, PayloadTooLarge
from interlock.threads import INLINE_BYTES

BINARY = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n" + b"%PDF-1.4\r\n\x00\xff"


def encoded(files: dict[str, tuple[str, bytes]] | None, data: dict[str, str]) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://x/v1/files", files=files, data=data)
    return request.read(), request.headers["content-type"].encode()


def exchange(body: bytes, content_type: bytes, chunk: int = 1000) -> Exchange:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: object) -> None:
        pass

    headers = {b"content-type": content_type, b"content-length": str(len(body)).encode()}
    return Exchange({"type": "http"}, receive, send, headers, "r", asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_the_file_and_the_purpose_come_out_whole() -> None:
    body, ctype = encoded({"file": ("report.pdf", BINARY)}, {"purpose": "assistants"})
    form = await read_form(exchange(body, ctype), 1 << 20)
    assert form["file"].filename == "report.pdf"
    assert bytes(form["file"].data) == BINARY
    assert form["purpose"].filename is None
    assert bytes(form["purpose"].data) == b"assistants"


async def test_a_body_past_the_limit_is_413() -> None:
    body, ctype = encoded({"file": ("a.txt", b"x" * 5000)}, {"purpose": "assistants"})
    with pytest.raises(PayloadTooLarge):
        await read_form(exchange(body, ctype), 1000)


@pytest.mark.parametrize("ctype", [b"application/json", b"multipart/form-data"])
async def test_not_multipart_or_no_boundary_is_400(ctype: bytes) -> None:
    with pytest.raises(BadRequest):
        await read_form(exchange(b"{}", ctype), 1000)


async def test_a_part_without_a_name_is_400() -> None:
    body = b'--b\r\nContent-Disposition: form-data; filename="a"\r\n\r\nx\r\n--b--\r\n'
    with pytest.raises(BadRequest):
        await read_form(exchange(body, b"multipart/form-data; boundary=b"), 1000)


async def test_a_large_form_is_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = forms._parse

    def recording(raw: bytes, boundary: bytes, limit: int) -> dict[str, forms.Part]:
        threads.append(threading.get_ident())
        return real(raw, boundary, limit)

    monkeypatch.setattr(forms, "_parse", recording)
    for size in (100, INLINE_BYTES * 2):
        body, ctype = encoded({"file": ("a.bin", b"y" * size)}, {"purpose": "assistants"})
        assert len((await read_form(exchange(body, ctype), 1 << 24))["file"].data) == size
    assert [t == threading.get_ident() for t in threads] == [True, False]
