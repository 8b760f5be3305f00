"""What one answer says about its model's quality, with no second answer to compare: a refusal, an
answer cut short, JSON that was asked for and not given. Pure; `shadow.compare` calls these on
both answers of a pair, and the default analysis compares the candidate's rates with stable's.

Refusals are found by the drift monitor's detector (`observe/drift/refusal.py`: stock phrases in
the opening of the answer), so a refusal means the same thing to drift and to a rollout. The
analysis compares the candidate's refusal rate with the stable version's on the same kind of
traffic, so a phrase that also fires on some legitimate answer fires on both versions alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..observe.drift.refusal import is_refusal

__all__ = ["FINISHED", "is_refusal", "json_valid", "unfinished", "wants_json"]

# Finish reasons of an answer that ended by itself; anything else ("length", "content_filter", none)
# is an answer cut short.
FINISHED = frozenset({"stop", "tool_calls", "function_call"})
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


def unfinished(finish_reason: str | None) -> bool:
    """True when the answer did not end by itself (cut at `max_tokens`, filtered, or no reason given)."""
    return finish_reason not in FINISHED


def wants_json(body: Mapping[str, Any]) -> bool:
    """True when the request's `response_format` asks for JSON (`json_object` or `json_schema`)."""
    fmt = body.get("response_format")
    return isinstance(fmt, Mapping) and fmt.get("type") in _JSON_FORMATS


def json_valid(text: str) -> bool:
    """True when the answer is one JSON object, as both JSON response formats require. Surrounding
    white space is allowed; a Markdown code fence or prose around it is not (a client that asked
    for JSON parses the content as it is)."""
    try:
        return isinstance(orjson.loads(text.strip()), dict)
    except orjson.JSONDecodeError:
        return False
