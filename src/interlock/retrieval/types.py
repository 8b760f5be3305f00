"""What the Files and Vector Stores API, ingestion and retrieval depend on; imports nothing of ours.

A `Catalog` holds a tenant's files (their bytes and metadata), its vector stores, which files each
store holds with their ingestion status, and the chunks of those files with their vectors. Two
implementations share this Protocol: `sqlite_catalog.py` (the embedded default, in the data
directory, with an ANN index beside it) and `pg_catalog.py` (PostgreSQL with pgvector). Every call
names the tenant, and a record of another tenant is not found (the API answers 404, never 403).

Chunk text is stored as ingestion left it, after DLP: what a policy tokenized stays tokens here,
in the ANN files and in search results; the API restores values only for callers allowed to see
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec
from numpy.typing import NDArray

Attribute = str | float | bool
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class FileRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # "file-..." (OpenAI's shape)
    tenant: str
    filename: str
    purpose: str  # "assistants" or "user_data"
    bytes: int
    created_at: int  # unix seconds


class StoreRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # "vs_..."
    tenant: str
    name: str
    data_class: str  # the least a request that retrieves from this store is classed as
    created_at: int
    metadata: dict[str, str] = {}
    last_active_at: int | None = None


class StoreFileRecord(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    file_id: str
    tenant: str
    status: FileStatus
    created_at: int
    attributes: dict[str, Attribute] = {}
    chunking: dict[str, Any] = {}  # the chunking_strategy as OpenAI echoes it
    usage_bytes: int = 0
    last_error: str | None = None  # a reason for `failed` (never document text)
    # Which attach this row is: each attach gives a new one, and its ingestion writes the row only
    # while the row still has it (a detach and re-attach, or a cancel, meanwhile wins).
    attach_id: str = ""
    # While in_progress: the process whose queue holds it, until when (unix seconds; renewed while it
    # works). Another process resumes it only once the lease has expired (its holder stopped).
    lease_owner: str = ""
    lease_until: float = 0.0


class FileCounts(msgspec.Struct, frozen=True, kw_only=True):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    usage_bytes: int = 0  # the store's files' usage_bytes summed (the store's usage_bytes), not a count

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of a file as ingestion made it: text after DLP, its place in the file."""

    index: int  # 0-based position within the file
    text: str
    tokens: int


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    file_id: str
    filename: str
    chunk_index: int
    score: float  # cosine similarity of unit vectors, in [-1, 1]; higher is closer
    text: str
    attributes: dict[str, Attribute] = {}


class Catalog(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    # Files
    async def put_file(self, record: FileRecord, content: bytes) -> None: ...

    async def get_file(self, tenant: str, file_id: str) -> FileRecord | None: ...

    async def file_content(self, tenant: str, file_id: str) -> bytes | None: ...

    async def list_files(
        self, tenant: str, *, purpose: str | None = None, limit: int = 10000, after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> list[FileRecord]: ...  # fmt: skip

    async def delete_file(self, tenant: str, file_id: str) -> bool:
        """The file, and its chunks in every store; False when it was not there."""
        ...

    # Vector stores
    async def put_store(self, record: StoreRecord) -> None:
        """Create, or replace the record of the same id (name, metadata, last_active_at)."""
        ...

    async def get_store(self, tenant: str, store_id: str) -> StoreRecord | None: ...

    async def list_stores(
        self, tenant: str, *, limit: int = 20, after: str | None = None, order: Literal["asc", "desc"] = "desc"
    ) -> list[StoreRecord]: ...

    async def delete_store(self, tenant: str, store_id: str) -> bool:
        """The store, its file links and chunks (the files themselves stay)."""
        ...

    # A store's files
    async def put_store_file(self, record: StoreFileRecord) -> None:
        """Create, or replace the record of the same (store_id, file_id): status changes."""
        ...

    async def get_store_file(self, tenant: str, store_id: str, file_id: str) -> StoreFileRecord | None: ...

    async def list_store_files(
        self, tenant: str, store_id: str, *, status: FileStatus | None = None, limit: int = 20,
        after: str | None = None, order: Literal["asc", "desc"] = "desc",
    ) -> list[StoreFileRecord]: ...  # fmt: skip

    async def delete_store_file(self, tenant: str, store_id: str, file_id: str) -> bool:
        """The link and the file's chunks in this store."""
        ...

    async def finish_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, status: FileStatus, *,
        last_error: str | None = None, usage_bytes: int = 0,
    ) -> bool:  # fmt: skip
        """Ingestion's last write: the store file's status (and reason, usage) set only if it is
        still `in_progress` under `attach_id`, in one statement; its other fields stay as the
        row has them. False (nothing written) when it was detached, cancelled or attached again."""
        ...

    async def file_counts(self, tenant: str, store_id: str) -> FileCounts: ...

    # File batches: which store files a batch attached (a file may be in several)
    async def join_batch(self, tenant: str, store_id: str, batch_id: str, file_id: str) -> None:
        """Record the store file as one of the batch's; NotFound when the tenant has no such link.
        Detaching the file (or deleting its store) drops it from its batches."""
        ...

    async def batch_files(self, tenant: str, store_id: str, batch_id: str) -> list[StoreFileRecord]:
        """The batch's store files, oldest first, found by the batch id (an index, not a scan)."""
        ...

    async def in_progress(self, expired_at: float | None = None) -> list[StoreFileRecord]:
        """Every tenant's store files in status in_progress (ingestion resumes them at start);
        with `expired_at`, only those whose lease ended by then (no live process holds them)."""
        ...

    async def claim_store_file(
        self, tenant: str, store_id: str, file_id: str, attach_id: str, owner: str, now: float, until: float
    ) -> bool:
        """Take the lease of an in_progress store file of that attach whose lease has expired by
        `now` (one statement: of processes claiming at once, one wins); False when it is not so."""
        ...

    async def renew_leases(self, owner: str, until: float) -> None:
        """Extend the lease of every in_progress store file `owner` holds."""
        ...

    # Chunks
    async def add_chunks(
        self, tenant: str, store_id: str, file_id: str, chunks: Sequence[Chunk], vectors: NDArray[Any],
        attach_id: str | None = None,
    ) -> bool:  # fmt: skip
        """`vectors`: float32 unit rows, one per chunk, in order. With `attach_id`, nothing is
        written (False) unless the store file is still that attach. Replaces, in one transaction,
        every chunk the file had in the store (a retried ingestion does not duplicate them, and a
        re-attach that makes fewer chunks leaves none of the earlier ones)."""
        ...

    async def search(
        self, tenant: str, store_ids: Sequence[str], vector: NDArray[Any], k: int, *,
        filters: Mapping[str, Any] | None = None, score_threshold: float = 0.0,
    ) -> list[Hit]:  # fmt: skip
        """The `k` chunks closest to the unit `vector` over the named stores, best first, each at
        least `score_threshold`; `filters` is OpenAI's attribute filter (comparison or compound),
        on the store file's attributes. Only chunks of store files whose status is `completed`
        are searched (a file still being ingested, or failed part way, is not); stores not the
        tenant's are skipped. A bad filter raises `BadRequest` naming the field."""
        ...
