"""The embedded vector store catalog: SQLite in the data directory, an HNSW graph per store beside it.

    <directory>/catalog.sqlite3     files, stores, store files, chunks (text, vector) and attributes
    <directory>/files/<file id>     each file's bytes, as uploaded
    <directory>/index/<store id>-<version>.hnsw   the store's graph as of that version of the store

SQLite (the standard library's sqlite3, WAL, `synchronous=NORMAL`) is the truth: every chunk's text
and float32 vector is a row, so a store's search structure (`vector_index.StoreIndex`) can always be
rebuilt from it. One worker thread owns the connection and the in-memory indexes: every call of the
`Catalog` Protocol is a job on that thread, so neither needs a lock, and the event loop never waits
on disk. A file's bytes are read and written off that thread (`asyncio.to_thread`), so a large
upload does not hold up searches.

Restarts. A store's index is loaded on first use: its chunks from SQLite, its graph from the
`.hnsw` file saved at the store's current version (every change to a store's chunks or file
statuses bumps `stores.version` in the same transaction). A graph saved at another version, or
none (a crash before the save), means a rebuild from the rows, on all cores, once. Graphs are saved
when `close` runs and after a change once `save_interval` seconds have passed since the store's
last save, so a crash costs at most a rebuild, never data. Another process writing the same
directory bumps the version, and this one reloads that store at its next use: correct, but the
reload is a rebuild; run one writer per directory (several gateway processes want PostgreSQL).

Why hnswlib, measured by `bench/rag/ann.py` (clustered unit vectors of 384 dimensions, k=10, one
query at a time, on the 2-core machine under a load average of 3 to 4; bench/RESULTS.md, "Vector
stores", has the table and the command):

    index           vectors  build s  save+load s  p50 ms  p99 ms  recall@10
    numpy (exact)   100k     -        0.05         14.1    33.5    1.0
    hnswlib ef=64   100k     61.6     0.43         0.44    4.57    1.0
    hnswlib ef=128  100k     65.9     0.25         0.85    1.15    1.0
    usearch         100k     123.6    0.38         1.10    2.06    0.999
    sqlite-vec      100k     1.3      0.0          87.1    370     1.0 (a scan: exact)

hnswlib searched fastest at full recall, built in half usearch's time, loads from its file in
under half a second, and is already a dependency (the semantic cache's). sqlite-vec's vec0 is an
exact scan, six times slower than numpy's, and cannot load into this CPython's sqlite3 at all
(built without `enable_load_extension`; the benchmark loads it through apsw), so it would also
bring apsw or pysqlite3. See `vector_index.py` for exact search in small stores, deletions and
how filters combine with k.

Search returns the chunks of files whose store file is `completed`, and so does every catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import orjson
from numpy.typing import NDArray

from interlock.embeddings.minilm import DIM
from interlock.errors import NotFound
from interlock.retrieval.filters import matches, parse_filter
from interlock.retrieval.types import (
    Attribute,
    Catalog,
    Chunk,
    FileCounts,
    FileRecord,
    FileStatus,
    Hit,
    StoreFileRecord,
    StoreRecord,
)
from interlock.retrieval.vector_index import StoreIndex, chunk_rows, query_row

_T = TypeVar("_T")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,
  bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_tenant ON files (tenant, created_at, id);
CREATE TABLE IF NOT EXISTS stores (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, data_class TEXT NOT NULL,
  created_at INTEGER NOT NULL, metadata TEXT NOT NULL, last_active_at INTEGER,
  version INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS stores_by_tenant ON stores (tenant, created_at, id);
CREATE TABLE IF NOT EXISTS store_files (
  store_id TEXT NOT NULL, file_id TEXT NOT NULL, tenant TEXT NOT NULL, status TEXT NOT NULL,
  created_at INTEGER NOT NULL, attributes TEXT NOT NULL, chunking TEXT NOT NULL,
  usage_bytes INTEGER NOT NULL, last_error TEXT, attach_id TEXT NOT NULL DEFAULT '',
  lease_owner TEXT NOT NULL DEFAULT '', lease_until REAL NOT NULL DEFAULT 0, PRIMARY KEY (store_id, file_id));
CREATE INDEX IF NOT EXISTS store_files_by_file ON store_files (file_id);
CREATE TABLE IF NOT EXISTS chunks (
  store_id TEXT NOT NULL, file_id TEXT NOT NULL, idx INTEGER NOT NULL, slot INTEGER NOT NULL,
  text TEXT NOT NULL, tokens INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (store_id, file_id, idx));
CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_slot ON chunks (store_id, slot);
CREATE TABLE IF NOT EXISTS batch_files (
  store_id TEXT NOT NULL, batch_id TEXT NOT NULL, file_id TEXT NOT NULL, PRIMARY KEY (store_id, batch_id, file_id));
CREATE INDEX IF NOT EXISTS batch_files_by_file ON batch_files (store_id, file_id);
"""
# Batches were once kept only in the store file's chunking (under "batch_id"): copied at the upgrade.
_BACKFILL_BATCHES = (
    "INSERT OR IGNORE INTO batch_files (store_id, batch_id, file_id) SELECT store_id, "
    "json_extract(chunking, '$.batch_id'), file_id FROM store_files "
    "WHERE json_extract(chunking, '$.batch_id') IS NOT NULL"
)


