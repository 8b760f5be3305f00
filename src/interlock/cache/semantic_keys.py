"""What the semantic cache compares by meaning, and the partition that must match exactly.

Only the last user turn of a chat request is compared by meaning. Everything else that changes
the answer is part of the partition, hashed exactly: the tenant, the model group, the endpoint,
every parameter (temperature, top_p, max_tokens, tools, response_format, seed, stream, ...),
the system prompt and every message before the last user turn. The partition never hashes the
whole request: that would put each question in a partition of its own, where it could only ever
find itself (the exact cache already does that).

A request whose DLP scan found something is partitioned by its conversation
(`x-interlock-conversation`) as well, so its tokens are compared only with the conversation
that holds them; without a conversation it is not semantically cached at all (`partition`
returns None).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..pipeline.context import Endpoint, RequestContext
from .keys import IGNORED_FIELDS


def last_user_turn(body: dict[str, Any]) -> str | None:
    """The text of the last message when it is the user's and holds only text, else None (an
    image, an empty turn, a conversation that ends with a tool result: nothing to compare)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content if content.strip() else None
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    text = "\n".join(texts)
    return text if text.strip() else None


def partition_key(
    tenant: str, model: str, endpoint: Endpoint, body: dict[str, Any], conversation: str | None = None
) -> str:
    """A hash of everything but the last user turn (and the fields that never change an answer)."""
    rest = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k != "messages"}
    earlier = body.get("messages", [])[:-1]
    canonical = orjson.dumps([tenant, model, endpoint.value, conversation, earlier, rest], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def semantic_question(ctx: RequestContext) -> tuple[str, str] | None:
    """(partition, last user turn) of a request the semantic cache may answer, or None. The body
    is `ctx.body`, as DLP left it: the cache embeds and stores tokens, never the values."""
    request = ctx.request
    if request.endpoint is not Endpoint.CHAT:
        return None
    body = ctx.body
    turn = last_user_turn(body)
    if turn is None:
        return None
    conversation = None
    if ctx.protection.findings:
        if request.conversation is None:
            return None
        conversation = request.conversation
    return partition_key(request.tenant, request.model, request.endpoint, body, conversation), turn
