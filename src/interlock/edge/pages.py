"""OpenAI's cursor pages: `limit`, `after`, `order` in the query string, and the list body with
`first_id`, `last_id` and `has_more` (the official client pages on `after=last_id`); and the one
way this API's JSON bodies are decoded."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qs

import msgspec
import orjson

from ..errors import BadRequest
from .exchange import Exchange
from .parse import invalid, json_object

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
MAX_JSON_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int
    after: str | None
    order: Literal["asc", "desc"]
    params: dict[str, str]  # every parameter, for the few an endpoint adds (`purpose`, `filter`)


def query_params(ex: Exchange) -> dict[str, str]:
    """The query string's parameters (a repeated one: its last value; blank ones kept)."""
    raw = ex.scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def page_size(params: Mapping[str, str], default_limit: int, max_limit: int) -> int:
    """The page size `limit` asks for, `default_limit` when it names none; a 400 past the range."""
    try:
        limit = int(params.get("limit", default_limit))
    except ValueError:
        raise BadRequest("`limit` must be a whole number", param="limit") from None
    if not 1 <= limit <= max_limit:
        raise BadRequest(f"`limit` must be between 1 and {max_limit}", param="limit")
    return limit


def query(ex: Exchange, default_limit: int = 20, max_limit: int = 100) -> PageQuery:
    params = query_params(ex)
    limit = page_size(params, default_limit, max_limit)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("`order` must be `asc` or `desc`", param="order")
    after = params.get("after") or None
    return PageQuery(limit, after, cast(Literal["asc", "desc"], order), params)


def page(items: Sequence[T], limit: int, shape: Callable[[T], dict[str, Any]], ident: Callable[[T], str]) -> bytes:
    """The list body of `items` fetched with `limit + 1` (one more says there are more)."""
    shown = items[:limit]
    data = [shape(item) for item in shown]
    return orjson.dumps({
        "object": "list", "data": data, "first_id": ident(shown[0]) if shown else None,
        "last_id": ident(shown[-1]) if shown else None, "has_more": len(items) > limit,
    })  # fmt: skip


async def decode(ex: Exchange, kind: type[S], limit: int = MAX_JSON_BODY) -> S:
    """The JSON body as `kind`, or a 400 naming the field (never a value)."""
    raw = await ex.body(limit)
    data = json_object(raw or b"{}")
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