_ADDED_COLUMNS = (
    ("attach_id", "TEXT NOT NULL DEFAULT ''"),
    ("lease_owner", "TEXT NOT NULL DEFAULT ''"),
    ("lease_until", "REAL NOT NULL DEFAULT 0"),
)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _checked_id(kind: str, value: str) -> str:
    """Ids become file names here: only the characters OpenAI-style ids are made of."""
    if not _SAFE_ID.match(value):
        raise ValueError(f"{kind} id must be 1 to 128 letters, digits, '_' or '-'")
    return value


class SqliteCatalog:
    """`Catalog` in a directory: SQLite on one worker thread, hnswlib graphs beside it."""

    def __init__(
        self, directory: Path, *, dimensions: int = DIM, save_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic, max_index_bytes: int = 1 << 30,
    ) -> None:  # fmt: skip
        self._dir = Path(directory)
        self._dimensions = dimensions
        self._save_interval = save_interval
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        # Worker-thread state: the loaded indexes by store, with the store version each reflects,
        # least recently used first. Past `max_index_bytes` in all, the least recently used are
        # saved (when changed) and dropped, to be loaded from their saved graph when next used;
        # the one in use always stays, however large.
        self._indexes: OrderedDict[str, tuple[int, StoreIndex]] = OrderedDict()
        self._max_index_bytes = max_index_bytes
        self._saved_at: dict[str, float] = {}
        self._dirty: set[str] = set()

    # Lifecycle

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-catalog")
            await self._run(self._open)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._shutdown)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise RuntimeError("the catalog is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    def _open(self) -> None:
        (self._dir / "files").mkdir(parents=True, exist_ok=True)
        (self._dir / "index").mkdir(exist_ok=True)
        db = sqlite3.connect(self._dir / "catalog.sqlite3", isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        upgrade = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'batch_files'").fetchone() is None
        db.executescript(_SCHEMA)
        if upgrade:
            db.execute(_BACKFILL_BATCHES)
        have = {row[1] for row in db.execute("PRAGMA table_info(store_files)")}
        for name, declaration in _ADDED_COLUMNS:  # a catalog made before these columns
            if name not in have:
                db.execute(f"ALTER TABLE store_files ADD COLUMN {name} {declaration}")
        self._db = db

    def _shutdown(self) -> None:
        for store_id in list(self._dirty):
            self._save(store_id)
        if self._db is not None:
            self._db.close()
            self._db = None
        self._indexes.clear()

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "used before start"
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # Files

    async def put_file(self, record: FileRecord, content: bytes) -> None:
        _checked_id("file", record.id)
        await self._run(self._claim_file, record)
        path = self._dir / "files" / record.id
        await asyncio.to_thread(_write_atomically, path, content)
        await self._run(self._insert_file, record)

    def _claim_file(self, record: FileRecord) -> None:
        row = self._conn.execute("SELECT tenant FROM files WHERE id = ?", (record.id,)).fetchone()
        if row is not None and row[0] != record.tenant:
            raise ValueError("file id already in use")

    def _insert_file(self, r: FileRecord) -> None:
        self._conn.execute(
            "INSERT INTO files (id, tenant, filename, purpose, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET filename = excluded.filename, purpose = excluded.purpose, "
            "bytes = excluded.bytes WHERE files.tenant = excluded.tenant",
            (r.id, r.tenant, r.filename, r.purpose, r.bytes, r.created_at),
        )

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        return await self._run(self._get_file, tenant, file_id)

    def _get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        row = self._conn.execute(
            "SELECT id, tenant, filename, purpose, bytes, created_at FROM files WHERE id = ? AND tenant = ?",
            (file_id, tenant),
        ).fetchone()
        return None if row is None else _file(row)

    async def file_content(self, tenant: str, file_id: str) -> bytes | None:
        if await self.get_file(tenant, file_id) is None:
            return None
        try:
            return await asyncio.to_thread((self._dir / "files" / file_id).read_bytes)
        except FileNotFoundError:  # deleted between the lookup and the read
            return None

    async def list_files(
        self, tenant: str, *, purpose: str | None = None, limit: int = 10000, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> list[FileRecord]:  # fmt: skip
        where, params = "tenant = ?", [tenant]
        if purpose is not None:
            where, params = where + " AND purpose = ?", [*params, purpose]
        rows = await self._run(self._page, "files", "id", "id, tenant, filename, purpose, bytes, created_at",
                               where, params, limit, after, order)  # fmt: skip
        return [_file(row) for row in rows]

    def _page(
        self, table: str, key: str, columns: str, where: str, params: list[Any], limit: int, after: str | None,
        order: Literal["asc", "desc"],
    ) -> list[Any]:  # fmt: skip
        """A page of `table` in (created_at, key) order, after the row whose `key` is `after`."""
        direction = "DESC" if order == "desc" else "ASC"
        if after is not None:
            cursor = self._conn.execute(
                f"SELECT created_at FROM {table} WHERE {where} AND {key} = ?", (*params, after)
            ).fetchone()
            if cursor is None:
                return []
            compare = "<" if order == "desc" else ">"
            where += f" AND (created_at, {key}) {compare} (?, ?)"
            params = [*params, cursor[0], after]
        sql = f"SELECT {columns} FROM {table} WHERE {where} ORDER BY created_at {direction}, {key} {direction} LIMIT ?"
        return self._conn.execute(sql, (*params, max(0, limit))).fetchall()

    async def delete_file(self, tenant: str, file_id: str) -> bool:
        deleted = await self._run(self._delete_file, tenant, file_id)
        if deleted:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, self._dir / "files" / file_id)
        return deleted

    def _delete_file(self, tenant: str, file_id: str) -> bool:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM files WHERE id = ? AND tenant = ?", (file_id, tenant)).fetchone() is None:
                return False
            stores = [r[0] for r in db.execute(
                "SELECT store_id FROM store_files WHERE file_id = ? AND tenant = ?", (file_id, tenant))]  # fmt: skip
            changed = [self._unlink_file(db, store_id, file_id) for store_id in stores]
            db.execute("DELETE FROM files WHERE id = ? AND tenant = ?", (file_id, tenant))
        for store_id, version in zip(stores, changed, strict=True):
            self._apply(store_id, version, lambda index: index.drop_file(file_id))
        return True

    def _unlink_file(self, db: sqlite3.Connection, store_id: str, file_id: str) -> int:
        """Inside a transaction: the file's link and chunks in one store; the store's new version."""
        db.execute("DELETE FROM chunks WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        db.execute("DELETE FROM batch_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        db.execute("DELETE FROM store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        return self._bump(db, store_id)

    def _bump(self, db: sqlite3.Connection, store_id: str) -> int:
        row = db.execute("UPDATE stores SET version = version + 1 WHERE id = ? RETURNING version", (store_id,))
        return int(row.fetchone()[0])

    # Vector stores

    async def put_store(self, record: StoreRecord) -> None:
        _checked_id("vector store", record.id)
        await self._run(self._put_store, record)

    def _put_store(self, r: StoreRecord) -> None:
        done = self._conn.execute(
            "INSERT INTO stores (id, tenant, name, data_class, created_at, metadata, last_active_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "metadata = excluded.metadata, last_active_at = excluded.last_active_at, data_class = excluded.data_class "
            "WHERE stores.tenant = excluded.tenant",
            (r.id, r.tenant, r.name, r.data_class, r.created_at, _json(r.metadata), r.last_active_at),
        )
        if done.rowcount == 0:
            raise ValueError("vector store id already in use")

    async def get_store(self, tenant: str, store_id: str) -> StoreRecord | None:
        return await self._run(self._get_store, tenant, store_id)

    def _get_store(self, tenant: str, store_id: str) -> StoreRecord | None:
        row = self._conn.execute(
            f"SELECT {_STORE_COLUMNS} FROM stores WHERE id = ? AND tenant = ?", (store_id, tenant)
        ).fetchone()
        return None if row is None else _store(row)

    async def list_stores(
        self, tenant: str, *, limit: int = 20, after: str | None = None, order: Literal["asc", "desc"] = "desc"
    ) -> list[StoreRecord]:
        rows = await self._run(self._page, "stores", "id", _STORE_COLUMNS, "tenant = ?", [tenant], limit, after, order)
        return [_store(row) for row in rows]

    async def delete_store(self, tenant: str, store_id: str) -> bool:
        return await self._run(self._delete_store, tenant, store_id)

    def _delete_store(self, tenant: str, store_id: str) -> bool:
        with self._transaction() as db:
            done = db.execute("DELETE FROM stores WHERE id = ? AND tenant = ?", (store_id, tenant))
            if done.rowcount == 0:
                return False
            db.execute("DELETE FROM chunks WHERE store_id = ?", (store_id,))
            db.execute("DELETE FROM batch_files WHERE store_id = ?", (store_id,))
            db.execute("DELETE FROM store_files WHERE store_id = ?", (store_id,))
        self._indexes.pop(store_id, None)
        self._dirty.discard(store_id)
        self._saved_at.pop(store_id, None)
        for path in (self._dir / "index").glob(f"{store_id}-*.hnsw"):
            path.unlink(missing_ok=True)
        return True

    # A store's files

    async def put_store_file(self, record: StoreFileRecord) -> None:
        await self._run(self._put_store_file, record)

    def _put_store_file(self, r: StoreFileRecord) -> None:
        with self._transaction() as db:
            self._owned_store(db, r.tenant, r.store_id, r.file_id)
            done = db.execute(
                "INSERT INTO store_files (store_id, file_id, tenant, status, created_at, attributes, chunking, "
                "usage_bytes, last_error, attach_id, lease_owner, lease_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store_id, file_id) DO UPDATE "
                "SET status = excluded.status, attributes = excluded.attributes, chunking = excluded.chunking, "
                "usage_bytes = excluded.usage_bytes, last_error = excluded.last_error, attach_id = excluded.attach_id, "
                "lease_owner = excluded.lease_owner, lease_until = excluded.lease_until "
                "WHERE store_files.tenant = excluded.tenant",
                (r.store_id, r.file_id, r.tenant, r.status, r.created_at, _json(r.attributes), _json(r.chunking),
                 r.usage_bytes, r.last_error, r.attach_id, r.lease_owner, r.lease_until),
            )  # fmt: skip
            if done.rowcount == 0:
                raise NotFound("vector store not found")
            version = self._bump(db, r.store_id)
        completed, attributes = r.status == "completed", dict(r.attributes)
        self._apply(r.store_id, version, lambda index: index.set_file(r.file_id, completed, attributes))

    def _owned_store(self, db: sqlite3.Connection, tenant: str, store_id: str, file_id: str) -> None:
        owned = db.execute(
            "SELECT (SELECT count(*) FROM stores WHERE id = ? AND tenant = ?) + "
            "(SELECT count(*) FROM files WHERE id = ? AND tenant = ?)",
            (store_id, tenant, file_id, tenant),
        ).fetchone()[0]
        if owned != 2:
            raise NotFound("vector store or file not found")

    async def get_store_file(self, tenant: str, store_id: str, file_id: str) -> StoreFileRecord | None:
        rows = await self._run(self._store_files, tenant, store_id, "file_id = ?", [file_id], 1, None, "asc")
        return rows[0] if rows else None

    async def list_store_files(
        self, tenant: str, store_id: str, *, status: FileStatus | None = None, limit: int = 20,
        after: str | None = None, order: Literal["asc", "desc"] = "desc",
    ) -> list[StoreFileRecord]:  # fmt: skip
        where, params = ("status = ?", [status]) if status is not None else ("1 = 1", [])
        return await self._run(self._store_files, tenant, store_id, where, params, limit, after, order)

    def _store_files(
        self, tenant: str, store_id: str, where: str, params: list[Any], limit: int, after: str | None,
        order: Literal["asc", "desc"],
    ) -> list[StoreFileRecord]:  # fmt: skip
        rows = self._page("store_files", "file_id", _STORE_FILE_COLUMNS, f"tenant = ? AND store_id = ? AND {where}",
                          [tenant, store_id, *params], limit, after, order)  # fmt: skip
        return [_store_file(row) for row in rows]

    async def delete_store_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        return await self._run(self._delete_store_file, tenant, store_id, file_id)

    def _delete_store_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        with self._transaction() as db:
            found = db.execute(
                "SELECT 1 FROM store_files WHERE store_id = ? AND file_id = ? AND tenant = ?",
                (store_id, file_id, tenant),
            ).fetchone()
            if found is None:
                return False
            version = self._unlink_file(db, store_id, file_id)
        self._apply(store_id, version, lambda index: index.drop_file(file_id))
        return True

    async def in_progress(self, expired_at: float | None = None) -> list[StoreFileRecord]:
        expired = float("inf") if expired_at is None else expired_at
        rows = await self._run(
            lambda: self._conn.execute(
                f"SELECT {_STORE_FILE_COLUMNS} FROM store_files WHERE status = 'in_progress' AND lease_until <= ? "
                "ORDER BY created_at",
                (expired,),
            ).fetchall()
        )
        return [_store_file(row) for row in rows]

    async def claim_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, owner: str, now: float, until: float
    ) -> bool:
        done = await self._run(
            lambda: (
                self._conn.execute(
                    "UPDATE store_files SET lease_owner = ?, lease_until = ? WHERE store_id = ? AND file_id = ? "
                    "AND tenant = ? AND attach_id = ? AND status = 'in_progress' AND lease_until <= ?",
                    (owner, until, store_id, file_id, tenant, attach_id, now),
                ).rowcount
            )
        )
        return bool(done)

    async def renew_leases(self, owner: str, until: float) -> None:
        await self._run(
            lambda: self._conn.execute(
                "UPDATE store_files SET lease_until = ? WHERE lease_owner = ? AND status = 'in_progress'",
                (until, owner),
            )
        )

    async def finish_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, status: FileStatus, *,
        last_error: str | None = None, usage_bytes: int = 0,
    ) -> bool:  # fmt: skip
        return await self._run(self._finish_store_file, tenant, store_id, file_id, attach_id, status, last_error,
                               usage_bytes)  # fmt: skip

    def _finish_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, status: FileStatus, error: str | None,
        usage: int,
    ) -> bool:  # fmt: skip
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE store_files SET status = ?, last_error = ?, usage_bytes = ? WHERE store_id = ? AND file_id = ? "
                "AND tenant = ? AND attach_id = ? AND status = 'in_progress' RETURNING attributes",
                (status, error, usage, store_id, file_id, tenant, attach_id),
            ).fetchall()
            if not rows:
                return False
            version = self._bump(db, store_id)
        completed, attributes = status == "completed", orjson.loads(rows[0][0])
        self._apply(store_id, version, lambda index: index.set_file(file_id, completed, attributes))
        return True

    async def join_batch(self, tenant: str, store_id: str, batch_id: str, file_id: str) -> None:
        await self._run(self._join_batch, tenant, store_id, batch_id, file_id)

    def _join_batch(self, tenant: str, store_id: str, batch_id: str, file_id: str) -> None:
        done = self._conn.execute(
            "INSERT OR IGNORE INTO batch_files (store_id, batch_id, file_id) SELECT store_id, ?, file_id "
            "FROM store_files WHERE store_id = ? AND file_id = ? AND tenant = ?",
            (batch_id, store_id, file_id, tenant),
        )
        if done.rowcount == 0 and self._get_link(tenant, store_id, file_id) is None:
            raise NotFound("file not found in vector store")

    def _get_link(self, tenant: str, store_id: str, file_id: str) -> Any:
        return self._conn.execute(
            "SELECT 1 FROM store_files WHERE store_id = ? AND file_id = ? AND tenant = ?", (store_id, file_id, tenant)
        ).fetchone()

    async def batch_files(self, tenant: str, store_id: str, batch_id: str) -> list[StoreFileRecord]:
        columns = ", ".join(f"sf.{c.strip()}" for c in _STORE_FILE_COLUMNS.split(","))
        rows = await self._run(
            lambda: self._conn.execute(
                f"SELECT {columns} FROM batch_files b JOIN store_files sf ON sf.store_id = b.store_id "
                "AND sf.file_id = b.file_id WHERE b.store_id = ? AND b.batch_id = ? AND sf.tenant = ? "
                "ORDER BY sf.created_at, sf.file_id",
                (store_id, batch_id, tenant),
            ).fetchall()
        )
        return [_store_file(row) for row in rows]

    async def file_counts(self, tenant: str, store_id: str) -> FileCounts:
        rows = await self._run(
            lambda: self._conn.execute(
                "SELECT status, count(*), sum(usage_bytes) FROM store_files WHERE tenant = ? AND store_id = ? "
                "GROUP BY status",
                (tenant, store_id),
            ).fetchall()
        )
        counts = {status: n for status, n, _ in rows if status in _STATUSES}
        return FileCounts(**counts, usage_bytes=sum(int(used or 0) for _, _, used in rows))

    # Chunks

    async def add_chunks(
        self, tenant: str, store_id: str, file_id: str, chunks: Sequence[Chunk], vectors: NDArray[Any],
        attach_id: str | None = None,
    ) -> bool:  # fmt: skip
        rows = chunk_rows(len(chunks), vectors, self._dimensions)
        if not chunks:
            return True
        return await self._run(self._add_chunks, tenant, store_id, file_id, list(chunks), rows, attach_id)

    def _add_chunks(
        self, tenant: str, store_id: str, file_id: str, chunks: list[Chunk], rows: NDArray[np.float32],
        attach_id: str | None,
    ) -> bool:  # fmt: skip
        with self._transaction() as db:
            link = db.execute(
                "SELECT status, attributes, attach_id FROM store_files "
                "WHERE store_id = ? AND file_id = ? AND tenant = ?",
                (store_id, file_id, tenant),
            ).fetchone()
            if link is None:
                raise NotFound("file not found in vector store")
            if attach_id is not None and link[2] != attach_id:
                return False  # attached again since: that ingestion writes its own
            index = self._index(store_id)  # as of the version this transaction sees
            indexes = [c.index for c in chunks]
            replaced = index.file_slots(file_id)  # every chunk of the file's earlier ingestion
            slots = index.take_slots(len(chunks))
            try:
                db.execute("DELETE FROM chunks WHERE store_id = ? AND file_id = ?", (store_id, file_id))
                db.executemany(
                    "INSERT INTO chunks (store_id, file_id, idx, slot, text, tokens, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(store_id, file_id, c.index, slot, c.text, c.tokens, row.tobytes())
                     for c, slot, row in zip(chunks, slots, rows, strict=True)],
                )  # fmt: skip
                version = self._bump(db, store_id)
            except BaseException:
                index.give_back(slots)
                raise
        completed, attributes = link[0] == "completed", orjson.loads(link[1])

        def put(index: StoreIndex) -> None:
            index.remove(replaced)
            index.set_file(file_id, completed, attributes)
            index.put(slots, file_id, indexes, rows)

        self._apply(store_id, version, put)
        return True

    async def search(
        self, tenant: str, store_ids: Sequence[str], vector: NDArray[Any], k: int, *,
        filters: Mapping[str, Any] | None = None, score_threshold: float = 0.0,
    ) -> list[Hit]:  # fmt: skip
        tree = parse_filter(filters) if filters is not None else None
        query = query_row(vector, self._dimensions)
        if k < 1 or not store_ids:
            return []
        passes = None if tree is None else partial(matches, tree)
        return await self._run(self._search, tenant, list(dict.fromkeys(store_ids)), query, k, passes, score_threshold)

    def _search(
        self, tenant: str, store_ids: list[str], query: NDArray[np.float32], k: int,
        passes: Callable[[Mapping[str, Attribute]], bool] | None, threshold: float,
    ) -> list[Hit]:  # fmt: skip
        marks = ",".join("?" * len(store_ids))
        owned = self._conn.execute(
            f"SELECT id, version FROM stores WHERE tenant = ? AND id IN ({marks})", (tenant, *store_ids)
        ).fetchall()
        found: list[tuple[float, str, int]] = []
        used: dict[str, StoreIndex] = {}  # held here: loading one store may evict another
        for store_id, version in owned:
            index = used[store_id] = self._index(store_id, version)
            found.extend(
                (score, store_id, slot) for slot, score in index.search(query, k, passes) if score >= threshold
            )
        found.sort(key=lambda hit: -hit[0])
        hits = []
        for score, store_id, slot in found[:k]:
            index = used[store_id]
            file_id, chunk_index = index.chunk(slot)
            row = self._conn.execute(
                "SELECT c.text, f.filename FROM chunks c JOIN files f ON f.id = c.file_id "
                "WHERE c.store_id = ? AND c.file_id = ? AND c.idx = ?",
                (store_id, file_id, chunk_index),
            ).fetchone()
            if row is None:  # changed by another process since this index was loaded
                continue
            hits.append(Hit(store_id=store_id, file_id=file_id, filename=row[1], chunk_index=chunk_index,
                            score=score, text=row[0], attributes=dict(index.attributes(file_id))))  # fmt: skip
        return hits

    # Indexes (worker thread only)

    def _index(self, store_id: str, version: int | None = None) -> StoreIndex:
        """The store's index as of `version` (read now when not given), loaded or rebuilt when the
        one in memory is older (another process wrote) or absent."""
        if version is None:
            row = self._conn.execute("SELECT version FROM stores WHERE id = ?", (store_id,)).fetchone()
            version = int(row[0]) if row is not None else 0
        loaded = self._indexes.get(store_id)
        if loaded is not None and loaded[0] == version:
            self._indexes.move_to_end(store_id)
            return loaded[1]
        files = {
            file_id: (status == "completed", orjson.loads(attributes))
            for file_id, status, attributes in self._conn.execute(
                "SELECT file_id, status, attributes FROM store_files WHERE store_id = ?", (store_id,)
            )
        }
        chunks = self._conn.execute(
            "SELECT slot, file_id, idx, vector FROM chunks WHERE store_id = ? ORDER BY slot", (store_id,)
        ).fetchall()
        graph = self._graph_path(store_id, version)
        index = StoreIndex.build(self._dimensions, files, chunks, graph if graph.exists() else None)
        self._indexes[store_id] = (version, index)
        self._indexes.move_to_end(store_id)
        if not graph.exists() and len(index):
            self._dirty.add(store_id)  # rebuilt: save it, so the next start need not
            self._saved_at.setdefault(store_id, float("-inf"))
        self._evict()
        return index

    def _evict(self) -> None:
        """Drop the least recently used indexes while all of them hold more than the budget."""
        total = sum(index.nbytes for _, index in self._indexes.values())
        while total > self._max_index_bytes and len(self._indexes) > 1:
            oldest = next(iter(self._indexes))
            if oldest in self._dirty:
                self._save(oldest)  # its graph at its version, so loading it again reads the file
            total -= self._indexes.pop(oldest)[1].nbytes
            self._saved_at.pop(oldest, None)

    @property
    def loaded(self) -> list[str]:
        """The stores whose index is in memory, least recently used first (worker state; for tests)."""
        return list(self._indexes)

    def _apply(self, store_id: str, version: int, change: Callable[[StoreIndex], object]) -> None:
        """After a commit that took the store from `version - 1` to `version`: the same change to the
        index in memory, if it is loaded at `version - 1`; otherwise it is loaded when next used."""
        loaded = self._indexes.get(store_id)
        if loaded is None or loaded[0] != version - 1:
            self._indexes.pop(store_id, None)
            return
        try:
            change(loaded[1])
        except BaseException:
            self._indexes.pop(store_id, None)  # half applied: reload from the rows when next used
            raise
        self._indexes[store_id] = (version, loaded[1])
        self._indexes.move_to_end(store_id)
        self._dirty.add(store_id)
        if self._clock() - self._saved_at.setdefault(store_id, self._clock()) >= self._save_interval:
            self._save(store_id)
        self._evict()  # it may have grown past the budget

    def _graph_path(self, store_id: str, version: int) -> Path:
        return self._dir / "index" / f"{store_id}-{version}.hnsw"

    def _save(self, store_id: str) -> None:
        loaded = self._indexes.get(store_id)
        self._dirty.discard(store_id)
        if loaded is None:
            return
        path = self._graph_path(store_id, loaded[0])
        loaded[1].save(path)
        self._saved_at[store_id] = self._clock()
        for old in (self._dir / "index").glob(f"{store_id}-*.hnsw"):
            if old != path:
                old.unlink(missing_ok=True)


