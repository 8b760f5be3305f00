"""`interlock ingest DIR --store NAME`: every file under a directory uploaded and attached to a
store (made when no store of the tenant has that name), then waited on, with a progress bar.

The same service the API uses does the work (retrieval/service.py), so the files go through the
same ingestion queue, DLP and audit; a full queue makes it wait and try again, not fail.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TextIO

from ..errors import Overloaded
from ..security.roles import Identity
from .service import VectorStores
from .types import FileCounts, StoreRecord

BAR = 30
MAX_STORES_SCANNED = 10_000


def bar(counts: FileCounts, total: int) -> str:
    done = counts.completed + counts.failed + counts.cancelled
    filled = BAR * done // total if total else BAR
    failed = f", {counts.failed} failed" if counts.failed else ""
    return f"\r[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} files{failed}"


async def find_or_create(service: VectorStores, who: Identity, name: str) -> tuple[StoreRecord, bool]:
    for store in await service.stores(who, MAX_STORES_SCANNED, None, "asc"):
        if store.name == name:
            return store, False
    return await service.create_store(who, name, {}, None), True


async def ingest_directory(
    service: VectorStores,
    who: Identity,
    directory: Path,
    store_name: str,
    progress: TextIO,
    poll_s: float = 0.2,
) -> tuple[StoreRecord, FileCounts]:
    """Upload and attach every file under `directory`; the store and its file counts once every
    file is completed or failed."""
    paths = await asyncio.to_thread(lambda: sorted(p for p in directory.rglob("*") if p.is_file()))
    store, _ = await find_or_create(service, who, store_name)
    for path in paths:
        record = await service.upload(who, path.name, "assistants", await asyncio.to_thread(path.read_bytes))
        while True:
            try:
                await service.attach(who, store.id, record.id, {"path": str(path.relative_to(directory))[:512]}, None)
                break
            except Overloaded:
                progress.write(bar(await service.counts(who, store.id), len(paths)))
                await asyncio.sleep(poll_s)
    while True:
        counts = await service.counts(who, store.id)
        progress.write(bar(counts, counts.total))
        progress.flush()
        if not counts.in_progress:
            break
        await asyncio.sleep(poll_s)
    progress.write("\n")
    names = {p.name for p in paths}
    for failed in await service.store_files(who, store.id, "failed", MAX_STORES_SCANNED, None, "asc"):
        record = await service.file(who, failed.file_id)
        if record.filename in names:
            progress.write(f"{record.filename}: {failed.last_error}\n")
    return store, counts
