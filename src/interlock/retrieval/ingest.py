"""Ingestion: a file attached to a vector store becomes chunks with vectors, in the background.

`Ingestor.submit` puts a job on a bounded queue and returns at once; the store file is
`in_progress`. When the queue is full the file is refused (`Overloaded`, a 503 with
`Retry-After`): the API answers it and no link is made, so nothing waits that nobody watches.
`workers` loops (`lifecycle.Background`) take jobs one at a time and, per file:

    the sealed bytes -> extract (a worker thread) -> chunk by tokens with overlap (a thread)
    -> DLP on every chunk under the retrieval policy -> embed in batches through the gateway's
    embedding service -> `catalog.add_chunks` -> `completed`

or `failed` with a reason that names what went wrong, never the document's text:
`unsupported_file: ...` and `invalid_file: ...` (extract.py's reasons), `pii_refused:
EMAIL, PHONE` (the policy blocks those types: nothing of the file is indexed),
`data_class_exceeded: restricted` (its findings class it above its store), `dlp_unavailable`,
`server_error: <exception type>`. One file
failing leaves every other job as it was: the loop catches what one job raises.

After a restart, the store files left `in_progress` (a job queued or running when the process
stopped) are resumed: `start` queues them again before the workers begin. With a shared catalog
(several replicas on PostgreSQL) each in_progress row carries a lease: the process that queued it
and until when (`lease` seconds, renewed by a background loop every third of that while the
process runs). A starting process resumes only rows whose lease expired, taking the lease first
(`claim_store_file`, one statement, so of two starting at once one wins); it never resumes, nor
fails, a file a live process holds. `add_chunks` replaces
every chunk the file had in the store, so a file whose chunks were partly written is not duplicated; one that
does not fit the queue is marked failed (`interrupted`).

A file detached (or its store deleted) while it was being ingested: its chunks are dropped, and
no status is written back. Each attach gives the store file a new `attach_id`, which its job
carries: the job writes chunks and the final status only while the row still has that id and is
`in_progress` (`add_chunks(attach_id=)`, `finish_store_file`), so a detach and re-attach, or a
cancel and re-attach, during an ingestion is never overwritten by the older job.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from ..errors import BadRequest, NotFound, Overloaded, Unavailable
from ..lifecycle import Background
from ..security.pii.vault import vault_scope
from ..security.roles import class_rank
from .chunking import ChunkingStrategy
from .extract import ExtractError
from .sealed import Seal
from .types import Catalog, Chunk, FileStatus, StoreFileRecord

log = logging.getLogger("interlock.retrieval")

# (bytes, filename) -> text; raises ExtractError (its code and message name why, never what it says)
Extract = Callable[[bytes, str], str]
# (text, strategy) -> chunks in order (chunking.py's Chunker.split)
ChunkText = Callable[[str, ChunkingStrategy], list[Chunk]]


class Embed(Protocol):
    async def embed(self, texts: Sequence[str]) -> Any: ...


class Recorded(Protocol):
    def file_ingested(self, status: str, reason: str | None, chunks: int) -> None: ...


class Screen(Protocol):
    """DLP for stored text (security/dlp.py's `DlpStage.screen_texts`, bound to a policy)."""

    async def __call__(self, texts: list[str], scope: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Job:
    tenant: str
    store_id: str
    file_id: str
    store_class: str  # the store's data class: findings above it fail the file
    chunking: ChunkingStrategy
    attach_id: str = ""  # the store file's attach this job ingests (StoreFileRecord.attach_id)


class FileFailed(Exception):
    """One file cannot be ingested; the message is its `last_error` (no document text)."""


def token_scope(tenant: str, store_id: str) -> str:
    """The vault scope of a store's tokens: one value gets one token across the store's files."""
    return vault_scope(tenant, "vs", store_id)


class Ingestor:
    def __init__(
        self,
        catalog: Catalog,
        seal: Seal,
        extract: Extract,
        chunk: ChunkText,
        embedder: Embed,
        screen: Screen | None,
        *,
        workers: int = 1,
        queue_size: int = 256,
        batch: int = 64,
        metrics: Recorded | None = None,
        lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._seal = seal
        self._extract = extract
        self._chunk = chunk
        self._embedder = embedder
        self._screen = screen
        self._batch = batch
        self._metrics = metrics
        self._queue: asyncio.Queue[Job] = asyncio.Queue(queue_size)
        self._loops = [Background(f"ingest {i}", self._run) for i in range(workers)]
        self._loops.append(Background("ingest leases", self._renew))
        # This process's lease on the files its queue holds (StoreFileRecord.lease_owner): renewed
        # every third of `lease` seconds, so another process resumes them only once this one stopped.
        self.owner = secrets.token_hex(8)
        self._lease = lease
        self._clock = clock
        self._find: Callable[[], Awaitable[Sequence[tuple[Job, StoreFileRecord]]]] | None = None
        self._idle = asyncio.Event()
        self._busy = 0

    def now(self) -> float:
        return self._clock()

    def lease_until(self) -> float:
        """When a lease taken now ends."""
        return self._clock() + self._lease

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    def room_for(self, files: int) -> None:
        """Refuse, before anything is made, a request that would attach more files than the
        queue can take now: a 400 when it never could, else a 503 to retry."""
        if files > self._queue.maxsize:
            raise BadRequest(
                f"At most {self._queue.maxsize} files can be attached in one request (retrieval.queue_size)",
                param="file_ids",
            )
        if files > self._queue.maxsize - self._queue.qsize():
            raise Overloaded("The ingestion queue is full; try again later", retry_after=5)

    def submit(self, job: Job) -> None:
        """Queue a file for ingestion, or refuse it when the queue is full (503, Retry-After)."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded("The ingestion queue is full; attach the file again later", retry_after=5) from None
        self._idle.clear()

    async def start(self, pending: Sequence[tuple[Job, StoreFileRecord]] = ()) -> None:
        """Queue `pending` (store files left in_progress by a process that stopped: their lease
        expired), each once this process has taken its lease, then run. A file another process
        took meanwhile is left to it; one that does not fit the queue is failed (`interrupted`)."""
        await self._resume(pending, overflow_fails=True)
        for loop in self._loops:
            loop.start()

    def resume_from(self, find: Callable[[], Awaitable[Sequence[tuple[Job, StoreFileRecord]]]]) -> None:
        """Where the lease loop looks, each turn, for files whose lease expired (a process that
        died without releasing them): `VectorStores.pending`. They are queued when there is room."""
        self._find = find

    async def _resume(self, pending: Sequence[tuple[Job, StoreFileRecord]], *, overflow_fails: bool) -> None:
        resumed = 0
        for job, _ in pending:
            if not overflow_fails and self._queue.full():
                break  # left expired: a later turn, or another process, takes them
            now = self._clock()
            args = (job.tenant, job.store_id, job.file_id, job.attach_id, self.owner, now, now + self._lease)
            if not await self._catalog.claim_store_file(*args):
                continue  # another live process holds it now
            try:
                self.submit(job)
                resumed += 1
            except Overloaded:
                await self._finish(job, "failed", "interrupted")
        if resumed:
            log.info("ingestion: resuming %d file(s) left in_progress", resumed)

    async def close(self) -> None:
        """Stop, and release this process's leases: the next process resumes its files at once."""
        for loop in self._loops:
            await loop.stop()
        try:
            await self._catalog.renew_leases(self.owner, 0.0)
        except Exception as exc:  # the catalog already gone: the leases expire on their own
            log.warning("ingestion: releasing leases failed: %s", type(exc).__name__)

    async def drained(self) -> None:
        """Until the queue is empty and no job runs (tests and the command line wait on it)."""
        while self._queue.qsize() or self._busy:
            self._idle.clear()
            await self._idle.wait()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._catalog.renew_leases(self.owner, self._clock() + self._lease)
                if self._find is not None:
                    await self._resume(await self._find(), overflow_fails=False)
            except Exception as exc:  # the catalog failing: try again at the next turn
                log.warning("ingestion: renewing leases failed: %s", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            self._busy += 1
            try:
                await self._one(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a loop that must survive one bad file (the catalog failing)
                # The type only: a third party's message could quote the document.
                log.error("ingestion of %s failed: %s", job.file_id, type(exc).__name__)
            finally:
                self._busy -= 1
                if not self._queue.qsize() and not self._busy:
                    self._idle.set()

    async def _one(self, job: Job) -> None:
        record = await self._catalog.get_store_file(job.tenant, job.store_id, job.file_id)
        if record is None or record.status != "in_progress" or record.attach_id != job.attach_id:
            return  # detached meanwhile, already done, or attached again (that attach's job ingests it)
        try:
            await self._ingest(job)
        except FileFailed as exc:
            await self._finish(job, "failed", str(exc))
        except Exception as exc:  # anything else one file raises fails that file, named by type only
            log.error("ingestion of %s failed: %s", job.file_id, type(exc).__name__)
            await self._finish(job, "failed", f"server_error: {type(exc).__name__}")

    async def _ingest(self, job: Job) -> None:
        """Everything after the first look-up, the catalog's writes included: what raises here
        fails the file (it is never left in_progress)."""
        chunks, vectors = await self._prepare(job)
        try:
            written = not chunks or await self._catalog.add_chunks(
                job.tenant, job.store_id, job.file_id, chunks, vectors, attach_id=job.attach_id
            )
        except NotFound:
            return  # detached meanwhile: nothing of it is written
        if not written:
            return  # attached again meanwhile: that attach's job writes its chunks and status
        usage = sum(len(c.text.encode()) + 4 * vectors.shape[1] for c in chunks) if chunks else 0
        await self._finish(job, "completed", None, usage, len(chunks))

    async def _prepare(self, job: Job) -> tuple[list[Chunk], Any]:
        meta = await self._catalog.get_file(job.tenant, job.file_id)
        stored = await self._catalog.file_content(job.tenant, job.file_id)
        if meta is None or stored is None:
            raise FileFailed("file_not_found")
        content = self._seal.open(job.tenant, job.file_id, stored)
        try:
            text = await asyncio.to_thread(self._extract, content, meta.filename)
        except ExtractError as exc:  # its message says why, never what the file says
            raise FileFailed(f"{exc.code}: {exc.message}") from None
        chunks = await asyncio.to_thread(self._chunk, text, job.chunking)
        chunks = await self._protect(job, chunks)
        texts = [c.text for c in chunks]
        parts = [await self._embedder.embed(texts[i : i + self._batch]) for i in range(0, len(texts), self._batch)]
        vectors = np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)
        return chunks, vectors

    async def _protect(self, job: Job, chunks: list[Chunk]) -> list[Chunk]:
        """Every chunk through DLP before anything of it is embedded or stored."""
        if self._screen is None or not chunks:
            return chunks
        try:
            screened = await self._screen([c.text for c in chunks], token_scope(job.tenant, job.store_id))
        except Unavailable:
            raise FileFailed("dlp_unavailable") from None
        if screened.refused:
            raise FileFailed(f"pii_refused: {', '.join(screened.refused)}")
        if class_rank(screened.data_class) > class_rank(job.store_class):
            raise FileFailed(f"data_class_exceeded: {screened.data_class}")
        return [msgspec.structs.replace(c, text=t) for c, t in zip(chunks, screened.texts, strict=True)]

    async def _finish(self, job: Job, status: FileStatus, error: str | None, usage: int = 0, chunks: int = 0) -> None:
        """The job's status, written only while the store file is still this attach's and
        in_progress (a cancel, a detach or a re-attach meanwhile wins), with the row's own
        attributes and chunking."""
        done = await self._catalog.finish_store_file(
            job.tenant, job.store_id, job.file_id, job.attach_id, status, last_error=error, usage_bytes=usage
        )
        if done and self._metrics is not None:
            self._metrics.file_ingested(status, error, chunks)
