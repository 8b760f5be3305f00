from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import interlock
from interlock.edge.parse import cache_control, parse_body
from interlock.errors import BadRequest, UpstreamError
from interlock.pipeline import Completion, Endpoint, Pipeline, RequestContext, Result
from interlock.pipeline.runner import Next
from interlock.pipeline.streams import StreamClosed, StreamTap
from interlock.providers.azure import EntraToken
from tests.support.context import context


class Recorder:
    def __init__(self, name: str, log: list[str], short: Result | None = None) -> None:
        self.name, self.log, self.short = name, log, short

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        self.log.append(f"before:{self.name}")
        if self.short is not None:
            result = self.short
        else:
            try:
                result = await call_next(ctx)
            except Exception as exc:
                self.log.append(f"after:{self.name}:{type(exc).__name__}")
                raise
        self.log.append(f"after:{self.name}:ok")
        return result


def ctx() -> RequestContext:
    return context()


async def test_stages_run_before_in_order_and_after_in_reverse() -> None:
    log: list[str] = []

    async def terminal(c: RequestContext) -> Result:
        log.append("terminal")
        return Completion(b"{}")

    await Pipeline([Recorder("a", log), Recorder("b", log)], terminal).run(ctx())
    assert log == ["before:a", "before:b", "terminal", "after:b:ok", "after:a:ok"]


async def test_a_short_circuit_skips_later_stages_and_the_terminal() -> None:
    log: list[str] = []

    async def terminal(c: RequestContext) -> Result:
        raise AssertionError("not reached")

    hit = Completion(b'{"cached":true}')
    result = await Pipeline([Recorder("a", log), Recorder("b", log, hit), Recorder("c", log)], terminal).run(ctx())
    assert result is hit
    assert log == ["before:a", "before:b", "after:b:ok", "after:a:ok"]


async def test_every_stage_that_ran_sees_the_error() -> None:
    log: list[str] = []

    async def terminal(c: RequestContext) -> Result:
        raise UpstreamError("down")

    with pytest.raises(UpstreamError):
        await Pipeline([Recorder("a", log)], terminal).run(ctx())
    assert log == ["before:a", "after:a:UpstreamError"]


async def test_stream_tap_reports_the_end_exactly_once() -> None:
    async def events() -> AsyncIterator[bytes]:
        yield b"1"
        yield b"2"

    seen: list[bytes] = []
    ends: list[BaseException | None] = []
    tap = StreamTap(events(), seen.append, ends.append)
    assert [e async for e in tap] == [b"1", b"2"]
    await tap.aclose()
    assert seen == [b"1", b"2"] and ends == [None]

    closed: list[BaseException | None] = []
    unread = StreamTap(events(), None, closed.append)
    await unread.aclose()  # never started: still ends, exactly once
    assert len(closed) == 1 and isinstance(closed[0], StreamClosed)


def test_parse_body_keeps_unknown_fields_and_names_bad_params() -> None:
    data = parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"x_custom":1}', Endpoint.CHAT, None)
    assert data["x_custom"] == 1
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":5}', Endpoint.CHAT, None)
    assert err.value.param == "temperature"
    azure = parse_body(b'{"input":"hi"}', Endpoint.EMBEDDINGS, "my-deployment")
    assert azure["model"] == "my-deployment"


def test_cache_control_from_header_and_body() -> None:
    body = {"cache": {"no-store": True, "ttl": 30}}
    control = cache_control({b"cache-control": b"no-cache"}, body)
    assert (control.no_cache, control.no_store, control.ttl) == (True, True, 30)
    assert "cache" not in body  # not forwarded upstream
    assert cache_control({b"cache-control": b"max-age=7"}, {}).ttl == 7
    with pytest.raises(BadRequest):
        cache_control({}, {"cache": {"ttl": "soon"}})


class Credential:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str):  # type: ignore[no-untyped-def]
        self.calls += 1

        class Token:
            token = f"t{self.calls}"
            expires_on = 1000 + 3600 * self.calls

        return Token()

    async def close(self) -> None: ...


async def test_entra_token_is_cached_and_refreshed_five_minutes_before_expiry() -> None:
    now = [1000.0]
    cred = Credential()
    token = EntraToken(cred, "scope", clock=lambda: now[0])
    assert await token.get() == "t1"
    now[0] = 1000 + 3600 - 301
    assert await token.get() == "t1" and cred.calls == 1
    now[0] = 1000 + 3600 - 299
    assert await token.get() == "t2" and cred.calls == 2


def test_public_api() -> None:
    assert set(interlock.__all__) == {
        "ConfigError", "InterlockError", "Settings", "build", "create_app", "default_settings",
        "load_settings", "parse_settings",
    }  # fmt: skip
