"""Keyset paging over the key store, and its counts (SQLite here; the integration tests run
PostgreSQL through the same queries)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from interlock.security.keyadmin import NewKey, create_key
from interlock.security.keystore import PAGE_AFTER, SQLiteKeyStore
from interlock.security.roles import DEFAULT_ROLES
from tests.support.keystore import SECRET


async def test_pages_follow_creation_order_without_gaps_or_repeats(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "keys.db")
    await store.start()
    ids = []
    for i in range(23):
        now = 1000.0 + i // 2  # pairs share a creation time: the id breaks the tie
        _, record = await create_key(store, SECRET, NewKey(name=f"k{i}"), DEFAULT_ROLES, lambda now=now: now)
        ids.append((record.created_at, record.id))
    seen, after = [], None
    while True:
        page = await store.page(5, after)
        if not page:
            break
        seen += [(r.created_at, r.id) for r in page]
        after = (page[-1].created_at, page[-1].id)
    assert seen == sorted(ids)
    await store.revoke(ids[0][1], 2000.0)
    assert await store.counts() == {"total": 23, "active": 22, "revoked": 1}
    await store.close()
    db = sqlite3.connect(tmp_path / "keys.db")
    plan = db.execute("EXPLAIN QUERY PLAN " + PAGE_AFTER.format("?", "?", "?"), (1.0, "a", 5)).fetchall()
    db.close()
    assert any("api_keys_created" in str(row) for row in plan)  # an index seek, not a sort of the table
