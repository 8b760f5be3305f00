"""/v1/vector_stores: create, list, get, update, delete; a store's files (attach, list, get,
detach) with their ingestion status; search.

Shaped as OpenAI's `VectorStore`, `VectorStoreFile`, `VectorStoreDeleted` and
`vector_store.search_results.page`; a store's `data_class` is ours, on create and in every
answer. Changes need `manage_files`, reading and searching `invoke`; a store of another tenant
is 404 (retrieval/service.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import BadRequest
from ..protocol.vector_stores import AttachFile, CreateBatch, CreateStore, SearchRequest, UpdateStore
from ..retrieval.chunking import ChunkingStrategy, parse_strategy
from ..retrieval.filters import parse_filter
from ..retrieval.service import VectorStores, batch_status, chunking_echo
from ..retrieval.types import FileCounts, Hit, StoreFileRecord, StoreRecord
from .exchange import Exchange
from .pages import decode, page, query

STATUSES = ("in_progress", "completed", "failed", "cancelled")
_ERROR_CODES = {"unsupported_file": "unsupported_file", "invalid_file": "invalid_file", "pii_refused": "invalid_file",
                "data_class_exceeded": "invalid_file"}  # fmt: skip


def counts_object(counts: FileCounts) -> dict[str, int]:
    return {"in_progress": counts.in_progress, "completed": counts.completed, "failed": counts.failed,
            "cancelled": counts.cancelled, "total": counts.total}  # fmt: skip


def store_object(record: StoreRecord, counts: FileCounts, usage_bytes: int = 0) -> dict[str, Any]:
    return {
        "id": record.id, "object": "vector_store", "created_at": record.created_at, "name": record.name,
        "usage_bytes": usage_bytes, "file_counts": counts_object(counts),
        "status": "in_progress" if counts.in_progress else "completed", "expires_after": None, "expires_at": None,
        "last_active_at": record.last_active_at, "metadata": record.metadata, "data_class": record.data_class,
    }  # fmt: skip


def last_error(reason: str | None) -> dict[str, str] | None:
    """OpenAI's `last_error`: a code of its three, the message ours (a reason, never text)."""
    if reason is None:
        return None
    return {"code": _ERROR_CODES.get(reason.split(":", 1)[0], "server_error"), "message": reason}


def store_file_object(record: StoreFileRecord) -> dict[str, Any]:
    return {
        "id": record.file_id, "object": "vector_store.file", "usage_bytes": record.usage_bytes,
        "created_at": record.created_at, "vector_store_id": record.store_id, "status": record.status,
        "last_error": last_error(record.last_error), "chunking_strategy": chunking_echo(record) or {"type": "other"},
        "attributes": record.attributes,
    }  # fmt: skip


def batch_object(batch_id: str, store_id: str, files: list[StoreFileRecord]) -> dict[str, Any]:
    counts = {status: sum(f.status == status for f in files) for status in STATUSES}
    return {"id": batch_id, "object": "vector_store.files_batch", "created_at": min(f.created_at for f in files),
            "vector_store_id": store_id, "status": batch_status(files),
            "file_counts": {**counts, "total": len(files)}}  # fmt: skip


def hit_object(hit: Hit) -> dict[str, Any]:
    return {"file_id": hit.file_id, "filename": hit.filename, "score": hit.score, "attributes": hit.attributes,
            "content": [{"type": "text", "text": hit.text}]}  # fmt: skip


def chunking_of(raw: dict[str, Any] | None) -> ChunkingStrategy | None:
    """A request's chunking strategy; None when it names none (the configured default)."""
    return None if raw is None else parse_strategy(raw)


