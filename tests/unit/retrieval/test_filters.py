from __future__ import annotations

from typing import Any

import pytest

from interlock.errors import BadRequest
from interlock.retrieval.filters import MAX_DEPTH, Comparison, Compound, matches, parse_filter, to_sql

ATTRS: dict[str, Any] = {"region": "eu", "year": 2024, "score": 4.5, "public": True, "name": "Zoë"}


def ok(value: object) -> bool:
    return matches(parse_filter(value), ATTRS)


def test_parse_gives_a_tree() -> None:
    tree = parse_filter({"type": "and", "filters": [{"type": "eq", "key": "region", "value": "eu"},
                                                    {"type": "or", "filters": [{"type": "gte", "key": "year", "value": 2020}]}]})  # fmt: skip
    assert tree == Compound(
        "and", (Comparison("eq", "region", "eu"), Compound("or", (Comparison("gte", "year", 2020.0),)))
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "eq", "key": "region", "value": "eu"}, True),
        ({"type": "eq", "key": "region", "value": "us"}, False),
        ({"type": "ne", "key": "region", "value": "us"}, True),
        ({"type": "eq", "key": "year", "value": 2024.0}, True),  # numbers compare as numbers
        ({"type": "gt", "key": "year", "value": 2023}, True),
        ({"type": "gt", "key": "year", "value": 2024}, False),
        ({"type": "gte", "key": "year", "value": 2024}, True),
        ({"type": "lt", "key": "score", "value": 5}, True),
        ({"type": "lte", "key": "score", "value": 4.5}, True),
        ({"type": "lt", "key": "score", "value": 4.5}, False),
        ({"type": "eq", "key": "public", "value": True}, True),
        ({"type": "eq", "key": "public", "value": 1}, False),  # true is not 1
        ({"type": "ne", "key": "public", "value": False}, True),
        ({"type": "gt", "key": "name", "value": "Zo"}, True),  # strings by code point
        ({"type": "lt", "key": "region", "value": "fr"}, True),
        ({"type": "eq", "key": "missing", "value": "x"}, False),
        ({"type": "ne", "key": "missing", "value": "x"}, False),  # a missing attribute fails ne too
        ({"type": "ne", "key": "year", "value": "2024"}, False),  # and so does another kind
        ({"type": "gt", "key": "region", "value": 1}, False),
        ({"type": "in", "key": "region", "value": ["us", "eu"]}, True),
        ({"type": "in", "key": "region", "value": ["us"]}, False),
        ({"type": "in", "key": "year", "value": [2023, 2024]}, True),  # numbers as numbers
        ({"type": "in", "key": "year", "value": ["2024"]}, False),  # another kind
        ({"type": "nin", "key": "region", "value": ["us"]}, True),
        ({"type": "nin", "key": "region", "value": ["eu", "us"]}, False),
        ({"type": "nin", "key": "missing", "value": ["x"]}, False),  # a missing attribute fails nin too
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "region", "value": "eu"},
                    {"type": "gt", "key": "year", "value": 2025},
                ],
            },
            False,
        ),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "region", "value": "us"},
                    {"type": "eq", "key": "public", "value": True},
                ],
            },
            True,
        ),
        (
            {"type": "or", "filters": [{"type": "and", "filters": [{"type": "eq", "key": "region", "value": "eu"}]}]},
            True,
        ),
    ],
)
def test_semantics(filters: dict[str, Any], expected: bool) -> None:
    assert ok(filters) is expected


@pytest.mark.parametrize(
    ("filters", "param"),
    [
        ([], "filters"),
        ({"type": "like", "key": "a", "value": "b"}, "filters.type"),
        ({"key": "a", "value": "b"}, "filters.type"),
        ({"type": "eq", "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "", "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "k" * 65, "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "a"}, "filters.value"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value"),
        ({"type": "eq", "key": "a", "value": ["x"]}, "filters.value"),
        ({"type": "eq", "key": "a", "value": float("nan")}, "filters.value"),
        ({"type": "eq", "key": "a", "value": "v" * 513}, "filters.value"),
        ({"type": "eq", "key": "a", "value": "b", "extra": 1}, "filters.extra"),
        ({"type": "in", "key": "a", "value": "b"}, "filters.value"),
        ({"type": "in", "key": "a", "value": []}, "filters.value"),
        ({"type": "in", "key": "a", "value": ["b", 1]}, "filters.value"),  # one kind
        ({"type": "nin", "key": "a", "value": [True]}, "filters.value"),
        ({"type": "in", "key": "a", "value": ["b", None]}, "filters.value[1]"),
        ({"type": "and"}, "filters.filters"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "and", "filters": "x"}, "filters.filters"),
        (
            {"type": "or", "filters": [{"type": "eq", "key": "a", "value": 1}, {"type": "eq", "key": "a"}]},
            "filters.filters[1].value",
        ),
    ],
)
def test_bad_filters_name_the_path(filters: object, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_filter(filters)
    assert caught.value.param == param


def test_depth_and_size_are_bounded() -> None:
    node: dict[str, Any] = {"type": "eq", "key": "a", "value": 1}
    for _ in range(MAX_DEPTH):
        node = {"type": "and", "filters": [node]}
    with pytest.raises(BadRequest, match="nest"):
        parse_filter(node)
    wide = {"type": "or", "filters": [{"type": "eq", "key": "a", "value": i} for i in range(200)]}
    with pytest.raises(BadRequest, match="at most"):
        parse_filter(wide)


def test_sql_binds_keys_and_values() -> None:
    evil = "x' OR '1'='1"
    tree = parse_filter({"type": "or", "filters": [{"type": "eq", "key": evil, "value": evil},
                                                   {"type": "gt", "key": "year", "value": 2020},
                                                   {"type": "eq", "key": "public", "value": True}]})  # fmt: skip
    params: list[Any] = ["already bound"]
    sql = to_sql(tree, "sf.attributes", params)
    assert evil not in sql and "2020" not in sql
    assert params == ["already bound", evil, evil, "year", 2020.0, "public", True]
    assert "$2::text" in sql and "$7::boolean" in sql and "$1:" not in sql  # numbered after what was there
    assert sql.count(" OR ") == 2


def test_sql_binds_in_and_nin_as_arrays() -> None:
    tree = parse_filter({"type": "and", "filters": [{"type": "in", "key": "region", "value": ["eu", "fr"]},
                                                    {"type": "nin", "key": "year", "value": [2020, 2021]}]})  # fmt: skip
    params: list[Any] = []
    sql = to_sql(tree, "sf.attributes", params)
    assert params == ["region", ("eu", "fr"), "year", (2020.0, 2021.0)]
    assert "= ANY ($2::text[])" in sql and "<> ALL ($4::float8[])" in sql
