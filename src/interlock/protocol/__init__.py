"""OpenAI wire models (msgspec Structs). Validation only, no behaviour.

The edge decodes a body once with orjson into plain data (which is what gets forwarded, so
fields we do not model pass through untouched) and converts that data into one of these structs
to check the fields the gateway itself relies on.
"""

from .requests import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    StreamOptions,
)

__all__ = ["ChatMessage", "ChatRequest", "CompletionRequest", "EmbeddingRequest", "StreamOptions"]
