"""The production vector store catalog: PostgreSQL with pgvector (an HNSW index, cosine distance).

Every table lives in one schema named by the constructor (`interlock_rag` by default, so tests and
tenants of a shared database can be kept apart); `start` creates the extension, the schema, the
tables and the index when they are missing, under an advisory lock, so several gateway processes
starting at once do not race. Files keep their bytes in the database (`bytea`), so every process
sees the same files; chunks keep their text and a `vector(384)`.

Foreign keys do the cascades: deleting a file removes its store files and their chunks, deleting
a store its store files and chunks, deleting a store file its chunks. Tenancy is checked in SQL
on every call (a store or file of another tenant is not found).

Search, with the same semantics as the SQLite catalog: only chunks of `completed` store files
whose attributes pass the filter (`filters.to_sql`, bound parameters) are candidates. How many
there are is known without touching the chunks (`store_files.chunks`, kept by `add_chunks`):

- at most `EXACT_LIMIT` (2,000): an exact scan of those chunks, reached through the store files'
  keys and ordered by `(embedding <=> q) + 0`, an expression the HNSW index cannot serve;
- more: the HNSW index, which holds every store's chunks, with pgvector's iterative scan in
  strict order (`hnsw.iterative_scan`, pgvector 0.8), which walks on until `k` rows pass the store
  and filter conditions, `hnsw.ef_search` at least `k`, and `hnsw.max_scan_tuples` raised in
  proportion to how few of the table's chunks pass (40 k / share, at least pgvector's 20,000).
  `enable_sort` is off for that query: joined to the store files, the planner otherwise reads
  every candidate through their keys and sorts them: 125.6 ms p50 at 100k chunks, against 6.7 ms
  p50 and 11.1 ms p99 through the index (bench/rag/run.py; 2.1 / 3.0 ms at 10k, where the exact
  scan took 12.3 / 18.6).

Scores are `1 - cosine distance`. The score threshold is applied to the `k` rows found (they come
best first, so it cuts a prefix), not inside the SQL, where it would make the index walk on.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from interlock.embeddings.minilm import DIM
from interlock.errors import NotFound
from interlock.retrieval.filters import parse_filter, to_sql
from interlock.retrieval.types import (
    Catalog,
    Chunk,
    FileCounts,
    FileRecord,
    FileStatus,
    Hit,
    StoreFileRecord,
    StoreRecord,
)
from interlock.retrieval.vector_index import chunk_rows, query_row

EXACT_LIMIT = 2_000
_EF_SEARCH = 64
_SCAN_FACTOR = 40  # tuples the iterative scan may visit per wanted row, divided by the share that pass
_MIN_SCAN = 20_000  # pgvector's default hnsw.max_scan_tuples
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK = 0x494C5247  # advisory lock id serialising schema creation

_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.files (
  id text PRIMARY KEY, tenant text NOT NULL, filename text NOT NULL, purpose text NOT NULL,
  bytes bigint NOT NULL, created_at bigint NOT NULL, content bytea NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_tenant ON {s}.files (tenant, created_at, id);
CREATE TABLE IF NOT EXISTS {s}.stores (
  id text PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, data_class text NOT NULL,
  created_at bigint NOT NULL, metadata jsonb NOT NULL, last_active_at bigint);
CREATE INDEX IF NOT EXISTS stores_by_tenant ON {s}.stores (tenant, created_at, id);
CREATE TABLE IF NOT EXISTS {s}.store_files (
  store_id text NOT NULL REFERENCES {s}.stores (id) ON DELETE CASCADE,
  file_id text NOT NULL REFERENCES {s}.files (id) ON DELETE CASCADE,
  tenant text NOT NULL, status text NOT NULL, created_at bigint NOT NULL, attributes jsonb NOT NULL,
  chunking jsonb NOT NULL, usage_bytes bigint NOT NULL, last_error text, chunks integer NOT NULL DEFAULT 0,
  PRIMARY KEY (store_id, file_id));
ALTER TABLE {s}.store_files ADD COLUMN IF NOT EXISTS attach_id text NOT NULL DEFAULT '';
ALTER TABLE {s}.store_files ADD COLUMN IF NOT EXISTS lease_owner text NOT NULL DEFAULT '';
ALTER TABLE {s}.store_files ADD COLUMN IF NOT EXISTS lease_until double precision NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS store_files_by_file ON {s}.store_files (file_id);
CREATE TABLE IF NOT EXISTS {s}.chunks (
  store_id text NOT NULL, file_id text NOT NULL, idx integer NOT NULL, text text NOT NULL,
  tokens integer NOT NULL, embedding vector({dim}) NOT NULL, PRIMARY KEY (store_id, file_id, idx),
  FOREIGN KEY (store_id, file_id) REFERENCES {s}.store_files (store_id, file_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS {s}.batch_files (
  store_id text NOT NULL, batch_id text NOT NULL, file_id text NOT NULL, PRIMARY KEY (store_id, batch_id, file_id),
  FOREIGN KEY (store_id, file_id) REFERENCES {s}.store_files (store_id, file_id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS batch_files_by_file ON {s}.batch_files (store_id, file_id);
CREATE INDEX IF NOT EXISTS chunks_embedding ON {s}.chunks
  USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
"""

