"""A RequestContext for stage and router tests: the request as the edge would have parsed it."""

from __future__ import annotations

from typing import Any

from interlock.pipeline.context import Endpoint, Request, RequestContext
from interlock.pipeline.result import Completion, Result
from interlock.pipeline.runner import Stage


def context(
    body: dict[str, Any] | None = None,
    *,
    model: str = "m",
    endpoint: Endpoint = Endpoint.CHAT,
    request_id: str = "r",
    **fields: Any,
) -> RequestContext:
    return RequestContext(Request(request_id, endpoint, model, body if body is not None else {}, **fields))


async def reaches_the_rest(stage: Stage, ctx: RequestContext, answer: Result | None = None) -> bool:
    """Run `stage` alone around a terminal that answers `answer` (an empty JSON body by default):
    True when the stage called the rest of the pipeline, False when it answered itself."""
    reached: list[RequestContext] = []

    async def rest(c: RequestContext) -> Result:
        reached.append(c)
        return answer if answer is not None else Completion(b"{}")

    await stage(ctx, rest)
    return bool(reached)