_STATUSES = ("in_progress", "completed", "failed", "cancelled")
_STORE_COLUMNS = "id, tenant, name, data_class, created_at, metadata, last_active_at"
_STORE_FILE_COLUMNS = (
    "store_id, file_id, tenant, status, created_at, attributes, chunking, usage_bytes, last_error, attach_id, "
    "lease_owner, lease_until"
)


def _file(row: Any) -> FileRecord:
    return FileRecord(id=row[0], tenant=row[1], filename=row[2], purpose=row[3], bytes=row[4], created_at=row[5])


def _store(row: Any) -> StoreRecord:
    return StoreRecord(id=row[0], tenant=row[1], name=row[2], data_class=row[3], created_at=row[4],
                       metadata=orjson.loads(row[5]), last_active_at=row[6])  # fmt: skip


def _store_file(row: Any) -> StoreFileRecord:
    return StoreFileRecord(store_id=row[0], file_id=row[1], tenant=row[2], status=row[3], created_at=row[4],
                           attributes=orjson.loads(row[5]), chunking=orjson.loads(row[6]), usage_bytes=row[7],
                           last_error=row[8], attach_id=row[9], lease_owner=row[10],
                           lease_until=row[11])  # fmt: skip


def _write_atomically(path: Path, content: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _implements_catalog(catalog: SqliteCatalog) -> Catalog:  # mypy checks the Protocol here
    return catalog
