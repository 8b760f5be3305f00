"""The gateway in front of a fake OpenAI-compatible upstream that fails on demand: retries,
Retry-After, fallbacks, timeouts, circuit breaking, broken streams, cancellation, coalescing,
pass-through of fields we do not model, and bad input."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, free_port, http_get

pytestmark = pytest.mark.integration
MSG = [{"role": "user", "content": "hello"}]


def deployment(id_: str, api_base: str, **extra: object) -> dict[str, object]:
    return {"id": id_, "backend": "openai", "api_base": api_base, **extra}


@pytest.fixture(scope="module", params=["native", "aiohttp"])
def gateway(request: pytest.FixtureRequest, session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    """Every test here runs against both upstream transports."""
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here: connection refused
    groups = [
        ("ok", [deployment("ok", upstream.base("ok"), model="upstream-name")], {}),
        ("retry", [deployment("fail-once", upstream.base("fail-once"))], {}),
        ("ratelimited", [deployment("rl", upstream.base("ratelimit-once"))], {}),
        ("refused", [deployment("refused", closed)], {"fallbacks": ["ok"]}),
        ("refused-only", [deployment("refused-only", closed)], {}),
        ("hang", [deployment("hang", upstream.base("hang"), timeout=0.3)], {}),
        ("broken", [deployment("broken", upstream.base("fail"))], {}),
        ("cut", [deployment("cut", upstream.base("cut"))], {}),
        ("slow", [deployment("slow", upstream.base("slow"))], {}),
        ("slow-stream", [deployment("slow-stream", upstream.base("slow-stream"))], {}),
        ("reject", [deployment("reject", upstream.base("reject"))], {}),
        ("slow-reject", [deployment("slow-reject", upstream.base("slow-reject"))], {}),
    ]
    config = {
        "models": [{"name": n, "deployments": d, **extra} for n, d, extra in groups],
        "router": {
            "retries": 2,
            "backoff_base": 0.01,
            "circuit": {"failures": 3, "window": 60, "cooldown": 60},
        },
        "server": {"max_body_bytes": 1_000_000},
        "upstream": {"client": request.param},
    }
    gw = Gateway(session_tmp, config)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def metric(gateway: Gateway, prefix: str) -> float:
    text = http_get(gateway.url + "/metrics")[2].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_retry_after_a_500_succeeds(client: openai.OpenAI, upstream: FakeUpstream, gateway: Gateway) -> None:
    out = client.chat.completions.create(model="retry", messages=MSG)
    assert out.choices[0].message.content == "answer from fail-once"
    assert upstream.state.calls["fail-once"] == 2
    assert metric(gateway, 'interlock_retries_total{deployment="fail-once"') >= 1


def test_429_retry_after_is_honoured(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    started = time.monotonic()
    out = client.chat.completions.create(model="ratelimited", messages=MSG)
    assert out.choices[0].message.content == "answer from ratelimit-once"
    assert upstream.state.calls["ratelimit-once"] == 2
    assert time.monotonic() - started >= 0.9  # waited out Retry-After: 1 before the second call


def test_connection_refused_falls_back_to_another_group(client: openai.OpenAI, gateway: Gateway) -> None:
    raw = client.chat.completions.with_raw_response.create(model="refused", messages=MSG)
    assert raw.parse().choices[0].message.content == "answer from ok"
    assert raw.headers["x-interlock-fallback"] == "ok"
    assert metric(gateway, 'interlock_fallbacks_total{model="refused",to_model="ok"}') >= 1


def test_connection_refused_without_fallback_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="refused-only", messages=MSG)
    assert err.value.status_code == 502


def test_upstream_past_its_timeout_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="hang", messages=MSG)
    assert err.value.status_code == 504
    assert err.value.code == "upstream_timeout"


def test_circuit_opens_and_stops_calling_a_failing_deployment(
    client: openai.OpenAI, upstream: FakeUpstream, gateway: Gateway
) -> None:
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="broken", messages=MSG)
    assert upstream.state.calls["fail"] == 3  # first try and two retries: the circuit opens
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="broken", messages=MSG)
    assert err.value.status_code == 503
    assert upstream.state.calls["fail"] == 3  # not called while open
    assert metric(gateway, 'interlock_circuit_state{deployment="broken"}') == 2


def test_upstream_client_error_passes_through_unretried(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="reject", messages=MSG)
    assert err.value.param == "x"
    assert upstream.state.calls["reject"] == 1


def test_stream_cut_midway_raises_in_the_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="cut", messages=MSG, stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received  # some text arrived before the break
    assert "ended before it was complete" in err.value.message or "failed" in err.value.message


def test_stream_passes_usage_through(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="ok", messages=MSG, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10


def test_unknown_fields_tools_and_response_format_pass_through(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    client.chat.completions.create(
        model="ok", messages=MSG, tools=tools, response_format={"type": "json_object"},
        extra_body={"vendor_knob": {"depth": 3}},
    )  # fmt: skip
    (body,) = upstream.state.bodies("ok")
    assert body["model"] == "upstream-name"
    assert body["vendor_knob"] == {"depth": 3}
    assert body["tools"] == tools and body["response_format"] == {"type": "json_object"}


async def test_client_disconnect_cancels_the_upstream_call(gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"model": "slow", "messages": MSG}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with session.post(
                gateway.url + "/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=0.5)
            ) as resp:
                await resp.read()
    for _ in range(40):
        if upstream.state.disconnected:
            break
        await asyncio.sleep(0.05)
    assert upstream.state.disconnected == ["slow"]
    assert upstream.state.completed == []


async def test_client_leaving_a_stream_closes_the_upstream_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"model": "slow-stream", "messages": MSG, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
    # leaving the block closes our connection part way through the stream
    for _ in range(40):
        if upstream.state.disconnected:
            break
        await asyncio.sleep(0.05)
    assert upstream.state.disconnected == ["slow-stream"]
    assert upstream.state.completed == []


async def test_identical_requests_in_flight_go_upstream_once(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    ask = {"model": "slow", "messages": [{"role": "user", "content": "coalesce me"}], "temperature": 0}
    results = await asyncio.gather(*(client.chat.completions.with_raw_response.create(**ask) for _ in range(8)))
    await client.close()
    assert upstream.state.calls["slow"] == 1
    assert {r.parse().choices[0].message.content for r in results} == {"answer from slow"}
    assert sorted(r.headers["x-interlock-cache"] for r in results) == ["hit"] * 7 + ["miss"]


async def test_waiters_share_the_leaders_error(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    ask = {"model": "slow-reject", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    results = await asyncio.gather(*(client.chat.completions.create(**ask) for _ in range(5)), return_exceptions=True)
    await client.close()
    assert all(isinstance(r, openai.BadRequestError) for r in results)
    assert upstream.state.calls["slow-reject"] == 1


def post_raw(gateway: Gateway, data: bytes, path: str = "/v1/chat/completions") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(gateway.url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        (b'{"model": "ok", "messages": [', 400, None),
        (
            b'{"model": "ok", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}',
            400,
            "max_tokens",
        ),
        (b'{"model": "ok", "messages": []}', 400, "messages"),
        (b'{"model": "ok", "messages": [{"role": "wizard", "content": "hi"}]}', 400, "messages[0].role"),
        (b'{"model": "ok", "messages": [{"role": "user", "content": "caf\xe9"}]}', 400, None),
        (b'["not", "an", "object"]', 400, None),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
        (
            b'{"model": "ok", "messages": [' + b",".join([b'{"role": "user", "content": "x"}'] * 3000) + b"]}",
            400,
            "messages",
        ),
    ],
)
def test_bad_input_gets_a_clear_openai_error(gateway: Gateway, payload: bytes, status: int, param: str | None) -> None:
    got, body = post_raw(gateway, payload)
    assert got == status
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert post_raw(gateway, b'{"model": "ok", "messages": [{"role": "user", "content": "hi"}]}')[0] == 200


def test_body_over_the_limit_is_413(gateway: Gateway) -> None:
    big = b'{"model": "ok", "messages": [{"role": "user", "content": "' + b"a" * 10_000_000 + b'"}]}'
    status, body = post_raw(gateway, big)
    assert status == 413 and body["error"]["code"] == "request_too_large"  # type: ignore[index]
    assert post_raw(gateway, b'{"model": "ok", "messages": [{"role": "user", "content": "hi"}]}')[0] == 200


def test_every_response_carries_a_request_id(gateway: Gateway) -> None:
    status, headers, _ = http_get(gateway.url + "/no/such/path")
    assert status == 404 and headers["x-request-id"]
    req = urllib.request.Request(gateway.url + "/healthz", headers={"x-request-id": "trace-abc-123"})
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["x-request-id"] == "trace-abc-123"
