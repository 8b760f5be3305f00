"""Answers for stage tests: a chat completion's bytes as a backend sends them, and a terminal that
answers with a result as the router would, its routing filled in."""

from __future__ import annotations

from typing import Any

import orjson

from interlock.pipeline import RequestContext, Result


def answered_by(result: Result, prompt_tokens: int = 0, completion_tokens: int = 0) -> Any:
    """A terminal answering `result` as deployment d1 (version v7) of group m, with this usage."""

    async def terminal(ctx: RequestContext) -> Result:
        ctx.routing.deployment, ctx.routing.served_model, ctx.routing.version = "d1", "m", "v7"
        ctx.routing.prompt_tokens, ctx.routing.completion_tokens = prompt_tokens, completion_tokens
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
