"""A corpus full of PII through a gateway with every protection on, then a search of everything
it wrote (its log, /metrics, the audit trail and spool, Redis keys and values of the cache,
limits and vault, every error body) for any raw value: zero found."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.leaks import leaked, writing_everywhere, written
from tests.support.procs import Gateway, RedisServer

pytestmark = pytest.mark.integration

PEOPLE = [
    (
        "maria.garcia@contoso.com",
        "+1 206 555 0143",
        "4539 1488 0343 6467",
        "GB82 WEST 1234 5698 7654 32",
        "219-45-6789",
    ),
    ("li.wei@fabrikam.cn", "+44 20 7946 0958", "5555 5555 5555 4444", "DE89 3704 0044 0532 0130 00", "536-22-1234"),
    ("o.brien@example.ie", "+1 415 555 2671", "3782 822463 10005", "FR14 2004 1010 0505 0001 3M02 606", "078-12-3456"),
]
SECRETS = ["AKIAIOSFODNN7EXAMPLE", "ghp_1234567890abcdefghijABCDEFGHIJ123456"]
RAW = [v for person in PEOPLE for v in person] + SECRETS


@pytest.fixture(scope="module")
def setup(session_tmp: Path, upstream: FakeUpstream):  # type: ignore[no-untyped-def]
    r = RedisServer()
    tmp = session_tmp / "nopii"
    tmp.mkdir()
    policy = {
        "actions": {"EMAIL": "tokenize", "PHONE": "tokenize", "CREDIT_CARD": "mask", "IBAN": "redact",
                    "US_SSN": "tokenize", "SECRET": "block"},
        "classify": {"US_SSN": "restricted"},
    }  # fmt: skip
    gw, path = writing_everywhere(
        tmp, upstream.base("echo"), r.url, {"tokenization_key": "t" * 40, "policies": {"default": policy}}
    )
    yield gw, r, path, tmp
    gw.stop()
    r.stop()


async def send_corpus(gw: Gateway) -> list[bytes]:
    bodies: list[bytes] = []
    async with aiohttp.ClientSession() as session:

        async def post(payload: object, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            async with session.post(
                gw.url + "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    bodies.append(body)

        for email, phone, card, iban, ssn in PEOPLE:
            text = f"Customer {email}, phone {phone}, card {card}, IBAN {iban}, SSN {ssn}."
            for stream in (False, True):
                await post(
                    {
                        "model": "echo",
                        "messages": [{"role": "user", "content": text}],
                        "stream": stream,
                        "temperature": 0,
                    }
                )
            await post({"model": "no-such-model", "messages": [{"role": "user", "content": text}]})
            await post({"model": "echo", "messages": [{"role": email, "content": text}]})  # invalid role
            await post({"model": "echo", "messages": [{"role": "user", "content": text + " key " + SECRETS[0]}]})
            await post(None, raw=b'{"model": "echo", "messages": [{"role": "user", "content": "' + text.encode() + b'"')
        await post({"model": "echo", "messages": [{"role": "user", "content": "token " + SECRETS[1]}]})
    return bodies


def test_no_raw_value_anywhere(setup) -> None:  # type: ignore[no-untyped-def]
    gw, r, path, tmp = setup
    errors = asyncio.run(send_corpus(gw))
    assert len(errors) >= 12  # the bad requests did get errors back
    asyncio.run(asyncio.sleep(0.5))  # audit and cache writes leave the response path
    places = written(gw, path, tmp, r.url)
    places["error bodies"] = "\n".join(b.decode() for b in errors)
    assert places["audit"].count("\n") >= 19
    assert "\ninterlock:cache:" in "\n" + places["redis"] and "\ninterlock:vault:" in "\n" + places["redis"]
    assert '"text"' in places["gateway log"]  # the redacted request log is on, and it was scanned
    leaks = {where: leaked(text, RAW) for where, text in places.items()}
    assert all(not found for found in leaks.values()), leaks
