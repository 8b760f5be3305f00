"""Telemetry of a running gateway (a subprocess) in front of the fake OpenAI-compatible upstream,
read back from its /metrics: errors by class for every class, finish reasons and TTFT and
inter-token latency by deployment version, and logprobs: asked for on a sample of requests,
recorded, and stripped from JSON answers and streams exactly as an unsampled caller gets them,
also through the cache. The same against the real llama.cpp server is in test_llamacpp_upstream.py."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.fake_upstream import WORD_LOGPROBS, FakeUpstream
from tests.support.procs import Gateway, http_get

pytestmark = pytest.mark.integration
MSG = [{"role": "user", "content": "hello"}]


def config(upstream: FakeUpstream, logprobs_sample: float) -> dict[str, Any]:
    def group(name: str, scenario: str, version: str = "v1", **extra: Any) -> dict[str, Any]:
        deployment = {"id": f"{name}-dep", "backend": "openai", "api_base": upstream.base(scenario),
                      "version": version, **extra}  # fmt: skip
        return {"name": name, "deployments": [deployment]}

    return {
        "models": [
            group("lp", "logprobs", "v2"),
            group("len", "length", "v3"),
            group("broken", "fail"),
            group("hang", "hang", timeout=0.3),
            group("limited", "ok"),
            group("rej", "reject-logprobs"),
        ],
        "router": {"retries": 0},
        "limits": {"models": {"limited": {"rpm": 1}}},
        "telemetry": {"logprobs_sample": logprobs_sample},
    }


@pytest.fixture(scope="module")
def sampled(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    """Every chat request is sampled for logprobs."""
    gw = Gateway(session_tmp, config(upstream, 1.0))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def plain(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    """None is: what a caller gets without sampling."""
    gw = Gateway(session_tmp, config(upstream, 0.0))
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeUpstream) -> None:
    upstream.reset()


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in http_get(gw.url + "/metrics")[2].decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def post(gw: Gateway, body: dict[str, Any]) -> tuple[int, bytes]:
    req = urllib.request.Request(gw.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def sse_events(raw: bytes) -> list[Any]:
    return [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]


def without_created(answer: Any) -> Any:
    """The fake stamps `created` with the clock; everything else is deterministic."""
    return {k: v for k, v in answer.items() if k != "created"}


def test_errors_are_counted_by_class(sampled: Gateway) -> None:
    with client(sampled) as c:
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="no-such-model", messages=MSG)  # type: ignore[arg-type]
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="broken", messages=MSG)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as timed_out:
            c.chat.completions.create(model="hang", messages=MSG)  # type: ignore[arg-type]
        assert timed_out.value.status_code == 504
        c.chat.completions.create(model="limited", messages=MSG)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="limited", messages=MSG)  # type: ignore[arg-type]
    assert post(sampled, {"model": "lp", "messages": "not a list"})[0] == 400
    assert http_get(sampled.url + "/no/such/path")[0] == 404

    errors = "interlock_errors_total"
    assert metric(sampled, errors, model="_unknown", deployment="_none", version="_none", **{"class": "client"}) == 3
    assert metric(sampled, errors, model="broken", deployment="broken-dep", version="v1", **{"class": "upstream"}) == 1
    assert metric(sampled, errors, model="hang", deployment="hang-dep", version="v1", **{"class": "timeout"}) == 1
    assert metric(sampled, errors, model="limited", deployment="_none", **{"class": "policy"}) == 1
    assert metric(sampled, errors, **{"class": "internal"}) == 0


def test_finish_reasons_and_latency_carry_the_deployment_version(sampled: Gateway) -> None:
    with client(sampled) as c:
        out = c.chat.completions.create(model="len", messages=MSG)  # type: ignore[arg-type]
    assert out.choices[0].finish_reason == "length"
    assert metric(sampled, "interlock_finish_reasons_total", model="len", deployment="len-dep", version="v3",
                  finish_reason="length") == 1  # fmt: skip
    assert metric(sampled, "interlock_request_seconds_count", model="len", deployment="len-dep", version="v3") == 1
    assert metric(sampled, "interlock_tokens_total", model="len", version="v3", direction="out") == 3


def test_a_stream_observes_time_to_first_token_and_inter_token_latency(plain: Gateway) -> None:
    with client(plain) as c:
        chunks = list(c.chat.completions.create(model="lp", messages=MSG, stream=True))  # type: ignore[arg-type]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "answer with logprobs"
    labels = {"model": "lp", "deployment": "lp-dep", "version": "v2"}
    assert metric(plain, "interlock_ttft_seconds_count", **labels) == 1
    assert metric(plain, "interlock_ttft_seconds_sum", **labels) >= 0.02  # the fake waits 20 ms per word
    assert metric(plain, "interlock_itl_seconds_count", **labels) == 1  # one observation per stream
    itl = metric(plain, "interlock_itl_seconds_sum", **labels)
    assert 0.015 <= itl <= metric(plain, "interlock_itl_max_seconds_sum", **labels) < 1.0
    assert metric(plain, "interlock_finish_reasons_total", finish_reason="stop", **labels) == 1


def test_sampled_logprobs_are_recorded_and_stripped_from_json(
    sampled: Gateway, plain: Gateway, upstream: FakeUpstream
) -> None:
    with client(sampled) as c:
        out = c.chat.completions.create(model="lp", messages=MSG)  # type: ignore[arg-type]
    assert out.choices[0].logprobs is None and out.choices[0].message.content == "answer with logprobs"
    asked = upstream.state.bodies("logprobs")[-1]
    assert asked["logprobs"] is True and asked["top_logprobs"] == 0  # the backend was asked
    status, got = post(sampled, {"model": "lp", "messages": MSG})
    status_plain, expected = post(plain, {"model": "lp", "messages": MSG})
    assert status == status_plain == 200
    assert without_created(json.loads(got)) == without_created(json.loads(expected))
    assert "logprobs" not in upstream.state.bodies("logprobs")[-1]  # the plain gateway did not ask

    labels = {"model": "lp", "deployment": "lp-dep", "version": "v2"}
    assert metric(sampled, "interlock_logprob_mean_count", **labels) == 2  # the first test to sample
    perplexity = 2.718281828 ** (-sum(WORD_LOGPROBS) / len(WORD_LOGPROBS))
    assert metric(sampled, "interlock_perplexity_sum", **labels) == pytest.approx(2 * perplexity, rel=1e-6)
    assert metric(sampled, "interlock_logprob_min_bucket", le="-1.5", **labels) == 2  # min is -1.5
    assert metric(sampled, "interlock_logprob_min_bucket", le="-2.0", **labels) == 0
    assert metric(plain, "interlock_logprob_mean_count", **labels) == 0


def test_sampled_logprobs_are_stripped_from_every_stream_chunk(sampled: Gateway, plain: Gateway) -> None:
    body = {"model": "lp", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}}
    before = metric(sampled, "interlock_logprob_mean_count", model="lp", version="v2")
    status, got = post(sampled, body)
    _, expected = post(plain, body)
    assert status == 200
    got_events, expected_events = sse_events(got), sse_events(expected)
    assert len(got_events) == 6 and got_events == expected_events  # same chunks, `logprobs: null` in each
    assert got.rstrip().endswith(b"data: [DONE]")
    with client(sampled) as c:
        chunks = list(c.chat.completions.create(model="lp", messages=MSG, stream=True))  # type: ignore[arg-type]
    assert all(ch.choices[0].logprobs is None for ch in chunks if ch.choices)
    assert metric(sampled, "interlock_logprob_mean_count", model="lp", version="v2") == before + 2


def test_logprobs_the_caller_asked_for_arrive_and_are_recorded(sampled: Gateway) -> None:
    with client(sampled) as c:
        out = c.chat.completions.create(model="lp", messages=MSG, logprobs=True)  # type: ignore[arg-type]
    assert out.choices[0].logprobs is not None and out.choices[0].logprobs.content is not None
    assert [t.logprob for t in out.choices[0].logprobs.content] == WORD_LOGPROBS
    assert metric(sampled, "interlock_logprob_mean_count", model="lp") >= 1


def test_the_cache_never_hands_sampled_logprobs_to_a_caller_who_did_not_ask(sampled: Gateway) -> None:
    request = {"model": "lp", "messages": [{"role": "user", "content": "cache me"}], "temperature": 0}
    with client(sampled) as c:
        first = c.chat.completions.with_raw_response.create(**request)
        again = c.chat.completions.with_raw_response.create(**request)
        asked = c.chat.completions.with_raw_response.create(**request, logprobs=True)
    assert first.headers["x-interlock-cache"] == "miss" and first.parse().choices[0].logprobs is None
    # The answer was stored after its logprobs were stripped, under the caller's own request.
    assert again.headers["x-interlock-cache"] == "hit" and again.parse().choices[0].logprobs is None
    # A caller who asks for logprobs has another key and gets them.
    assert asked.headers["x-interlock-cache"] == "miss" and asked.parse().choices[0].logprobs is not None


def test_a_backend_that_refuses_logprobs_still_answers_the_sampled_caller(
    sampled: Gateway, upstream: FakeUpstream
) -> None:
    with client(sampled) as c:
        out = c.chat.completions.create(model="rej", messages=MSG)  # type: ignore[arg-type]
    assert out.choices[0].message.content == "answer with logprobs" and out.choices[0].logprobs is None
    assert ["logprobs" in b for b in upstream.state.bodies("reject-logprobs")] == [True, False]
    assert metric(sampled, "interlock_errors_total", model="rej") == 0