class VectorStoreHandlers:
    def __init__(self, service: VectorStores) -> None:
        self._service = service

    async def _shaped(self, ex: Exchange, record: StoreRecord) -> dict[str, Any]:
        who = ex.identity
        counts = await self._service.counts(who, record.id)
        return store_object(record, counts, counts.usage_bytes)

    # -- stores ---------------------------------------------------------------------------------
    async def create(self, ex: Exchange) -> None:
        body = await decode(ex, CreateStore)
        chunking = chunking_of(body.chunking_strategy)
        record = await self._service.create_store(
            ex.identity, body.name or "", body.metadata or {}, body.data_class, body.file_ids, chunking
        )
        await ex.json(200, orjson.dumps(await self._shaped(ex, record)))

    async def list(self, ex: Exchange) -> None:
        q = query(ex)
        records = await self._service.stores(ex.identity, q.limit + 1, q.after, q.order)
        shaped = {r.id: await self._shaped(ex, r) for r in records[: q.limit]}
        await ex.json(200, page(records, q.limit, lambda r: shaped[r.id], lambda r: r.id))

    async def get(self, ex: Exchange, store_id: str) -> None:
        record = await self._service.store(ex.identity, store_id)
        await ex.json(200, orjson.dumps(await self._shaped(ex, record)))

    async def update(self, ex: Exchange, store_id: str) -> None:
        body = await decode(ex, UpdateStore)
        record = await self._service.update_store(ex.identity, store_id, body.name, body.metadata)
        await ex.json(200, orjson.dumps(await self._shaped(ex, record)))

    async def delete(self, ex: Exchange, store_id: str) -> None:
        await self._service.delete_store(ex.identity, store_id)
        await ex.json(200, orjson.dumps({"id": store_id, "object": "vector_store.deleted", "deleted": True}))

    # -- a store's files ------------------------------------------------------------------------
    async def attach(self, ex: Exchange, store_id: str) -> None:
        body = await decode(ex, AttachFile)
        chunking = chunking_of(body.chunking_strategy)
        record = await self._service.attach(ex.identity, store_id, body.file_id, body.attributes or {}, chunking)
        await ex.json(200, orjson.dumps(store_file_object(record)))

    async def files(self, ex: Exchange, store_id: str) -> None:
        q = query(ex)
        status = q.params.get("filter") or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"`filter` must be one of {', '.join(STATUSES)}", param="filter")
        records = await self._service.store_files(ex.identity, store_id, status, q.limit + 1, q.after, q.order)
        await ex.json(200, page(records, q.limit, store_file_object, lambda r: r.file_id))

    async def file(self, ex: Exchange, store_id: str, file_id: str) -> None:
        record = await self._service.store_file(ex.identity, store_id, file_id)
        await ex.json(200, orjson.dumps(store_file_object(record)))

    async def detach(self, ex: Exchange, store_id: str, file_id: str) -> None:
        await self._service.detach(ex.identity, store_id, file_id)
        await ex.json(200, orjson.dumps({"id": file_id, "object": "vector_store.file.deleted", "deleted": True}))

    # -- file batches ---------------------------------------------------------------------------
    async def create_batch(self, ex: Exchange, store_id: str) -> None:
        body = await decode(ex, CreateBatch)
        shared = chunking_of(body.chunking_strategy)
        entries = [(f, body.attributes or {}, shared) for f in dict.fromkeys(body.file_ids)]
        entries += [(f.file_id, f.attributes or {}, chunking_of(f.chunking_strategy)) for f in body.files]
        batch_id, records = await self._service.create_batch(ex.identity, store_id, entries)
        await ex.json(200, orjson.dumps(batch_object(batch_id, store_id, records)))

    async def batch(self, ex: Exchange, store_id: str, batch_id: str) -> None:
        files = await self._service.batch(ex.identity, store_id, batch_id)
        await ex.json(200, orjson.dumps(batch_object(batch_id, store_id, files)))

    async def cancel_batch(self, ex: Exchange, store_id: str, batch_id: str) -> None:
        files = await self._service.cancel_batch(ex.identity, store_id, batch_id)
        await ex.json(200, orjson.dumps(batch_object(batch_id, store_id, files)))

    async def batch_files(self, ex: Exchange, store_id: str, batch_id: str) -> None:
        q = query(ex)
        status = q.params.get("filter") or None
        files = [f for f in await self._service.batch(ex.identity, store_id, batch_id) if status in (None, f.status)]
        if q.order == "desc":
            files.reverse()
        if q.after is not None:
            ids = [f.file_id for f in files]
            files = files[ids.index(q.after) + 1 :] if q.after in ids else []
        await ex.json(200, page(files, q.limit, store_file_object, lambda r: r.file_id))

    # -- search ---------------------------------------------------------------------------------
    async def search(self, ex: Exchange, store_id: str) -> None:
        body = await decode(ex, SearchRequest)
        queries = [body.query] if isinstance(body.query, str) else body.query
        if not all(q.strip() for q in queries):
            raise BadRequest("`query` must not be empty", param="query")
        if body.filters is not None:
            parse_filter(body.filters)  # a 400 naming the field, before anything is embedded
        threshold = body.ranking_options.score_threshold if body.ranking_options is not None else 0.0
        _, hits = await self._service.search(
            ex.identity, [store_id], queries, body.max_num_results, body.filters, threshold
        )
        await ex.json(200, orjson.dumps({
            "object": "vector_store.search_results.page", "search_query": queries,
            "data": [hit_object(h) for h in hits], "has_more": False, "next_page": None,
        }))  # fmt: skip
