"""The Redis tier shared by two gateway processes, and what happens when Redis goes away and
comes back. The test runs its own redis-server so it can stop it mid-run."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, RedisServer, http_get

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(session_tmp: Path, upstream: FakeUpstream, redis_server: RedisServer) -> Iterator[tuple[Gateway, Gateway]]:
    config = {
        "models": [
            {
                "name": "cached",
                "deployments": [{"id": "ok", "backend": "openai", "api_base": upstream.base("ok")}],
            }
        ],
        "cache": {"redis": {"url": redis_server.url, "timeout_ms": 100, "retry_after_s": 0.2}},
    }
    a, b = Gateway(session_tmp, config), Gateway(session_tmp, config)
    yield a, b
    a.stop()
    b.stop()


def ask(gw: Gateway, text: str) -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": text}], temperature=0
    )
    assert raw.parse().choices[0].message.content == "answer from ok"
    return raw.headers["x-interlock-cache"]


def metric(gw: Gateway, prefix: str) -> float:
    text = http_get(gw.url + "/metrics")[2].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_an_answer_cached_by_one_process_is_a_hit_in_the_other(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    assert ask(a, "shared question") == "miss"
    time.sleep(0.1)  # the Redis write leaves the response path
    assert ask(b, "shared question") == "hit"
    assert metric(b, 'interlock_cache_total{result="hit",tier="redis"}') >= 1


def test_slow_redis_is_skipped_within_its_timeout(pair: tuple[Gateway, Gateway], redis_server: RedisServer) -> None:
    a, _ = pair
    errors_before = metric(a, "interlock_cache_errors_total")
    blocker = threading.Thread(
        target=subprocess.run,
        args=(["redis-cli", "-p", str(redis_server.port), "DEBUG", "SLEEP", "1.5"],),
        kwargs={"capture_output": True},
    )
    blocker.start()
    time.sleep(0.2)  # Redis is now frozen for over a second
    try:
        assert ask(a, "while redis is slow") == "miss"  # answered: Redis' 100 ms timeout was not fatal
        assert metric(a, "interlock_cache_errors_total") > errors_before
    finally:
        blocker.join()


def test_redis_down_degrades_to_memory_and_recovers(
    pair: tuple[Gateway, Gateway], redis_server: RedisServer, upstream: FakeUpstream
) -> None:
    a, b = pair
    redis_server.stop()
    # Requests keep working while Redis is gone; the in-process tier still serves repeats.
    assert ask(a, "while redis is down") == "miss"
    assert ask(a, "while redis is down") == "hit"
    assert ask(b, "while redis is down") == "miss"  # not shared: nothing to share it through
    assert metric(a, "interlock_cache_errors_total") >= 1
    redis_server.start()
    time.sleep(0.3)  # past retry_after_s: the next call tries Redis again
    ask(a, "after recovery")
    deadline = time.monotonic() + 5
    while ask(b, "after recovery") != "hit":
        # b's first try after the outage may still be inside its back-off window; it then
        # caches the answer itself, so a later hit proves nothing. Use fresh questions.
        assert time.monotonic() < deadline
        question = f"after recovery {time.monotonic()}"
        ask(a, question)
        time.sleep(0.1)
        if ask(b, question) == "hit":
            break
