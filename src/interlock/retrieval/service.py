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

A filename is text the caller chose, so it is screened at upload under the retrieval DLP policy
as chunks are (masked, redacted or tokenized, in the vault scope `filename_scope`; a type the
policy blocks refuses the upload, 400 naming the types) and stored as screened: that is the name
the model, citations, search hits and file objects show, with its tokens put back only for
`read_pii` callers (file objects and search hits).

Stores of a data class above what the caller may send (`Identity.max_class`) can be neither
created nor read by it: creating one is 403 `data_class_forbidden` (the caller named the class);
every call on an existing one (get, update, delete, its files, batches, search) answers
`NotFound` as for another tenant's store, and listing leaves it out. One guard, `store()`, serves
every store-scoped call.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from ..errors import BadRequest, Forbidden, NotFound, Overloaded
from ..security.pii.detokenize import TOKEN, replace
from ..security.pii.vault import vault_scope
from ..security.roles import Identity, Permission, class_rank
from ..threads import sized
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


class Screen(Protocol):
    """DLP for stored text (`DlpStage.screen_texts` bound to the retrieval policy)."""

    async def __call__(self, texts: list[str], scope: str) -> Any: ...


def filename_scope(tenant: str, file_id: str) -> str:
    """The vault scope of a file's name's tokens (apart from requests' `rq:` and stores' `vs:`)."""
    return vault_scope(tenant, "file", file_id)


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
        screen: Screen | None = None,
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
        self._screen = screen
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
        file_id = new_id("file-")
        if self._screen is not None:
            screened = await self._screen([filename], filename_scope(who.tenant, file_id))
            if screened.refused:
                raise BadRequest(
                    f"The filename contains {', '.join(screened.refused)}, which the retrieval DLP policy blocks",
                    param="file",
                    code="dlp_blocked",
                )
            filename = screened.texts[0]
        record = FileRecord(
            id=file_id, tenant=who.tenant, filename=filename, purpose=purpose, bytes=len(content),
            created_at=self._now(),
        )  # fmt: skip
        sealed = await sized(len(content), self._seal.seal, who.tenant, record.id, content)
        await self.catalog.put_file(record, sealed)
        self._record(who, "file.upload", file_id=record.id, bytes=record.bytes)
        return (await self._named(who, [record]))[0]

    async def _named(self, who: Identity, records: list[FileRecord]) -> list[FileRecord]:
        """The records with their filenames' tokens put back, for a `read_pii` caller."""
        if self._vault is None or not who.may(Permission.READ_PII):
            return records
        out = []
        for r in records:
            tokens = TOKEN.findall(r.filename)
            if tokens:
                mapping = await self._vault.recall(filename_scope(who.tenant, r.id), sorted(set(tokens)))
                r = msgspec.structs.replace(r, filename=replace(r.filename, mapping))
            out.append(r)
        return out

    async def _file(self, who: Identity, file_id: str) -> FileRecord:
        record = await self.catalog.get_file(who.tenant, file_id)
        if record is None:
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        return record

    async def file(self, who: Identity, file_id: str) -> FileRecord:
        return (await self._named(who, [await self._file(who, file_id)]))[0]

    async def content(self, who: Identity, file_id: str) -> tuple[FileRecord, bytes]:
        record = await self.file(who, file_id)
        if not who.may(Permission.READ_PII):
            raise Forbidden("A file's content as uploaded needs the `read_pii` permission")
        stored = await self.catalog.file_content(who.tenant, file_id)
        if stored is None:
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        self._record(who, "file.content", file_id=file_id)
        return record, await sized(len(stored), self._seal.open, who.tenant, file_id, stored)

    async def files(
        self, who: Identity, purpose: str | None, limit: int, after: str | None, order: Order
    ) -> list[FileRecord]:
        records = await self.catalog.list_files(who.tenant, purpose=purpose, limit=limit, after=after, order=order)
        return await self._named(who, records)

    async def delete_file(self, who: Identity, file_id: str) -> None:
        if not await self.catalog.delete_file(who.tenant, file_id):
            raise NotFound(f"No such File object: {_shown(file_id)}", param="file_id")
        self._record(who, "file.delete", file_id=file_id)

    # -- stores ---------------------------------------------------------------------------------
    def _check_class(self, who: Identity, data_class: str) -> None:
        if class_rank(data_class) > class_rank(who.max_class):
            raise Forbidden(f"This identity may not read or write {data_class} data", code="data_class_forbidden")

    def _may_read(self, who: Identity, record: StoreRecord) -> bool:
        return class_rank(record.data_class) <= class_rank(who.max_class)

    async def store(self, who: Identity, store_id: str) -> StoreRecord:
        """The caller's tenant's store, of a class it may read; anything else is not found."""
        record = await self.catalog.get_store(who.tenant, store_id)
        if record is None or not self._may_read(who, record):
            raise NotFound(f"No vector store found with id {_shown(store_id)}", param="vector_store_id")
        return record

    readable = store  # the name the ingestion side calls it by

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
        """A page of the stores the caller may read: pages of the catalog are read past the
        stores of a class above its own until `limit` are found or the list ends."""
        out: list[StoreRecord] = []
        while len(out) < limit:
            page = await self.catalog.list_stores(who.tenant, limit=limit, after=after, order=order)
            out += [r for r in page if self._may_read(who, r)]
            if len(page) < limit:
                break
            after = page[-1].id
        return out[:limit]

    async def counts(self, who: Identity, store_id: str) -> FileCounts:
        return await self.catalog.file_counts(who.tenant, store_id)

    async def delete_store(self, who: Identity, store_id: str) -> None:
        await self.store(who, store_id)
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
                hits = [
                    msgspec.structs.replace(h, text=replace(h.text, mapping), filename=replace(h.filename, mapping))
                    for h in hits
                ]
        return stores, hits

    async def values(self, who: Identity, hits: Sequence[Hit]) -> dict[str, str]:
        """The values of the tokens in the hits' text, from the vault, for a caller holding
        `read_pii` (empty for anyone else)."""
        if self._vault is None or not who.may(Permission.READ_PII):
            return {}
        by_scope: dict[str, set[str]] = {}
        for hit in hits:
            by_scope.setdefault(token_scope(who.tenant, hit.store_id), set()).update(TOKEN.findall(hit.text))
            by_scope.setdefault(filename_scope(who.tenant, hit.file_id), set()).update(TOKEN.findall(hit.filename))
        mapping: dict[str, str] = {}
        for scope, tokens in by_scope.items():
            if tokens:
                mapping.update(await self._vault.recall(scope, sorted(tokens)))
        return mapping


_SHOWN = 64


def _shown(value: str) -> str:
    """An id a caller sent, for an error message: shown when it looks like one of ours."""
    return value if len(value) <= _SHOWN and value.replace("-", "").replace("_", "").isalnum() else "(invalid id)"
