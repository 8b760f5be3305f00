"""The Stage protocol and the runner.

`before(ctx)` runs in order and may return a result that short-circuits the rest (a cache hit,
a block). `after(ctx, result, error)` runs in reverse order, only for stages whose `before` ran,
and returns the result to pass outward (a stage may wrap a stream to see its events go by).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .context import RequestContext
from .result import Result


class Stage(Protocol):
    async def before(self, ctx: RequestContext) -> Result | None: ...

    async def after(self, ctx: RequestContext, result: Result | None, error: BaseException | None) -> Result | None: ...


Terminal = Callable[[RequestContext], Awaitable[Result]]


class Pipeline:
    """`traced` are the same stages wrapped in spans (observe.tracing), run for the requests that
    carry a trace; every other request runs the plain stages and pays nothing for tracing."""

    __slots__ = ("_stages", "_terminal", "_traced")

    def __init__(self, stages: Sequence[Stage], terminal: Terminal, traced: Sequence[Stage] | None = None) -> None:
        self._stages = tuple(stages)
        self._traced = tuple(traced) if traced is not None else self._stages
        self._terminal = terminal

    async def run(self, ctx: RequestContext) -> Result:
        ran = 0
        result: Result | None = None
        error: BaseException | None = None
        stages = self._stages if ctx.trace is None else self._traced
        try:
            for stage in stages:
                ran += 1
                result = await stage.before(ctx)
                if result is not None:
                    break
            else:
                result = await self._terminal(ctx)
        except BaseException as exc:  # cancellation too: every stage that ran must see it
            error = exc
        for stage in reversed(stages[:ran]):
            try:
                result = await stage.after(ctx, result, error)
            except BaseException as exc:
                error = exc
        if error is not None:
            try:
                raise error
            finally:
                # The traceback holds this frame; the frame must not hold the exception back, or
                # every failed request becomes a cycle that only the garbage collector frees.
                error = None
        assert result is not None
        return result
