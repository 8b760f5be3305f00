"""Answers for stage tests: a chat completion's bytes as a backend sends them, and a terminal that
answers with a result as the router would, its routing filled in."""

from __future__ import annotations

from typing import Any

import orjson

from interlock.pipeline import RequestContext, Result


def answered_by(result: Result) -> Any:
    async def terminal(ctx: RequestContext) -> Result:
        ctx.routing.deployment, ctx.routing.served_model, ctx.routing.version = "d1", "m", "v7"
        return result

    return terminal


def chat(logprobs: Any, finish: str = "stop") -> bytes:
    return orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi there"},
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            ],
        }
    )