_FILE_COLUMNS = "id, tenant, filename, purpose, bytes, created_at"
_STORE_COLUMNS = "id, tenant, name, data_class, created_at, metadata, last_active_at"
_STORE_FILE_COLUMNS = (
    "store_id, file_id, tenant, status, created_at, attributes, chunking, usage_bytes, last_error, attach_id, "
    "lease_owner, lease_until"
)


def _encode_vector(value: Any) -> bytes:
    """pgvector's binary format: dimensions and a reserved word (int16 each), then big-endian float4."""
    row = np.asarray(value, dtype=np.float32).reshape(-1)
    return struct.pack(">HH", len(row), 0) + row.astype(">f4").tobytes()


def _decode_vector(data: bytes) -> NDArray[np.float32]:
    dim = struct.unpack_from(">H", data)[0]
    return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector'"
    )
    await conn.set_type_codec("vector", encoder=_encode_vector, decoder=_decode_vector, schema=schema, format="binary")


class PgCatalog:
    """`Catalog` in PostgreSQL: `dsn` as asyncpg takes it, tables in `schema`."""

    def __init__(
        self, dsn: str, *, schema: str = "interlock_rag", dimensions: int = DIM, pool_size: int = 4,
        command_timeout: float = 30.0,
    ) -> None:  # fmt: skip
        if not _SCHEMA_NAME.match(schema):
            raise ValueError("schema must be a lower-case SQL identifier")
        self._dsn = dsn
        self._s = schema
        self._dimensions = dimensions
        self._pool_size = pool_size
        self._timeout = command_timeout
        self._pool: Any = None  # asyncpg.Pool (untyped)
        self._iterative = True

    async def start(self) -> None:
        import asyncpg

        if self._pool is not None:
            return
        conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                upgrade = await conn.fetchval("SELECT to_regclass($1) IS NULL", f"{self._s}.batch_files")
                await conn.execute(_DDL.format(s=self._s, dim=self._dimensions))
                if upgrade:  # batches were once kept only in the store file's chunking (under "batch_id")
                    await conn.execute(
                        f"INSERT INTO {self._s}.batch_files (store_id, batch_id, file_id) SELECT store_id, "
                        f"chunking->>'batch_id', file_id FROM {self._s}.store_files WHERE chunking ? 'batch_id' "
                        "ON CONFLICT DO NOTHING"
                    )
                version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        finally:
            await conn.close()
        # Iterative index scans came with pgvector 0.8; before it, a filter that few chunks pass
        # may return fewer than k from the HNSW path (its settings would be refused, so not set).
        self._iterative = tuple(int(p) for p in re.findall(r"\d+", str(version))[:2]) >= (0, 8)
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, command_timeout=self._timeout, init=_init_connection
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def _db(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the catalog is not started")
        return self._pool

    # Files

    async def put_file(self, record: FileRecord, content: bytes) -> None:
        r = record
        status = await self._db.execute(
            f"INSERT INTO {self._s}.files ({_FILE_COLUMNS}, content) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (id) DO UPDATE SET filename = excluded.filename, purpose = excluded.purpose, "
            f"bytes = excluded.bytes, content = excluded.content WHERE {self._s}.files.tenant = excluded.tenant",
            r.id, r.tenant, r.filename, r.purpose, r.bytes, r.created_at, content,
        )  # fmt: skip
        if status.endswith(" 0"):
            raise ValueError("file id already in use")

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_FILE_COLUMNS} FROM {self._s}.files WHERE id = $1 AND tenant = $2", file_id, tenant
        )
        return None if row is None else FileRecord(**dict(row))

    async def file_content(self, tenant: str, file_id: str) -> bytes | None:
        content: bytes | None = await self._db.fetchval(
            f"SELECT content FROM {self._s}.files WHERE id = $1 AND tenant = $2", file_id, tenant
        )
        return content

    async def list_files(
        self, tenant: str, *, purpose: str | None = None, limit: int = 10000, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> list[FileRecord]:  # fmt: skip
        where, params = "tenant = $1", [tenant]
        if purpose is not None:
            where, params = where + " AND purpose = $2", [*params, purpose]
        rows = await self._page("files", "id", _FILE_COLUMNS, where, params, limit, after, order)
        return [FileRecord(**dict(row)) for row in rows]

    async def _page(
        self, table: str, key: str, columns: str, where: str, params: list[Any], limit: int, after: str | None,
        order: Literal["asc", "desc"],
    ) -> list[Any]:  # fmt: skip
        """A page of `table` in (created_at, key) order after the row whose `key` is `after`; `where`
        uses $1..$n for `params`."""
        direction = "DESC" if order == "desc" else "ASC"
        n = len(params)
        if after is not None:
            cursor = await self._db.fetchval(
                f"SELECT created_at FROM {self._s}.{table} WHERE {where} AND {key} = ${n + 1}", *params, after
            )
            if cursor is None:
                return []
            compare = "<" if order == "desc" else ">"
            where += f" AND (created_at, {key}) {compare} (${n + 1}, ${n + 2})"
            params = [*params, cursor, after]
        sql = (
            f"SELECT {columns} FROM {self._s}.{table} WHERE {where} "
            f"ORDER BY created_at {direction}, {key} {direction} LIMIT ${len(params) + 1}"
        )
        rows: list[Any] = await self._db.fetch(sql, *params, max(0, limit))
        return rows

    async def delete_file(self, tenant: str, file_id: str) -> bool:
        status = await self._db.execute(f"DELETE FROM {self._s}.files WHERE id = $1 AND tenant = $2", file_id, tenant)
        return bool(status != "DELETE 0")

    # Vector stores

    async def put_store(self, record: StoreRecord) -> None:
        r = record
        status = await self._db.execute(
            f"INSERT INTO {self._s}.stores ({_STORE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, metadata = excluded.metadata, "
            "last_active_at = excluded.last_active_at, data_class = excluded.data_class "
            f"WHERE {self._s}.stores.tenant = excluded.tenant",
            r.id, r.tenant, r.name, r.data_class, r.created_at, r.metadata, r.last_active_at,
        )  # fmt: skip
        if status.endswith(" 0"):
            raise ValueError("vector store id already in use")

    async def get_store(self, tenant: str, store_id: str) -> StoreRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_STORE_COLUMNS} FROM {self._s}.stores WHERE id = $1 AND tenant = $2", store_id, tenant
        )
        return None if row is None else StoreRecord(**dict(row))

    async def list_stores(
        self, tenant: str, *, limit: int = 20, after: str | None = None, order: Literal["asc", "desc"] = "desc"
    ) -> list[StoreRecord]:
        rows = await self._page("stores", "id", _STORE_COLUMNS, "tenant = $1", [tenant], limit, after, order)
        return [StoreRecord(**dict(row)) for row in rows]

    async def delete_store(self, tenant: str, store_id: str) -> bool:
        status = await self._db.execute(f"DELETE FROM {self._s}.stores WHERE id = $1 AND tenant = $2", store_id, tenant)
        return bool(status != "DELETE 0")

    # A store's files

    async def put_store_file(self, record: StoreFileRecord) -> None:
        r = record
        async with self._db.acquire() as conn, conn.transaction():
            owned = await conn.fetchval(
                f"SELECT (SELECT count(*) FROM {self._s}.stores WHERE id = $1 AND tenant = $3) "
                f"+ (SELECT count(*) FROM {self._s}.files WHERE id = $2 AND tenant = $3)",
                r.store_id, r.file_id, r.tenant,
            )  # fmt: skip
            if owned != 2:
                raise NotFound("vector store or file not found")
            status = await conn.execute(
                f"INSERT INTO {self._s}.store_files ({_STORE_FILE_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                "ON CONFLICT (store_id, file_id) DO UPDATE SET status = excluded.status, "
                "attributes = excluded.attributes, chunking = excluded.chunking, usage_bytes = excluded.usage_bytes, "
                "last_error = excluded.last_error, attach_id = excluded.attach_id, "
                "lease_owner = excluded.lease_owner, lease_until = excluded.lease_until "
                f"WHERE {self._s}.store_files.tenant = excluded.tenant",
                r.store_id, r.file_id, r.tenant, r.status, r.created_at, r.attributes, r.chunking, r.usage_bytes,
                r.last_error, r.attach_id, r.lease_owner, r.lease_until,
            )  # fmt: skip
            if status.endswith(" 0"):
                raise NotFound("vector store not found")

    async def get_store_file(self, tenant: str, store_id: str, file_id: str) -> StoreFileRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_STORE_FILE_COLUMNS} FROM {self._s}.store_files "
            "WHERE store_id = $1 AND file_id = $2 AND tenant = $3",
            store_id, file_id, tenant,
        )  # fmt: skip
        return None if row is None else StoreFileRecord(**dict(row))

    async def list_store_files(
        self, tenant: str, store_id: str, *, status: FileStatus | None = None, limit: int = 20,
        after: str | None = None, order: Literal["asc", "desc"] = "desc",
    ) -> list[StoreFileRecord]:  # fmt: skip
        where, params = "tenant = $1 AND store_id = $2", [tenant, store_id]
        if status is not None:
            where, params = where + " AND status = $3", [*params, status]
        rows = await self._page("store_files", "file_id", _STORE_FILE_COLUMNS, where, params, limit, after, order)
        return [StoreFileRecord(**dict(row)) for row in rows]

    async def delete_store_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        status = await self._db.execute(
            f"DELETE FROM {self._s}.store_files WHERE store_id = $1 AND file_id = $2 AND tenant = $3",
            store_id, file_id, tenant,
        )  # fmt: skip
        return bool(status != "DELETE 0")

    async def in_progress(self, expired_at: float | None = None) -> list[StoreFileRecord]:
        rows = await self._db.fetch(
            f"SELECT {_STORE_FILE_COLUMNS} FROM {self._s}.store_files WHERE status = 'in_progress' "
            "AND lease_until <= $1 ORDER BY created_at",
            float("inf") if expired_at is None else expired_at,
        )
        return [StoreFileRecord(**dict(row)) for row in rows]

    async def claim_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, owner: str, now: float, until: float
    ) -> bool:
        return await self._updated(
            f"UPDATE {self._s}.store_files SET lease_owner = $1, lease_until = $2 WHERE store_id = $3 "
            "AND file_id = $4 AND tenant = $5 AND attach_id = $6 AND status = 'in_progress' AND lease_until <= $7",
            owner, until, store_id, file_id, tenant, attach_id, now,
        )  # fmt: skip

    async def _updated(self, sql: str, *args: Any) -> bool:
        """Whether the UPDATE changed a row."""
        return bool(await self._db.execute(sql, *args) != "UPDATE 0")

    async def renew_leases(self, owner: str, until: float) -> None:
        await self._db.execute(
            f"UPDATE {self._s}.store_files SET lease_until = $1 WHERE lease_owner = $2 AND status = 'in_progress'",
            until, owner,
        )  # fmt: skip

    async def finish_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, status: FileStatus, *,
        last_error: str | None = None, usage_bytes: int = 0,
    ) -> bool:  # fmt: skip
        return await self._updated(
            f"UPDATE {self._s}.store_files SET status = $1, last_error = $2, usage_bytes = $3 WHERE store_id = $4 "
            "AND file_id = $5 AND tenant = $6 AND attach_id = $7 AND status = 'in_progress'",
            status, last_error, usage_bytes, store_id, file_id, tenant, attach_id,
        )  # fmt: skip

    async def join_batch(self, tenant: str, store_id: str, batch_id: str, file_id: str) -> None:
        async with self._db.acquire() as conn, conn.transaction():
            link = await conn.fetchval(
                f"SELECT 1 FROM {self._s}.store_files WHERE store_id = $1 AND file_id = $2 AND tenant = $3",
                store_id, file_id, tenant,
            )  # fmt: skip
            if link is None:
                raise NotFound("file not found in vector store")
            await conn.execute(
                f"INSERT INTO {self._s}.batch_files (store_id, batch_id, file_id) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                store_id, batch_id, file_id,
            )  # fmt: skip

    async def batch_files(self, tenant: str, store_id: str, batch_id: str) -> list[StoreFileRecord]:
        columns = ", ".join(f"sf.{c.strip()}" for c in _STORE_FILE_COLUMNS.split(","))
        rows = await self._db.fetch(
            f"SELECT {columns} FROM {self._s}.batch_files b JOIN {self._s}.store_files sf "
            "ON sf.store_id = b.store_id AND sf.file_id = b.file_id "
            "WHERE b.store_id = $1 AND b.batch_id = $2 AND sf.tenant = $3 ORDER BY sf.created_at, sf.file_id",
            store_id, batch_id, tenant,
        )  # fmt: skip
        return [StoreFileRecord(**dict(row)) for row in rows]

    async def file_counts(self, tenant: str, store_id: str) -> FileCounts:
        rows = await self._db.fetch(
            f"SELECT status, count(*) AS n, sum(usage_bytes) AS used FROM {self._s}.store_files "
            "WHERE tenant = $1 AND store_id = $2 GROUP BY status",
            tenant, store_id,
        )  # fmt: skip
        counts = {
            r["status"]: r["n"] for r in rows if r["status"] in ("in_progress", "completed", "failed", "cancelled")
        }
        return FileCounts(**counts, usage_bytes=sum(int(r["used"] or 0) for r in rows))

    # Chunks

    async def add_chunks(
        self, tenant: str, store_id: str, file_id: str, chunks: Sequence[Chunk], vectors: NDArray[Any],
        attach_id: str | None = None,
    ) -> bool:  # fmt: skip
        rows = chunk_rows(len(chunks), vectors, self._dimensions)
        if not chunks:
            return True
        async with self._db.acquire() as conn, conn.transaction():
            link = await conn.fetchrow(
                f"SELECT attach_id FROM {self._s}.store_files WHERE store_id = $1 AND file_id = $2 AND tenant = $3 "
                "FOR UPDATE",
                store_id, file_id, tenant,
            )  # fmt: skip
            if link is None:
                raise NotFound("file not found in vector store")
            if attach_id is not None and link["attach_id"] != attach_id:
                return False  # attached again since: that ingestion writes its own
            await conn.execute(
                f"DELETE FROM {self._s}.chunks WHERE store_id = $1 AND file_id = $2", store_id, file_id
            )  # the file's earlier ingestion, whatever its number of chunks
            await conn.executemany(
                f"INSERT INTO {self._s}.chunks (store_id, file_id, idx, text, tokens, embedding) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                [(store_id, file_id, c.index, c.text, c.tokens, row) for c, row in zip(chunks, rows, strict=True)],
            )
            await conn.execute(
                f"UPDATE {self._s}.store_files SET chunks = (SELECT count(*) FROM {self._s}.chunks "
                "WHERE store_id = $1 AND file_id = $2) WHERE store_id = $1 AND file_id = $2",
                store_id, file_id,
            )  # fmt: skip
        return True

    async def search(
        self, tenant: str, store_ids: Sequence[str], vector: NDArray[Any], k: int, *,
        filters: Mapping[str, Any] | None = None, score_threshold: float = 0.0,
    ) -> list[Hit]:  # fmt: skip
        tree = parse_filter(filters) if filters is not None else None
        query = query_row(vector, self._dimensions)
        if k < 1 or not store_ids:
            return []
        # $1 the tenant, $2 the store ids; the filter's parameters follow.
        params: list[Any] = [tenant, list(dict.fromkeys(store_ids))]
        passes = "sf.status = 'completed'"
        if tree is not None:
            passes += " AND " + to_sql(tree, "sf.attributes", params)
        tables = f"{self._s}.store_files sf JOIN {self._s}.stores s ON s.id = sf.store_id"
        where = f"s.tenant = $1 AND sf.store_id = ANY($2::text[]) AND {passes}"
        q, limit = f"${len(params) + 1}", f"${len(params) + 2}"
        select = (
            "SELECT c.store_id, c.file_id, c.idx, c.text, f.filename, sf.attributes, "
            f"(c.embedding <=> {q}) AS distance "
            f"FROM {tables} JOIN {self._s}.chunks c ON c.store_id = sf.store_id AND c.file_id = sf.file_id "
            f"JOIN {self._s}.files f ON f.id = sf.file_id WHERE {where}"
        )
        # Round trips are most of the cost at this size: the count and the table's size in one
        # statement, every setting in another.
        count = (
            f"SELECT coalesce(sum(sf.chunks), 0) AS candidates, (SELECT greatest(reltuples, 0)::bigint "
            f"FROM pg_class WHERE oid = '{self._s}.chunks'::regclass) AS table_rows FROM {tables} WHERE {where}"
        )
        async with self._db.acquire() as conn, conn.transaction():
            counted = await conn.fetchrow(count, *params)
            candidates, table_rows = int(counted["candidates"]), max(int(counted["table_rows"] or 0), 1)
            if not candidates:
                return []
            if candidates <= EXACT_LIMIT:
                order = f"(c.embedding <=> {q}) + 0"  # not the index's ordering: an exact scan
            else:
                order = f"c.embedding <=> {q}"
                # The index holds every store's chunks: the fewer of them pass, the further the
                # iterative scan must walk to find k that do. Joined to the store files, the
                # planner prefers reading every candidate through their keys and sorting (it
                # underestimates how many there are); without sorts the ordered index scan drives.
                population = max(table_rows, candidates)
                walk = max(_MIN_SCAN, min(population, _SCAN_FACTOR * k * population // candidates))
                settings = {"hnsw.ef_search": max(_EF_SEARCH, int(k)), "enable_sort": "off"}
                if self._iterative:
                    settings |= {"hnsw.iterative_scan": "strict_order", "hnsw.max_scan_tuples": walk}
                names = list(settings)
                await conn.execute(
                    "SELECT " + ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(len(names))),
                    *[x for name in names for x in (name, str(settings[name]))],
                )
            rows = await conn.fetch(f"{select} ORDER BY {order} LIMIT {limit}", *params, query, int(k))
        hits = []
        for row in rows:
            score = 1.0 - float(row["distance"])
            if score < score_threshold:
                break
            hits.append(
                Hit(store_id=row["store_id"], file_id=row["file_id"], filename=row["filename"], chunk_index=row["idx"],
                    score=score, text=row["text"], attributes=row["attributes"])
            )  # fmt: skip
        return hits


def _implements_catalog(catalog: PgCatalog) -> Catalog:  # mypy checks the Protocol here
    return catalog
