"""Request bodies of the OpenAI endpoints Interlock serves."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Wire(msgspec.Struct, kw_only=True):
    """Unknown fields are accepted (and forwarded by the edge), never rejected."""


class StreamOptions(_Wire, kw_only=True):
    include_usage: bool | None = None


class ChatMessage(_Wire, kw_only=True):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Sampling(_Wire, kw_only=True):
    model: NonEmptyStr
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None


class ChatRequest(_Sampling, kw_only=True):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # Ours (the client's `extra_body`): vector stores to retrieve from (retrieval/stage.py).
    vector_store_ids: Annotated[list[NonEmptyStr], msgspec.Meta(min_length=1, max_length=16)] | None = None


class CompletionRequest(_Sampling, kw_only=True):
    prompt: str | list[str | int | list[int]]
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    echo: bool | None = None
    suffix: str | None = None


class EmbeddingRequest(_Wire, kw_only=True):
    model: NonEmptyStr
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None
