"""What one answer says about its model's quality, with no second answer to compare: a refusal, an
answer cut short, JSON that was asked for and not given. Pure; `shadow.compare` calls these on
both answers of a pair, and the default analysis compares the candidate's rates with stable's.

Why patterns for refusals rather than a classifier: a refusal from an instruction-tuned model is
formulaic ("I'm sorry, but I can't ...", "As an AI language model ..."), almost always in its
first sentence, and the analysis compares the candidate's refusal rate with the stable version's
on the same kind of traffic, so a pattern that also fires on some legitimate apologies fires on
both versions alike. Only the opening of the answer is read (`REFUSAL_WINDOW` characters): an
answer that helps and then says "I can't guarantee" is not a refusal, and a long answer costs no
more than a short one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

REFUSAL_WINDOW = 160  # characters from the start of the answer that are searched
# "I" followed by this declines: "I can't", "I cannot", "I won't", "I'm unable to", "I am not able to".
_CANT = (
    r"(?:\s+(?:can(?:no|')t|cannot|won'?t|will\s+not|am\s+(?:not\s+)?(?:un)?able\s+to)"
    r"|'m\s+(?:not\s+)?(?:un)?able\s+to)"
)
_REFUSAL = re.compile(
    rf"""\b(?:
      (?:i'?m|i\s+am)\s+(?:so\s+|very\s+)?sorry,?\s+(?:but\s+)?i{_CANT}
    | i{_CANT}\s+(?:help|assist|provide|comply|do\s+that|answer|fulfil|fulfill|support|share|discuss|engage)
    | as\s+an\s+ai(?:\s+language\s+model|\s+assistant)?,?\s+i(?:{_CANT}|\s+don'?t|\s+do\s+not|\s+am\s+not)
    | i\s+(?:must|have\s+to)\s+(?:respectfully\s+)?decline
    | (?:that|this)\s+(?:request\s+)?(?:is|goes)\s+against\s+(?:my|our)\s+(?:guidelines|policies|policy)
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Finish reasons of an answer that ended by itself; anything else ("length", "content_filter", none)
# is an answer cut short.
FINISHED = frozenset({"stop", "tool_calls", "function_call"})
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


def is_refusal(text: str) -> bool:
    """True when the answer opens by declining to help."""
    return _REFUSAL.search(text[:REFUSAL_WINDOW].replace("\u2019", "'")) is not None


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
