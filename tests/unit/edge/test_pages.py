"""One parser of query strings and page sizes serves the API's list pages and the dashboard's."""

from __future__ import annotations

import asyncio

import pytest

from interlock.edge.exchange import Exchange
from interlock.edge.pages import page_size, query
from interlock.edge.ui import MAX_PAGE, PAGE, paging
from interlock.errors import BadRequest


def exchange(query_string: bytes) -> Exchange:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None: ...

    scope = {"type": "http", "query_string": query_string}
    return Exchange(scope, receive, send, {}, "r", asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_the_api_and_the_dashboard_read_limits_alike() -> None:
    assert query(exchange(b"limit=5&after=&order=asc")).after is None
    params, limit = paging(exchange(b"limit=7&after=&before=x"))
    assert limit == 7 and params == {"limit": "7", "before": "x"}  # the dashboard drops blank ones
    assert paging(exchange(b""))[1] == PAGE
    for bad in (b"limit=abc", b"limit=0", f"limit={MAX_PAGE + 1}".encode()):
        with pytest.raises(BadRequest) as api:
            query(exchange(bad), 20, MAX_PAGE)
        with pytest.raises(BadRequest) as ui:
            paging(exchange(bad))
        assert api.value.message == ui.value.message and api.value.param == ui.value.param == "limit"
    assert page_size({"limit": "3"}, 20, 100) == 3
