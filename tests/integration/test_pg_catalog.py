"""The Catalog conformance suite against PostgreSQL with pgvector (scripts/services.sh installs it)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest

from interlock.retrieval import pg_catalog
from interlock.retrieval.pg_catalog import PgCatalog
from interlock.retrieval.types import Catalog
from tests.support.catalog_suite import A, CatalogSuite, Reopen, add_file, make_store, near, unit

pytestmark = pytest.mark.integration

DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def _pgvector_missing() -> str | None:
    try:
        conn = await asyncpg.connect(DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {DSN} is not reachable ({type(exc).__name__})"
    try:
        found = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    finally:
        await conn.close()
    return None if found else "pgvector is not installed for this PostgreSQL (scripts/services.sh installs it)"


@pytest.fixture
async def state() -> AsyncIterator[dict[str, Any]]:
    missing = await _pgvector_missing()
    if missing:
        pytest.skip(missing)
    schema = f"rag_store_test_{secrets.token_hex(4)}"
    holder: dict[str, Any] = {"schema": schema, "catalog": PgCatalog(DSN, schema=schema)}
    await holder["catalog"].start()
    yield holder
    await holder["catalog"].close()
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def catalog(state: dict[str, Any]) -> Catalog:
    catalog: Catalog = state["catalog"]
    return catalog


@pytest.fixture
def reopen(state: dict[str, Any]) -> Reopen:
    async def again() -> Catalog:
        await state["catalog"].close()
        state["catalog"] = PgCatalog(DSN, schema=state["schema"])
        await state["catalog"].start()  # the schema exists: creating it again is a no-op
        catalog: Catalog = state["catalog"]
        return catalog

    return again


class TestPgCatalog(CatalogSuite):
    pass


async def test_the_hnsw_path_with_filters(catalog: PgCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the exact limit, search walks the HNSW index (iterative scan): it still honours the
    store, the status and a filter that only a few files pass, and k."""
    monkeypatch.setattr(pg_catalog, "EXACT_LIMIT", 20)
    q = unit(1)
    await make_store(catalog, A, "vs_big")
    await make_store(catalog, A, "vs_other")
    for f in range(6):
        vectors = np.stack([near(q, 0.2 + 0.01 * i + 0.1 * f, 100 * f + i) for i in range(20)])
        await add_file(catalog, A, "vs_big", f"file-{f}", vectors, attributes={"f": f})
    await add_file(catalog, A, "vs_other", "file-o", np.stack([near(q, 0.99, 999)]))
    hits = await catalog.search(A, ["vs_big"], q, 10)
    assert len(hits) == 10 and {h.file_id for h in hits} == {"file-5"}
    few = await catalog.search(A, ["vs_big"], q, 30, filters={"type": "lte", "key": "f", "value": 1})
    assert len(few) == 30 and {h.file_id for h in few} == {"file-0", "file-1"}
    assert all(a.score >= b.score - 1e-6 for a, b in itertools.pairwise(few))  # best first (ties in float4)
    async with catalog._db.acquire() as conn:
        plan = await conn.fetch(f"EXPLAIN SELECT 1 FROM {catalog._s}.chunks c ORDER BY c.embedding <=> $1 LIMIT 5", q)
    assert any("chunks_embedding" in r[0] for r in plan)


async def test_start_is_idempotent(catalog: PgCatalog, state: dict[str, Any]) -> None:
    again = PgCatalog(DSN, schema=state["schema"])
    await again.start()
    assert again._iterative  # the pgvector here (0.8) scans iteratively
    await again.close()
    with pytest.raises(ValueError):
        PgCatalog(DSN, schema="Bad-Name; DROP")
