from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from interlock.security.audit import AuditLog, SQLiteAuditStore, canonical, verify


async def filled(path: Path, n: int = 5) -> SQLiteAuditStore:
    store = SQLiteAuditStore(path)
    await store.start()
    await store.append([(1000.0 + i, canonical({"kind": "request", "request_id": f"r{i}"})) for i in range(n)])
    return store


def tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;" + sql)
    db.close()


async def test_an_intact_chain_verifies(tmp_path: Path) -> None:
    store = await filled(tmp_path / "a.db")
    assert verify(await store.fetch_all()) == (5, None, None)
    await store.close()


async def test_the_database_refuses_updates_and_deletes(tmp_path: Path) -> None:
    store = await filled(tmp_path / "a.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "a.db")
    for sql in (
        "UPDATE audit_log SET event = '{}' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()


@pytest.mark.parametrize(
    ("sql", "seq"),
    [
        ("""UPDATE audit_log SET event = '{"kind":"request","request_id":"forged"}' WHERE seq = 3""", 3),
        ("DELETE FROM audit_log WHERE seq = 3", 3),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 4; "
         "UPDATE audit_log SET seq = 4 WHERE seq = 102", 2),
    ],
    ids=["edited", "deleted", "reordered"],
)  # fmt: skip
async def test_verify_names_the_first_record_tampered_with(tmp_path: Path, sql: str, seq: int) -> None:
    store = await filled(tmp_path / "a.db")
    await store.close()
    tamper(tmp_path / "a.db", sql)
    store = SQLiteAuditStore(tmp_path / "a.db")
    _, problem, where = verify(await store.fetch_all())
    assert problem is not None and where == seq
    await store.close()


async def test_an_edit_with_its_hash_recomputed_is_still_named(tmp_path: Path) -> None:
    from interlock.security.audit import chain_hash

    store = await filled(tmp_path / "a.db")
    records = await store.fetch_all()
    await store.close()
    r = records[1]
    forged = canonical({"kind": "request", "request_id": "forged"})
    tamper(
        tmp_path / "a.db",
        f"UPDATE audit_log SET event = '{forged}', hash = '{chain_hash(r.prev_hash, r.seq, r.ts, forged)}' WHERE seq = 2",
    )
    store = SQLiteAuditStore(tmp_path / "a.db")
    _, problem, where = verify(await store.fetch_all())
    assert where == 2 and problem is not None and "record 2" in problem
    await store.close()


async def test_events_wait_in_the_spool_while_the_database_is_away_and_nothing_is_lost(tmp_path: Path) -> None:
    home = tmp_path / "not-yet"  # the database's directory does not exist: appends fail
    spool = tmp_path / "audit.spool"
    log = AuditLog(SQLiteAuditStore(home / "audit.db"), spool)
    await log.start()
    for i in range(3):
        log.record({"kind": "request", "request_id": f"early{i}"})
    await log.close()  # the gateway stops while the database is away
    assert [json.loads(json.loads(line)[1])["request_id"] for line in spool.read_text().splitlines()] == [
        "early0", "early1", "early2",
    ]  # fmt: skip

    home.mkdir()  # the database is back; the gateway restarts
    log = AuditLog(SQLiteAuditStore(home / "audit.db"), spool)
    await log.start()
    log.record({"kind": "request", "request_id": "late"})
    await log.close()
    assert not spool.exists()
    store = SQLiteAuditStore(home / "audit.db")
    records = await store.fetch_all()
    assert [json.loads(r.event)["request_id"] for r in records] == ["early0", "early1", "early2", "late"]
    assert verify(records)[1] is None
    await store.close()


async def test_latest_pages_backwards_by_the_key(tmp_path: Path) -> None:
    store = await filled(tmp_path / "a.db", 12)
    first = await store.latest(5)
    assert [r.seq for r in first] == [12, 11, 10, 9, 8]
    assert [r.seq for r in await store.latest(5, before=8)] == [7, 6, 5, 4, 3]
    assert [r.seq for r in await store.latest(5, before=3)] == [2, 1]
    assert [r.seq for r in await store.after(10, 5)] == [11, 12]
    await store.close()


async def test_the_chain_check_goes_on_from_where_it_stopped_and_names_a_break(tmp_path: Path) -> None:
    from interlock.security.audit import CHECK_BATCH, ChainCheck

    path = tmp_path / "a.db"
    store = await filled(path, CHECK_BATCH + 7)  # more than one batch
    check = ChainCheck(store, every_s=60, clock=lambda: 5000.0)
    status = await check.check()
    assert status.verified_through == CHECK_BATCH + 7 and status.problem is None
    assert status.to_dict()["ok"] and status.full_pass_at == 5000.0
    await store.append([(9000.0 + i, canonical({"kind": "admin", "action": f"a{i}"})) for i in range(3)])
    assert (await check.check()).verified_through == CHECK_BATCH + 10  # only the new records were read
    await store.append([(9100.0, canonical({"kind": "admin", "action": "later"}))])
    await store.close()
    tamper(path, f"UPDATE audit_log SET event = '{{}}' WHERE seq = {CHECK_BATCH + 11};")
    store = SQLiteAuditStore(path)
    check._store = store
    status = await check.check()
    assert status.problem is not None and status.problem_seq == CHECK_BATCH + 11
    assert not status.to_dict()["ok"] and status.verified_through == CHECK_BATCH + 10
    await store.close()
