from __future__ import annotations

import pytest

from interlock.errors import UpstreamError
from interlock.pipeline import Completion, Pipeline, RequestContext, Result
from interlock.pipeline.runner import Next
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
