"""Putting values back into answers: whole JSON bodies, and streams chunk by chunk.

In a stream a token can arrive split over several chunks. Each text being streamed (a choice's
content, a tool call's arguments) keeps back only a tail that could still become a token: from
its last `<`, and only while what follows matches a token's beginning. Everything else goes out
at once, so the first words of an answer wait at most the length of one token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

TOKEN = re.compile(r"<[A-Z_]{2,20}_[a-z2-7]{12}(?:[a-z2-7]{12})?>")
_PARTIAL = re.compile(r"<[A-Z_]{0,20}(?:_[a-z2-7]{0,24})?\Z")
MAX_TOKEN = 1 + 20 + 1 + 24 + 1
NEUTRAL = "\u2039"  # what a client's own `<` before a token-shaped text becomes


def neutralise(text: str) -> str:
    """Client text shaped like a token is defused, so no caller can pull another's values."""
    return TOKEN.sub(lambda m: NEUTRAL + m.group(0)[1:], text) if "<" in text else text


def replace(text: str, mapping: Mapping[str, str], in_json: bool = False) -> str:
    if "<" not in text:
        return text

    def value(m: re.Match[str]) -> str:
        found = mapping.get(m.group(0))
        if found is None:
            return m.group(0)
        return orjson.dumps(found).decode()[1:-1] if in_json else found

    return TOKEN.sub(value, text)


def held_back(text: str) -> int:
    """How many characters at the end of `text` could still be the start of a token."""
    cut = text.rfind("<", max(0, len(text) - MAX_TOKEN + 1))
    if cut < 0 or not _PARTIAL.match(text, cut):
        return 0
    return len(text) - cut


def detokenize_answer(answer: dict[str, Any], mapping: Mapping[str, str]) -> None:
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = replace(message["content"], mapping)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            if isinstance(function.get("arguments"), str):
                function["arguments"] = replace(function["arguments"], mapping, in_json=True)
        if isinstance(choice.get("text"), str):
            choice["text"] = replace(choice["text"], mapping)


class StreamDetokenizer:
    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        self._pending: dict[tuple[Any, ...], str] = {}

    def _emit(self, key: tuple[Any, ...], piece: str, final: bool, in_json: bool = False) -> str:
        text = self._pending.pop(key, "") + piece
        keep = 0 if final else held_back(text)
        if keep:
            self._pending[key] = text[-keep:]
            text = text[:-keep]
        return replace(text, self._mapping, in_json)

    def feed(self, event: dict[str, Any]) -> dict[str, Any]:
        for choice in event.get("choices") or ():
            index = choice.get("index", 0)
            final = choice.get("finish_reason") is not None
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("content"), str) or (final and ("content", index) in self._pending):
                    delta["content"] = self._emit(("content", index), delta.get("content") or "", final)
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") or {}
                    key = ("args", index, call.get("index", 0))
                    if isinstance(function.get("arguments"), str):
                        function["arguments"] = self._emit(key, function["arguments"], final, in_json=True)
                if final:
                    self._flush_tools(delta, index)
            if isinstance(choice.get("text"), str) or (final and ("text", index) in self._pending):
                choice["text"] = self._emit(("text", index), choice.get("text") or "", final)
        return event

    def _flush_tools(self, delta: dict[str, Any], index: int) -> None:
        for key in [k for k in self._pending if k[0] == "args" and k[1] == index]:
            rest = replace(self._pending.pop(key), self._mapping, in_json=True)
            delta.setdefault("tool_calls", []).append({"index": key[2], "function": {"arguments": rest}})

    def flush(self) -> str:
        """Whatever is still held at the very end (a stream cut before its finish_reason)."""
        rest = "".join(self._pending.values())
        self._pending.clear()
        return replace(rest, self._mapping)


def decode_event(payload: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
