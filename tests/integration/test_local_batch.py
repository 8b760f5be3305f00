"""The embedded model's batch scheduler (`parallel: N`) through `interlock serve` and the official
openai client: concurrent streams each get their own whole answer, the same text the single path
gives at temperature 0 (and for the same seed), requests it does not batch still answered, the
`max_queue` 503 counted over its sequences, and a cancelled stream freeing its sequence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.procs import Gateway

pytestmark = pytest.mark.integration
# Prompts with an answer that names a word of its own, to tell concurrent answers apart.
ANSWERS = [("Write a sentence about Paris.", "paris"), ("Say hello.", "hello"),
           ("Name the colour of the sky on a clear day.", "blue"), ("Write a sentence about cats.", "cat")]  # fmt: skip
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # at temperature 0 it counts on past 1,500 tokens
NO_CACHE = {"enabled": False}


def _group(name: str, **local: object) -> dict[str, object]:
    deployment = {"id": name, "backend": "local", "embeddings": False, **local}
    return {"name": name, "deployments": [deployment], "cache": NO_CACHE}


@pytest.fixture(scope="module")
def gateway(session_tmp: Path) -> Iterator[Gateway]:
    config = {
        "models": [
            _group("single"),
            _group("batched", parallel=4),
            _group("tight", parallel=2, max_queue=0),
        ]
    }
    gw = Gateway(session_tmp, config)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def _chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


async def test_concurrent_streams_each_get_their_own_whole_answer(gateway: Gateway) -> None:
    aclient = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)

    async def stream(prompt: str) -> tuple[str, str | None, int | None, int]:
        chunks = [
            c
            async for c in await aclient.chat.completions.create(
                model="batched",
                messages=_chat(prompt),
                max_tokens=40,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
        return "".join(texts), finish, chunks[-1].usage.completion_tokens if chunks[-1].usage else None, len(texts)

    got = await asyncio.gather(*(stream(prompt) for prompt, _ in ANSWERS))
    await aclient.close()
    for (text, finish, tokens, pieces), (prompt, word) in zip(got, ANSWERS, strict=True):
        assert word in text.lower(), (prompt, text)  # its own prompt's answer, not a neighbour's
        assert finish in {"stop", "length"} and tokens is not None and pieces <= tokens <= 40


def test_one_at_a_time_the_batched_path_gives_the_single_paths_text(client: openai.OpenAI) -> None:
    for prompt, _ in ANSWERS:
        single = client.chat.completions.create(model="single", messages=_chat(prompt), max_tokens=24, temperature=0)
        streamed = client.chat.completions.create(
            model="batched", messages=_chat(prompt), max_tokens=24, temperature=0, stream=True
        )
        chunks = list(streamed)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert (text, chunks[-1].choices[0].finish_reason) == (
            single.choices[0].message.content,
            single.choices[0].finish_reason,
        )


def test_completions_stop_and_seed_match_the_single_path(client: openai.OpenAI) -> None:
    def both(**kwargs: object) -> list[tuple[str | None, str, int]]:
        answers = []
        for model in ("single", "batched"):
            if "prompt" in kwargs:
                c = client.completions.create(model=model, **kwargs)  # type: ignore[call-overload]
                answers.append((c.choices[0].text, c.choices[0].finish_reason, c.usage.completion_tokens))
            else:
                m = client.chat.completions.create(model=model, **kwargs)  # type: ignore[call-overload]
                answers.append((m.choices[0].message.content, m.choices[0].finish_reason, m.usage.completion_tokens))
        return answers

    completion = both(prompt="The sky is", max_tokens=12, temperature=0)
    assert completion[0] == completion[1] and completion[0][0]
    stopped = both(messages=_chat("Count: 1, 2, 3, 4, 5, 6"), max_tokens=40, temperature=0, stop=[","])
    assert stopped[0][:2] == stopped[1][:2] and stopped[1][1] == "stop" and "," not in (stopped[1][0] or "")
    seeded = both(messages=_chat("Say hello."), max_tokens=16, temperature=0.9, seed=11)
    assert seeded[0] == seeded[1]


def test_logprobs_are_answered_by_the_single_path(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="batched", messages=_chat("Say hello."), max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = out.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content[0].top_logprobs) == 2


def test_full_scheduler_503s_and_cancelled_streams_free_their_sequences(client: openai.OpenAI) -> None:
    # parallel 2, max_queue 0: two streams hold both sequences and nothing may wait.
    streams = [
        client.completions.create(model="tight", prompt=COUNTING, max_tokens=1900, temperature=0, stream=True)
        for _ in range(2)
    ]
    for s in streams:
        assert next(iter(s)).choices[0].text
    with pytest.raises(openai.APIStatusError) as full:
        client.completions.create(model="tight", prompt="Hi", max_tokens=2)
    assert full.value.status_code == 503 and full.value.response.headers["retry-after"] == "2"
    for s in streams:
        s.close()
    # Left running, each stream would hold its sequence for 1,900 tokens (tens of seconds here);
    # cancelled, both are free after the scheduler's next step.
    deadline = time.monotonic() + 15
    while True:
        try:
            out = client.completions.create(model="tight", prompt="Hi", max_tokens=2)
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503 and time.monotonic() < deadline
            time.sleep(0.2)
    assert out.choices[0].text is not None
    both = [client.completions.create(model="tight", prompt=COUNTING, max_tokens=30, stream=True) for _ in range(2)]
    assert all(list(s) for s in both)  # both sequences free, not one
