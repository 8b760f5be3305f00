"""The file of common queries the precomputed store is warmed from.

One query per line; or JSON Lines whose objects carry the query as `text` (or `input`, or `query`),
so an export of request logs or an evaluation set can be used as it is. Blank lines are skipped;
a line that starts with `{` and is not a JSON object with one of those fields is an error naming
the line number (never its content: it may hold PII).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

FIELDS = ("text", "input", "query")


def read_queries(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if text.lstrip().startswith("{"):
                yield _field(text, path, number)
            else:
                yield text


def _field(line: str, path: Path, number: int) -> str:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ValueError(f"{path}:{number}: not valid JSON") from None
    if isinstance(record, dict):
        for name in FIELDS:
            value = record.get(name)
            if isinstance(value, str) and value:
                return value
    raise ValueError(f"{path}:{number}: expected a JSON object with a string field text, input or query")
