"""The dashboard's reads on PostgreSQL: keyset pages of keys and audit records, key counts, and
the incremental chain check, through the same queries the SQLite tests run (real PostgreSQL on
127.0.0.1:5432, a schema of this test's own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from interlock.security.audit import ChainCheck, PostgresAuditStore, canonical
from interlock.security.keyadmin import NewKey, create_key
from interlock.security.keystore import PostgresKeyStore
from interlock.security.roles import DEFAULT_ROLES
from tests.support.keystore import SECRET

pytestmark = pytest.mark.integration
PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    schema = f"dash_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_keys_page_by_creation_and_count_on_postgres(dsn: str) -> None:
    store = PostgresKeyStore(dsn)
    await store.start()
    try:
        made = []
        for i in range(12):
            _, record = await create_key(store, SECRET, NewKey(name=f"k{i}"), DEFAULT_ROLES, lambda i=i: 100.0 + i // 3)
            made.append((record.created_at, record.id))
        seen, after = [], None
        while page := await store.page(5, after):
            seen += [(r.created_at, r.id) for r in page]
            after = (page[-1].created_at, page[-1].id)
        assert seen == sorted(made)
        await store.revoke(made[3][1], 500.0)
        assert await store.counts() == {"total": 12, "active": 11, "revoked": 1}
    finally:
        await store.close()


async def test_audit_pages_and_the_chain_check_on_postgres(dsn: str) -> None:
    store = PostgresAuditStore(dsn)
    await store.start()
    try:
        await store.append([(1000.0 + i, canonical({"kind": "admin", "action": f"a{i}"})) for i in range(9)])
        assert [r.seq for r in await store.latest(4)] == [9, 8, 7, 6]
        assert [r.seq for r in await store.latest(4, before=3)] == [2, 1]
        assert [r.seq for r in await store.after(7, 10)] == [8, 9]
        check = ChainCheck(store, every_s=60)
        status = await check.check()
        assert status.verified_through == 9 and status.problem is None
        await store.append([(2000.0, canonical({"kind": "admin", "action": "later"}))])
        assert (await check.check()).verified_through == 10
    finally:
        await store.close()
