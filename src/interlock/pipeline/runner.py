"""The Stage protocol and the runner.

A stage wraps the rest of the pipeline: `await stage(ctx, call_next)` does its work before the
call, calls `call_next(ctx)` (or answers itself: a cache hit, a block), and does its work after
the call, on the result or in an `except`/`finally`. This is the shape of aiohttp's middlewares
and of Starlette's pure ASGI middleware, and it was chosen over `before`/`after` hooks because
a stage's per-request state (a token reservation, the tokens to restore, the cache key) then
lives in the stage's own local variables, in the call, and not in a side table keyed by the
request on a shared object; an error or a cancellation reaches each stage as an exception in
its own frame, so cleanup is an ordinary `finally`.

A stage that wraps a stream (to count tokens, collect events for the cache) returns a new
StreamResult whose iterator is a `StreamTap` or `MappedStream` (`streams.py` says why not an
async generator); its after-work for a stream runs when the stream ends, not when it returns.

The chain is built once, when the pipeline is: each link is a small object holding its stage
and the next link, so a request allocates nothing to walk it. `traced` are the same stages
wrapped in spans (observe/tracing.py), run for the requests that carry a trace; every other
request runs the plain chain and pays nothing for tracing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .context import RequestContext
from .result import Result

Next = Callable[[RequestContext], Awaitable[Result]]
Terminal = Next


class Stage(Protocol):
    """Mostly an `async def`; a stage whose common case is synchronous (a request a rate-limit
    lease covers, a body DLP remembers clean) may be a plain method that returns `call_next(ctx)`
    itself in that case, and a coroutine of its own otherwise: one coroutine fewer per request."""

    def __call__(self, ctx: RequestContext, call_next: Next) -> Awaitable[Result]: ...


class _Link:
    """`stage` with the rest of the chain bound: calling it runs `stage(ctx, rest)`."""

    __slots__ = ("_rest", "_stage")

    def __init__(self, stage: Stage, rest: Next) -> None:
        self._stage = stage
        self._rest = rest

    def __call__(self, ctx: RequestContext) -> Awaitable[Result]:
        return self._stage(ctx, self._rest)


def chain(stages: Sequence[Stage], terminal: Terminal) -> Next:
    """The stages in order around the terminal, as one callable."""
    run: Next = terminal
    for stage in reversed(stages):
        run = _Link(stage, run)
    return run


class Pipeline:
    __slots__ = ("_plain", "_traced", "stages", "traced_stages")

    def __init__(self, stages: Sequence[Stage], terminal: Terminal, traced: Sequence[Stage] | None = None) -> None:
        self.stages = tuple(stages)
        self.traced_stages = tuple(traced) if traced is not None else self.stages
        self._plain = chain(self.stages, terminal)
        self._traced = chain(self.traced_stages, terminal) if traced is not None else self._plain

    def run(self, ctx: RequestContext) -> Awaitable[Result]:
        return (self._plain if ctx.trace is None else self._traced)(ctx)
