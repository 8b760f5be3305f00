"""What the Files and Vector Stores API, the retrieval stage and `interlock ingest` do, apart from
HTTP: one object over the catalog, the ingestion queue, the embedder, the vault and the audit log.

Every call takes the caller's identity: its tenant scopes every look-up (another tenant's file or
store is `NotFound`, never `Forbidden`), and its permissions decide what it may see.

Who sees values: chunk text is stored as DLP left it (tokens where the policy tokenized). Search
results are de-tokenized, from the vault, only for identities holding `read_pii`; every other
caller gets the tokens. A chat answer with retrieval follows the same rule (the model is given the
tokens; the tokens of the retrieved chunks in its answer are put back for `read_pii` callers).
The same permission is needed for a file's content as uploaded. Citations carry no text at all
(file id, filename, chunk index, score).

Stores of a data class above what the caller may send (`Identity.max_class`) can be neither
created nor read by it (403 `data_class_forbidden`: the store is the caller's tenant's, so this
says nothing another tenant could not already know).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from ..errors import BadRequest, Forbidden, NotFound, Overloaded
from ..security.pii.detokenize import TOKEN, replace
from ..security.roles import Identity, Permission, class_rank
from .chunking import ChunkingStrategy, parse_strategy
from .ingest import Ingestor, Job, token_scope
from .sealed import Seal
from .types import Catalog, FileCounts, FileRecord, Hit, StoreFileRecord, StoreRecord

Order = Literal["asc", "desc"]


class Auditor(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class Embed(Protocol):
    async def embed(self, texts: Sequence[str]) -> Any: ...


class Timed(Protocol):
    def retrieved(self, kind: str, seconds: float) -> None: ...


class Recall(Protocol):
    async def recall(self, scope: str, tokens: Sequence[str]) -> dict[str, str]: ...


BATCH_KEY = "batch_id"  # where catalogs before `Catalog.batch_files` kept a store file's batch (not echoed)


def chunking_echo(record: StoreFileRecord) -> dict[str, Any]:
    """A store file's chunking strategy as OpenAI echoes it (without a batch an older catalog kept there)."""
    return {k: v for k, v in record.chunking.items() if k != BATCH_KEY}


