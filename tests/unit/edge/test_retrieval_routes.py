"""The Files and Vector Stores routes count against the caller's requests-per-minute limits
through the same limit stage inference uses (in-process counters here; test_limits.py runs Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.edge.exchange import Exchange
from interlock.edge.files import FileHandlers
from interlock.edge.retrieval_routes import RetrievalRoutes
from interlock.edge.vector_stores import VectorStoreHandlers
from interlock.errors import NotFound, RateLimited
from interlock.observe.metrics import Metrics
from interlock.security.limit_stage import LimitStage, Plans, Rate
from interlock.security.limits import Limiter, LocalCounters
from interlock.security.roles import Identity
from tests.unit.retrieval.conftest import USER, make_parts


def exchange(sent: list[dict[str, Any]], who: Identity) -> Exchange:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    ex = Exchange({"type": "http", "query_string": b""}, receive, send, {}, "r", asyncio.get_running_loop())  # type: ignore[arg-type]
    ex.identity = who
    return ex


async def test_files_and_stores_routes_count_against_the_key_and_tenant_rpm(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    await parts.catalog.start()
    try:
        stage = LimitStage(Limiter(LocalCounters(), None, lambda op: None), Plans({"acme": Rate(rpm=5)}, {}),
                           Metrics(CollectorRegistry()))  # fmt: skip
        routes = RetrievalRoutes(FileHandlers(parts.service, 1 << 20), VectorStoreHandlers(parts.service), stage)
        key = Identity(subject="k", kind="key", tenant="acme", roles=("user",), permissions=USER.permissions, rpm=2)
        listing, _ = routes.fixed()[("GET", "/v1/vector_stores")]
        store_get = routes.match("GET", "/v1/vector_stores/vs_x")
        assert store_get is not None
        sent: list[dict[str, Any]] = []
        await listing(exchange(sent, key))
        headers = dict(sent[0]["headers"])
        assert sent[0]["status"] == 200 and headers[b"x-ratelimit-limit-requests"] == b"2"
        with pytest.raises(NotFound):  # counted, then not found
            await store_get[0](exchange([], key))
        with pytest.raises(RateLimited) as refused:  # the key's third request in the minute
            await listing(exchange([], key))
        assert refused.value.status == 429 and "retry-after" in {k.lower() for k in refused.value.headers}
        other = Identity(subject="o", kind="key", tenant="acme", roles=("user",), permissions=USER.permissions)
        for _ in range(3):  # another key of the tenant: the tenant's 5 (2 counted; a refusal is not) is the limit
            await listing(exchange([], other))
        with pytest.raises(RateLimited):
            await listing(exchange([], other))
        assert orjson.loads(sent[1]["body"])["object"] == "list"
    finally:
        await parts.catalog.close()
