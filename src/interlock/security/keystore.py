"""Where API keys live: SQLite by default (a file beside the config), PostgreSQL when configured.

Both keep the same table; only the HMAC of a key is stored. Lookups on the hot path are cached by
the Authenticator, so the store sees one read per key per cache TTL, not one per request.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from .keys import KeyRecord

COLUMNS = (
    "id", "hash", "name", "tenant", "roles", "models", "max_class", "rpm", "tpm", "budget", "max_tokens",
    "created_at", "expires_at", "revoked_at",
)  # fmt: skip


class KeyStore(Protocol):
    async def start(self) -> None: ...

    async def create(self, record: KeyRecord) -> None: ...

    async def by_hash(self, digest: str) -> KeyRecord | None: ...

    async def list(self) -> list[KeyRecord]: ...

    async def page(self, limit: int, after: tuple[float, str] | None = None) -> Sequence[KeyRecord]:
        """Up to `limit` keys in creation order after the (created_at, id) cursor: keyset paging
        on an index, so page 200 costs what page 1 does."""
        ...

    async def counts(self) -> dict[str, int]:
        """{"total", "active", "revoked"} (expired keys count as active until revoked)."""
        ...

    async def revoke(self, key_id: str, at: float) -> bool: ...

    async def close(self) -> None: ...


_FIELDS = ", ".join(COLUMNS)
SELECT = f"SELECT {_FIELDS} FROM api_keys"
SQLITE_INSERT = f"INSERT INTO api_keys ({_FIELDS}) VALUES ({', '.join('?' * len(COLUMNS))})"
PG_INSERT = f"INSERT INTO api_keys ({_FIELDS}) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"
PAGE_FIRST = SELECT + " ORDER BY created_at, id LIMIT {0}"
PAGE_AFTER = SELECT + " WHERE (created_at, id) > ({0}, {1}) ORDER BY created_at, id LIMIT {2}"
COUNTS = "SELECT COUNT(*), COUNT(revoked_at) FROM api_keys"
REVOKE = "UPDATE api_keys SET revoked_at = {0} WHERE id = {1} AND revoked_at IS NULL"


def to_row(r: KeyRecord) -> tuple[Any, ...]:
    return (
        r.id, r.hash, r.name, r.tenant, json.dumps(list(r.roles)), json.dumps(list(r.models)), r.max_class,
        r.rpm, r.tpm, r.budget, r.max_tokens, r.created_at, r.expires_at, r.revoked_at,
    )  # fmt: skip


def from_row(row: Sequence[Any]) -> KeyRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["roles"] = tuple(json.loads(values["roles"]))
    values["models"] = tuple(json.loads(values["models"]))
    return KeyRecord(**values)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    roles TEXT NOT NULL,
    models TEXT NOT NULL,
    max_class TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    budget {real},
    max_tokens INTEGER,
    created_at {real} NOT NULL,
    expires_at {real},
    revoked_at {real}
);
CREATE INDEX IF NOT EXISTS api_keys_created ON api_keys (created_at, id)
"""
SQLITE_SCHEMA = _SCHEMA.format(real="REAL")
POSTGRES_SCHEMA = _SCHEMA.format(real="DOUBLE PRECISION")


class SQLiteKeyStore:
    """sqlite3 on one dedicated thread: the connection never crosses threads, the loop never blocks."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="interlock-keystore")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        db = sqlite3.connect(self._path)
        db.execute("PRAGMA journal_mode=WAL")  # readers in other processes do not block the writer
        db.executescript(SQLITE_SCHEMA)
        db.commit()
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._open()
        assert self._db is not None
        return self._db

    async def start(self) -> None:
        await self._run(self._conn)

    async def create(self, record: KeyRecord) -> None:
        def insert() -> None:
            db = self._conn()
            db.execute(SQLITE_INSERT, to_row(record))
            db.commit()

        await self._run(insert)

    async def by_hash(self, digest: str) -> KeyRecord | None:
        def select() -> KeyRecord | None:
            row = (
                self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM api_keys WHERE hash = ?", (digest,)).fetchone()
            )
            return from_row(row) if row else None

        result: KeyRecord | None = await self._run(select)
        return result

    async def list(self) -> list[KeyRecord]:
        def select() -> list[KeyRecord]:
            rows = self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM api_keys ORDER BY created_at").fetchall()
            return [from_row(r) for r in rows]

        result: list[KeyRecord] = await self._run(select)
        return result

    async def page(self, limit: int, after: tuple[float, str] | None = None) -> Sequence[KeyRecord]:
        def select() -> list[KeyRecord]:
            if after is None:
                rows = self._conn().execute(PAGE_FIRST.format("?"), (limit,)).fetchall()
            else:
                rows = self._conn().execute(PAGE_AFTER.format("?", "?", "?"), (*after, limit)).fetchall()
            return [from_row(r) for r in rows]

        result: list[KeyRecord] = await self._run(select)
        return result

    async def counts(self) -> dict[str, int]:
        def select() -> dict[str, int]:
            total, revoked = self._conn().execute(COUNTS).fetchone()
            return {"total": total, "active": total - revoked, "revoked": revoked}

        result: dict[str, int] = await self._run(select)
        return result

    async def revoke(self, key_id: str, at: float) -> bool:
        def update() -> bool:
            db = self._conn()
            cur = db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id))
            db.commit()
            return cur.rowcount > 0

        result: bool = await self._run(update)
        return result

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(shut)
        self._pool.shutdown(wait=True)


class PostgresKeyStore:
    """asyncpg with a small pool."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None

    async def start(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4, command_timeout=5)
        async with self._pool.acquire() as conn:
            await conn.execute(POSTGRES_SCHEMA)

    async def create(self, record: KeyRecord) -> None:
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        await self._pool.execute(f"INSERT INTO api_keys ({', '.join(COLUMNS)}) VALUES ({marks})", *to_row(record))

    async def by_hash(self, digest: str) -> KeyRecord | None:
        row = await self._pool.fetchrow(SELECT + " WHERE hash = $1", digest)
        return from_row(tuple(row)) if row else None

    async def list(self) -> list[KeyRecord]:
        rows = await self._pool.fetch(SELECT + " ORDER BY created_at")
        return [from_row(tuple(r)) for r in rows]

    async def page(self, limit: int, after: tuple[float, str] | None = None) -> Sequence[KeyRecord]:
        if after is None:
            rows = await self._pool.fetch(PAGE_FIRST.format("$1"), limit)
        else:
            rows = await self._pool.fetch(PAGE_AFTER.format("$1", "$2", "$3"), after[0], after[1], limit)
        return [from_row(tuple(r)) for r in rows]

    async def counts(self) -> dict[str, int]:
        total, revoked = await self._pool.fetchrow(COUNTS)
        return {"total": total, "active": total - revoked, "revoked": revoked}

    async def revoke(self, key_id: str, at: float) -> bool:
        status = await self._pool.execute(REVOKE.format("$1", "$2"), at, key_id)
        return bool(status.endswith(" 1"))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