def batch_status(files: Sequence[StoreFileRecord]) -> str:
    statuses = {f.status for f in files}
    return next((s for s in ("in_progress", "cancelled") if s in statuses), "completed")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class VectorStores:
    def __init__(
        self,
        catalog: Catalog,
        ingestor: Ingestor,
        embedder: Embed,
        seal: Seal,
        default_chunking: ChunkingStrategy,
        *,
        vault: Recall | None = None,
        audit: Auditor | None = None,
        default_class: str = "internal",
        metrics: Timed | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.ingestor = ingestor
        ingestor.resume_from(self.pending)  # files a process that died left in_progress, once expired
        self._embedder = embedder
        self._seal = seal
        self.default_chunking = default_chunking
        self._vault = vault
        self._audit = audit
        self._default_class = default_class
        self._metrics = metrics
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _record(self, who: Identity, action: str, **fields: Any) -> None:
        """An audit event: ids and counts, never text."""
        if self._audit is not None:
            self._audit.record({"kind": "retrieval", "action": action, "subject": who.subject,
                                "tenant": who.tenant, **fields})  # fmt: skip

    # -- files ----------------------------------------------------------------------------------
    async def upload(self, who: Identity, filename: str, purpose: str, content: bytes) -> FileRecord:
        record = FileRecord(
            id=new_id("file-"), tenant=who.tenant, filename=filename, purpose=purpose, bytes=len(content),
            created_at=self._now(),
        )  # fmt: skip
        await self.catalog.put_file(record, self._seal.seal(who.tenant, record.id, content))
        self._record(who, "file.upload", file_id=record.id, bytes=record.bytes)
        return record

    async def file(self, who: Identity, file_id: str) -> FileRecord:
        record = await self.catalog.get_file(who.tenant, file_id)
        if record is None:
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        return record

    async def content(self, who: Identity, file_id: str) -> tuple[FileRecord, bytes]:
        record = await self.file(who, file_id)
        if not who.may(Permission.READ_PII):
            raise Forbidden("A file's content as uploaded needs the `read_pii` permission")
        stored = await self.catalog.file_content(who.tenant, file_id)
        if stored is None:
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        self._record(who, "file.content", file_id=file_id)
        return record, self._seal.open(who.tenant, file_id, stored)

    async def files(
        self, who: Identity, purpose: str | None, limit: int, after: str | None, order: Order
    ) -> list[FileRecord]:
        return await self.catalog.list_files(who.tenant, purpose=purpose, limit=limit, after=after, order=order)

    async def delete_file(self, who: Identity, file_id: str) -> None:
        if not await self.catalog.delete_file(who.tenant, file_id):
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        self._record(who, "file.delete", file_id=file_id)

    # -- stores ---------------------------------------------------------------------------------
    def _check_class(self, who: Identity, data_class: str) -> None:
        if class_rank(data_class) > class_rank(who.max_class):
            raise Forbidden(f"This identity may not read or write {data_class} data", code="data_class_forbidden")

    async def store(self, who: Identity, store_id: str) -> StoreRecord:
        record = await self.catalog.get_store(who.tenant, store_id)
        if record is None:
            raise NotFound(f"No vector store found with id {_shown(store_id)}", param="vector_store_id")
        return record

    async def readable(self, who: Identity, store_id: str) -> StoreRecord:
        record = await self.store(who, store_id)
        self._check_class(who, record.data_class)
        return record

    async def create_store(
        self,
        who: Identity,
        name: str,
        metadata: dict[str, str],
        data_class: str | None,
        file_ids: Sequence[str] = (),
        chunking: ChunkingStrategy | None = None,
    ) -> StoreRecord:
        data_class = data_class or self._default_class
        self._check_class(who, data_class)
        for file_id in file_ids:  # every file exists, and the queue can take them, before the store is made
            await self.file(who, file_id)
        self.ingestor.room_for(len(set(file_ids)))
        now = self._now()
        record = StoreRecord(
            id=new_id("vs_"), tenant=who.tenant, name=name, data_class=data_class, created_at=now,
            metadata=metadata, last_active_at=now,
        )  # fmt: skip
        await self.catalog.put_store(record)
        self._record(who, "store.create", store_id=record.id, data_class=data_class)
        for file_id in dict.fromkeys(file_ids):
            await self.attach(who, record.id, file_id, {}, chunking)
        return record

    async def update_store(
        self, who: Identity, store_id: str, name: str | None, metadata: dict[str, str] | None
    ) -> StoreRecord:
        record = await self.readable(who, store_id)
        changes: dict[str, Any] = {"last_active_at": self._now()}
        if name is not None:
            changes["name"] = name
        if metadata is not None:
            changes["metadata"] = metadata
        record = msgspec.structs.replace(record, **changes)
        await self.catalog.put_store(record)
        self._record(who, "store.update", store_id=store_id)
        return record

    async def stores(self, who: Identity, limit: int, after: str | None, order: Order) -> list[StoreRecord]:
        return await self.catalog.list_stores(who.tenant, limit=limit, after=after, order=order)

    async def counts(self, who: Identity, store_id: str) -> FileCounts:
        return await self.catalog.file_counts(who.tenant, store_id)

    async def delete_store(self, who: Identity, store_id: str) -> None:
        if not await self.catalog.delete_store(who.tenant, store_id):
            raise NotFound(f"No vector store found with id {_shown(store_id)}", param="vector_store_id")
        self._record(who, "store.delete", store_id=store_id)

    # -- a store's files ------------------------------------------------------------------------
    async def attach(
        self,
        who: Identity,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any],
        chunking: ChunkingStrategy | None,
        batch: str | None = None,
    ) -> StoreFileRecord:
        """Link the file and queue its ingestion; a full queue refuses it (503) and leaves the
        link as it was (none, or the earlier one). A file being ingested is not queued twice (it
        joins `batch` as it is); a file attached before is ingested again with these attributes
        and chunking."""
        store = await self.readable(who, store_id)
        await self.file(who, file_id)
        earlier = await self.catalog.get_store_file(who.tenant, store_id, file_id)
        if earlier is not None and earlier.status == "in_progress":
            if batch is not None:
                await self.catalog.join_batch(who.tenant, store_id, batch, file_id)
            return earlier
        self.ingestor.room_for(1)
        chunking = chunking or self.default_chunking
        record = StoreFileRecord(
            store_id=store_id, file_id=file_id, tenant=who.tenant, status="in_progress", created_at=self._now(),
            attributes=attributes, chunking=chunking.echo(),
            attach_id=new_id("att_"), lease_owner=self.ingestor.owner, lease_until=self.ingestor.lease_until(),
        )  # fmt: skip
        job = Job(who.tenant, store_id, file_id, store.data_class, chunking, record.attach_id)
        await self.catalog.put_store_file(record)
        try:
            self.ingestor.submit(job)  # room_for said yes, but another attach may have come between
        except Overloaded:
            if earlier is not None:
                await self.catalog.put_store_file(earlier)
            else:
                await self.catalog.delete_store_file(who.tenant, store_id, file_id)
            raise
        if batch is not None:
            await self.catalog.join_batch(who.tenant, store_id, batch, file_id)
        self._record(who, "store.file.attach", store_id=store_id, file_id=file_id)
        return record

    async def store_file(self, who: Identity, store_id: str, file_id: str) -> StoreFileRecord:
        await self.store(who, store_id)
        record = await self.catalog.get_store_file(who.tenant, store_id, file_id)
        if record is None:
            raise NotFound(f"No file found with id {_shown(file_id)} in vector store {store_id}", param="file_id")
        return record

    async def store_files(
        self, who: Identity, store_id: str, status: Any, limit: int, after: str | None, order: Order
    ) -> list[StoreFileRecord]:
        await self.store(who, store_id)
        return await self.catalog.list_store_files(
            who.tenant, store_id, status=status, limit=limit, after=after, order=order
        )

    async def detach(self, who: Identity, store_id: str, file_id: str) -> None:
        await self.store(who, store_id)
        if not await self.catalog.delete_store_file(who.tenant, store_id, file_id):
            raise NotFound(f"No file found with id {_shown(file_id)} in vector store {store_id}", param="file_id")
        self._record(who, "store.file.detach", store_id=store_id, file_id=file_id)

    # -- file batches: files attached together, followed together ---------------------------------
    async def create_batch(
        self, who: Identity, store_id: str, entries: Sequence[tuple[str, dict[str, Any], ChunkingStrategy | None]]
    ) -> tuple[str, list[StoreFileRecord]]:
        """Attach every file (checked first, and refused whole when the queue lacks room)."""
        await self.readable(who, store_id)
        if not entries:
            raise BadRequest("A file batch needs `file_ids` or `files`", param="file_ids")
        for file_id, _, _ in entries:
            await self.file(who, file_id)
        self.ingestor.room_for(len(entries))
        batch_id = new_id("vsfb_")
        records = [await self.attach(who, store_id, f, a, c, batch_id) for f, a, c in entries]
        return batch_id, records

    async def batch(self, who: Identity, store_id: str, batch_id: str) -> list[StoreFileRecord]:
        await self.store(who, store_id)
        found = await self.catalog.batch_files(who.tenant, store_id, batch_id)
        if not found:
            raise NotFound(f"No file batch found with id {_shown(batch_id)}", param="batch_id")
        return found

    async def cancel_batch(self, who: Identity, store_id: str, batch_id: str) -> list[StoreFileRecord]:
        """Its files not ingested yet are cancelled (a worker skips them)."""
        out = []
        for record in await self.batch(who, store_id, batch_id):
            if record.status == "in_progress":
                record = msgspec.structs.replace(record, status="cancelled")
                await self.catalog.put_store_file(record)
            out.append(record)
        self._record(who, "store.batch.cancel", store_id=store_id, batch_id=batch_id)
        return out

    async def pending(self) -> list[tuple[Job, StoreFileRecord]]:
        """The store files left in_progress by a process that stopped (their lease expired), as
        jobs to resume."""
        out = []
        for record in await self.catalog.in_progress(self.ingestor.now()):
            store = await self.catalog.get_store(record.tenant, record.store_id)
            if store is None:
                continue
            echoed = chunking_echo(record)
            chunking = parse_strategy(echoed) if echoed else self.default_chunking
            job = Job(record.tenant, record.store_id, record.file_id, store.data_class, chunking, record.attach_id)
            out.append((job, record))
        return out

    # -- search ---------------------------------------------------------------------------------
    async def search(
        self,
        who: Identity,
        store_ids: Sequence[str],
        queries: Sequence[str],
        k: int,
        filters: Mapping[str, Any] | None = None,
        score_threshold: float = 0.0,
        reveal: bool = True,
        kind: str = "search",
    ) -> tuple[list[StoreRecord], list[Hit]]:
        """The stores (checked: the caller's tenant, a class it may read) and the `k` best chunks
        for `queries` (several queries: each searched, merged by best score). Text is de-tokenized
        when `reveal` and the caller holds `read_pii`."""
        stores = [await self.readable(who, s) for s in dict.fromkeys(store_ids)]
        started = time.perf_counter()
        vectors = await self._embedder.embed(list(queries))
        best: dict[tuple[str, str, int], Hit] = {}
        ids = [s.id for s in stores]
        for vector in vectors:
            found = await self.catalog.search(
                who.tenant, ids, vector, k, filters=filters, score_threshold=score_threshold
            )
            for hit in found:
                key = (hit.store_id, hit.file_id, hit.chunk_index)
                if key not in best or best[key].score < hit.score:
                    best[key] = hit
        hits = sorted(best.values(), key=lambda h: -h.score)[:k]
        if self._metrics is not None:
            self._metrics.retrieved(kind, time.perf_counter() - started)
        self._record(who, "store.search", store_ids=ids,
                     chunks=[f"{h.file_id}#{h.chunk_index}" for h in hits])  # fmt: skip
        if reveal:
            mapping = await self.values(who, hits)
            if mapping:
                hits = [msgspec.structs.replace(h, text=replace(h.text, mapping)) for h in hits]
        return stores, hits

    async def values(self, who: Identity, hits: Sequence[Hit]) -> dict[str, str]:
        """The values of the tokens in the hits' text, from the vault, for a caller holding
        `read_pii` (empty for anyone else)."""
        if self._vault is None or not who.may(Permission.READ_PII):
            return {}
        by_store: dict[str, set[str]] = {}
        for hit in hits:
            by_store.setdefault(hit.store_id, set()).update(TOKEN.findall(hit.text))
        mapping: dict[str, str] = {}
        for store_id, tokens in by_store.items():
            if tokens:
                mapping.update(await self._vault.recall(token_scope(who.tenant, store_id), sorted(tokens)))
        return mapping


_SHOWN = 64


def _shown(value: str) -> str:
    """An id a caller sent, for an error message: shown when it looks like one of ours."""
    return value if len(value) <= _SHOWN and value.replace("-", "").replace("_", "").isalnum() else "(invalid id)"
