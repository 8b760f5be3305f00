"""OpenAI's attribute filters for vector store search, validated once into a small tree.

A filter is a comparison, `{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte", "key": ..., "value": ...}`
with a string, number or boolean value, or `{"type": "in"|"nin", "key": ..., "value": [...]}` with
a non-empty array of strings or of numbers (one kind), or a compound, `{"type": "and"|"or", "filters": [...]}`
of comparisons and compounds. `parse_filter` turns the request's JSON into `Comparison` and
`Compound` nodes (or a 400 naming the path of the bad field, e.g. `filters.filters[1].type`);
`matches` evaluates a tree against one store file's attributes in Python (the SQLite catalog),
`to_sql` compiles it to a PostgreSQL boolean expression over a JSONB column, with every key and
value a bind parameter, never text in the statement.

Semantics, the same in both: a comparison holds only when the attribute is present and of the
value's kind (string, number or boolean: `true` is not `1`); then `eq`/`ne` compare for equality,
and the orderings compare numbers numerically, strings by code point and booleans false < true.
So a missing or differently typed attribute fails `ne` as well as `eq`, and `nin` as well as `in`;
`in` holds when the attribute equals one of the array's values, `nin` when it equals none.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from interlock.errors import BadRequest
from interlock.retrieval.types import Attribute

ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt,
    "lte": operator.le,
}  # fmt: skip
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "in": "= ANY", "nin": "<> ALL"}
_ARRAY_OPS = frozenset({"in", "nin"})
MAX_VALUES = 64  # values of one `in`/`nin` array
MAX_DEPTH = 8
MAX_NODES = 128
MAX_KEY = 64  # OpenAI's limits on attribute keys and string values
MAX_STRING = 512


class Comparison(msgspec.Struct, frozen=True):
    op: ComparisonOp
    key: str
    value: Attribute | tuple[str, ...] | tuple[float, ...]  # a tuple for `in` and `nin`


class Compound(msgspec.Struct, frozen=True):
    op: Literal["and", "or"]
    filters: tuple[Filter, ...]


Filter = Comparison | Compound


def parse_filter(value: object, param: str = "filters") -> Filter:
    """The request's `filters` -> a tree, or a 400 naming the field that is wrong."""
    nodes = [0]
    return _parse(value, param, 1, nodes)


def _parse(value: object, param: str, depth: int, nodes: list[int]) -> Filter:
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise BadRequest(f"filters may hold at most {MAX_NODES} comparisons and compounds", param="filters")
    if depth > MAX_DEPTH:
        raise BadRequest(f"filters may nest at most {MAX_DEPTH} deep", param=param)
    if not isinstance(value, Mapping):
        raise BadRequest(f"{param} must be an object", param=param)
    kind = value.get("type")
    if kind in ("and", "or"):
        _only(value, {"type", "filters"}, param)
        children = value.get("filters")
        if not isinstance(children, Sequence) or isinstance(children, str | bytes) or not children:
            raise BadRequest(f"{param}.filters must be a non-empty array", param=f"{param}.filters")
        parsed = tuple(_parse(child, f"{param}.filters[{i}]", depth + 1, nodes) for i, child in enumerate(children))
        return Compound(kind, parsed)
    if kind not in _OPS and kind not in _ARRAY_OPS:
        raise BadRequest(
            f"{param}.type must be one of eq, ne, gt, gte, lt, lte, in, nin, and, or", param=f"{param}.type"
        )
    _only(value, {"type", "key", "value"}, param)
    key = value.get("key")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise BadRequest(f"{param}.key must be a string of 1 to {MAX_KEY} characters", param=f"{param}.key")
    item = value.get("value")
    if kind in _ARRAY_OPS:
        return Comparison(kind, key, _values(item, f"{param}.value"))
    return Comparison(kind, key, _scalar(item, f"{param}.value"))


def _values(item: object, param: str) -> tuple[str, ...] | tuple[float, ...]:
    if not isinstance(item, Sequence) or isinstance(item, str | bytes) or not 1 <= len(item) <= MAX_VALUES:
        raise BadRequest(f"{param} must be an array of 1 to {MAX_VALUES} values", param=param)
    values = tuple(_scalar(v, f"{param}[{i}]") for i, v in enumerate(item))
    kinds = {_kind(v) for v in values}
    if kinds == {"string"}:
        return tuple(str(v) for v in values)
    if kinds == {"number"}:
        return tuple(float(v) for v in values)
    raise BadRequest(f"{param} must hold strings only or numbers only", param=param)


def _scalar(item: object, param: str) -> Attribute:
    if isinstance(item, str):
        if len(item) > MAX_STRING:
            raise BadRequest(f"{param} may be at most {MAX_STRING} characters", param=param)
        return item
    if isinstance(item, int | float) and not isinstance(item, bool):
        if not math.isfinite(item):
            raise BadRequest(f"{param} must be a finite number", param=param)
        return float(item)
    if not isinstance(item, bool):
        raise BadRequest(f"{param} must be a string, a number or a boolean", param=param)
    return item


def _only(value: Mapping[Any, Any], allowed: set[str], param: str) -> None:
    for k in value:
        if k not in allowed:
            name = str(k)[:64]
            raise BadRequest(f"{param} has an unknown field {name!r}", param=f"{param}.{name}")


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def matches(node: Filter, attributes: Mapping[str, Attribute]) -> bool:
    """Whether a store file with these attributes passes the filter."""
    if isinstance(node, Compound):
        if node.op == "and":
            return all(matches(child, attributes) for child in node.filters)
        return any(matches(child, attributes) for child in node.filters)
    if node.key not in attributes:
        return False
    have = attributes[node.key]
    kind = _kind(node.value[0] if isinstance(node.value, tuple) else node.value)
    if _kind(have) != kind:
        return False
    if kind == "number":
        have = float(have)
    if isinstance(node.value, tuple):
        return (have in node.value) == (node.op == "in")
    return _OPS[node.op](have, node.value)


def to_sql(node: Filter, column: str, params: list[Any]) -> str:
    """A PostgreSQL boolean expression for `node` over the JSONB `column` (our own identifier, never
    the caller's). Keys and values are appended to `params` and referred to as $n, numbered after
    what `params` already holds, as asyncpg binds them."""
    if isinstance(node, Compound):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(to_sql(child, column, params) for child in node.filters) + ")"
    params.append(node.key)
    key = f"${len(params)}::text"
    params.append(node.value)
    value = f"${len(params)}"
    array = isinstance(node.value, tuple)
    kind = _kind(node.value[0] if isinstance(node.value, tuple) else node.value)
    if array:  # ANY/ALL over a bound array of the values' one kind
        cast = "float8" if kind == "number" else "text"
        left = f"({column}->>{key})::float8" if kind == "number" else f"({column}->>{key})"
        value = f"({value}::{cast}[])"
    elif kind == "number":
        left, value = f"({column}->>{key})::float8", f"{value}::float8"
    elif kind == "boolean":
        left, value = f"({column}->{key})::boolean", f"{value}::boolean"
    else:
        left, value = f'({column}->>{key}) COLLATE "C"', f"{value}::text"  # code points, as Python
    # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the cast must only
    # meet values of its type.
    return (
        f"(CASE WHEN jsonb_typeof({column}->{key}) = '{kind}' THEN {left} {_SQL_OPS[node.op]} {value} ELSE false END)"
    )
