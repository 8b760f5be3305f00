"""One conformance suite for every `Catalog` (retrieval/types.py): the SQLite catalog runs it in
tests/unit/retrieval/test_sqlite_catalog.py, the PostgreSQL one in tests/integration/test_pg_catalog.py.

A test module subclasses `CatalogSuite` and provides two fixtures: `catalog`, a started catalog
over empty storage, and `reopen`, an async callable that closes it and returns a new started
catalog over the same storage (a restart).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
import pytest

from interlock.errors import NotFound
from interlock.retrieval.types import Catalog, Chunk, FileCounts, FileRecord, StoreFileRecord, StoreRecord

DIM = 384
A, B = "tenant-a", "tenant-b"
Reopen = Callable[[], Awaitable[Catalog]]


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at cosine `cos` from the unit vector `v`."""
    noise = np.random.default_rng([seed, 1]).normal(size=DIM).astype(np.float32)  # a stream unit() never draws
    noise -= (noise @ v) * v
    noise /= np.linalg.norm(noise)
    out = cos * v + np.sqrt(1 - cos * cos) * noise
    return (out / np.linalg.norm(out)).astype(np.float32)


def chunks(n: int, prefix: str) -> list[Chunk]:
    return [Chunk(index=i, text=f"{prefix} chunk {i}", tokens=3) for i in range(n)]


async def add_file(
    catalog: Catalog, tenant: str, store: str, file_id: str, vectors: np.ndarray, *,
    status: str = "completed", attributes: dict[str, Any] | None = None, created_at: int = 1,
) -> None:  # fmt: skip
    if await catalog.get_file(tenant, file_id) is None:
        await catalog.put_file(FileRecord(id=file_id, tenant=tenant, filename=f"{file_id}.txt", purpose="assistants",
                                          bytes=3, created_at=created_at), b"abc")  # fmt: skip
    await catalog.put_store_file(StoreFileRecord(store_id=store, file_id=file_id, tenant=tenant, status="in_progress",
                                                 created_at=created_at, attributes=attributes or {}))  # fmt: skip
    await catalog.add_chunks(tenant, store, file_id, chunks(len(vectors), file_id), vectors)
    if status != "in_progress":
        await catalog.put_store_file(StoreFileRecord(store_id=store, file_id=file_id, tenant=tenant, status=status,  # type: ignore[arg-type]
                                                     created_at=created_at, attributes=attributes or {}))  # fmt: skip


async def make_store(catalog: Catalog, tenant: str, store: str, created_at: int = 1) -> None:
    await catalog.put_store(
        StoreRecord(id=store, tenant=tenant, name=store, data_class="internal", created_at=created_at)
    )


class CatalogSuite:
    async def test_files(self, catalog: Catalog) -> None:
        for i in range(3):
            record = FileRecord(id=f"file-{i}", tenant=A, filename=f"f{i}.md", purpose="assistants" if i else "user_data",
                                bytes=5, created_at=100 + i)  # fmt: skip
            await catalog.put_file(record, f"body{i}".encode())
        assert await catalog.get_file(A, "file-1") == FileRecord(
            id="file-1", tenant=A, filename="f1.md", purpose="assistants", bytes=5, created_at=101
        )
        assert await catalog.file_content(A, "file-2") == b"body2"
        assert [f.id for f in await catalog.list_files(A)] == ["file-2", "file-1", "file-0"]
        assert [f.id for f in await catalog.list_files(A, order="asc", limit=2)] == ["file-0", "file-1"]
        assert [f.id for f in await catalog.list_files(A, after="file-2", limit=1)] == ["file-1"]
        assert [f.id for f in await catalog.list_files(A, order="asc", after="file-0")] == ["file-1", "file-2"]
        assert [f.id for f in await catalog.list_files(A, purpose="user_data")] == ["file-0"]
        assert await catalog.delete_file(A, "file-1") is True
        assert await catalog.delete_file(A, "file-1") is False
        assert await catalog.get_file(A, "file-1") is None
        assert await catalog.file_content(A, "file-1") is None

    async def test_another_tenants_records_are_not_found(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_a")
        await add_file(catalog, A, "vs_a", "file-a", np.stack([unit(1)]))
        assert await catalog.get_file(B, "file-a") is None
        assert await catalog.file_content(B, "file-a") is None
        assert await catalog.list_files(B) == []
        assert await catalog.get_store(B, "vs_a") is None
        assert await catalog.list_stores(B) == []
        assert await catalog.get_store_file(B, "vs_a", "file-a") is None
        assert await catalog.list_store_files(B, "vs_a") == []
        assert await catalog.file_counts(B, "vs_a") == FileCounts()
        assert await catalog.search(B, ["vs_a"], unit(1), 5) == []
        assert await catalog.delete_store_file(B, "vs_a", "file-a") is False
        assert await catalog.delete_file(B, "file-a") is False
        assert await catalog.delete_store(B, "vs_a") is False
        with pytest.raises(ValueError):  # nor overwritten under another tenant's name
            await make_store(catalog, B, "vs_a")
        # Still all there for its own tenant.
        assert (await catalog.get_store(A, "vs_a")) is not None
        [hit] = await catalog.search(A, ["vs_a"], unit(1), 5)
        assert hit.file_id == "file-a"

    async def test_stores_and_their_files(self, catalog: Catalog) -> None:
        for i in range(3):
            await make_store(catalog, A, f"vs_{i}", created_at=10 + i)
        assert [s.id for s in await catalog.list_stores(A)] == ["vs_2", "vs_1", "vs_0"]
        assert [s.id for s in await catalog.list_stores(A, after="vs_1")] == ["vs_0"]
        await catalog.put_store(StoreRecord(id="vs_0", tenant=A, name="renamed", data_class="internal", created_at=10,
                                            metadata={"team": "legal"}, last_active_at=99))  # fmt: skip
        store = await catalog.get_store(A, "vs_0")
        assert store is not None and (store.name, store.metadata, store.last_active_at) == (
            "renamed",
            {"team": "legal"},
            99,
        )
        assert len(await catalog.list_stores(A)) == 3

        for i, status in enumerate(["completed", "completed", "in_progress", "failed"]):
            await add_file(catalog, A, "vs_0", f"file-{i}", np.stack([unit(i)]), status=status, created_at=20 + i,
                           attributes={"n": i})  # fmt: skip
        await catalog.put_store_file(StoreFileRecord(store_id="vs_0", file_id="file-3", tenant=A, status="failed",
                                                     created_at=23, last_error="the PDF cannot be read"))  # fmt: skip
        assert await catalog.file_counts(A, "vs_0") == FileCounts(completed=2, in_progress=1, failed=1)
        # The store's usage_bytes, summed in the same query:
        await catalog.put_store_file(StoreFileRecord(store_id="vs_0", file_id="file-1", tenant=A, status="completed",
                                                     created_at=21, attributes={"n": 1}, usage_bytes=40))  # fmt: skip
        await catalog.put_store_file(StoreFileRecord(store_id="vs_0", file_id="file-3", tenant=A, status="failed",
                                                     created_at=23, usage_bytes=2,
                                                     last_error="the PDF cannot be read"))  # fmt: skip
        assert await catalog.file_counts(A, "vs_0") == FileCounts(completed=2, in_progress=1, failed=1, usage_bytes=42)
        failed = await catalog.get_store_file(A, "vs_0", "file-3")
        assert failed is not None and failed.status == "failed" and failed.last_error == "the PDF cannot be read"
        one = await catalog.get_store_file(A, "vs_0", "file-1")
        assert one is not None and one.attributes == {"n": 1}
        assert [f.file_id for f in await catalog.list_store_files(A, "vs_0")] == [
            "file-3",
            "file-2",
            "file-1",
            "file-0",
        ]
        assert [f.file_id for f in await catalog.list_store_files(A, "vs_0", status="completed", order="asc")] == [
            "file-0",
            "file-1",
        ]
        assert [f.file_id for f in await catalog.list_store_files(A, "vs_0", after="file-2", limit=1)] == ["file-1"]

        assert await catalog.delete_store(A, "vs_0") is True
        assert await catalog.get_store(A, "vs_0") is None
        assert await catalog.list_store_files(A, "vs_0") == []
        assert await catalog.get_file(A, "file-0") is not None  # the files themselves stay
        assert await catalog.search(A, ["vs_0"], unit(0), 5) == []

    async def test_search_ranks_and_reports(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(100)
        await add_file(catalog, A, "vs_1", "file-x", np.stack([near(q, 0.9, 1), near(q, 0.5, 2), near(q, 0.1, 3)]),
                       attributes={"region": "eu"})  # fmt: skip
        await add_file(catalog, A, "vs_1", "file-y", np.stack([near(q, 0.7, 4)]))
        hits = await catalog.search(A, ["vs_1"], q, 3)
        assert [(h.file_id, h.chunk_index) for h in hits] == [("file-x", 0), ("file-y", 0), ("file-x", 1)]
        assert [round(h.score, 3) for h in hits] == [0.9, 0.7, 0.5]
        top = hits[0]
        assert (top.store_id, top.filename, top.text, top.attributes) == (
            "vs_1",
            "file-x.txt",
            "file-x chunk 0",
            {"region": "eu"},
        )
        assert len(await catalog.search(A, ["vs_1"], q, 50)) == 4

    async def test_score_threshold(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(7)
        await add_file(
            catalog, A, "vs_1", "file-x", np.stack([near(q, c, i) for i, c in enumerate([0.95, 0.6, 0.3, -0.2])])
        )
        assert [round(h.score, 2) for h in await catalog.search(A, ["vs_1"], q, 10, score_threshold=0.5)] == [0.95, 0.6]
        assert len(await catalog.search(A, ["vs_1"], q, 10, score_threshold=0.0)) == 3
        assert len(await catalog.search(A, ["vs_1"], q, 10, score_threshold=-1.0)) == 4
        assert await catalog.search(A, ["vs_1"], q, 10, score_threshold=0.99) == []

    async def test_only_completed_files_are_searched(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(9)
        await add_file(catalog, A, "vs_1", "file-busy", np.stack([near(q, 0.99, 1)]), status="in_progress")
        await add_file(catalog, A, "vs_1", "file-bad", np.stack([near(q, 0.98, 2)]), status="failed")
        await add_file(catalog, A, "vs_1", "file-ok", np.stack([near(q, 0.5, 3)]))
        assert [h.file_id for h in await catalog.search(A, ["vs_1"], q, 5)] == ["file-ok"]
        await catalog.put_store_file(
            StoreFileRecord(store_id="vs_1", file_id="file-busy", tenant=A, status="completed", created_at=1)
        )
        assert [h.file_id for h in await catalog.search(A, ["vs_1"], q, 5)] == ["file-busy", "file-ok"]

    async def test_filters(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(11)
        files = {"file-1": {"region": "eu", "year": 2023, "public": True}, "file-2": {"region": "us", "year": 2024, "public": False},
                 "file-3": {"region": "eu", "year": 2025}, "file-4": {}}  # fmt: skip
        for i, (file_id, attrs) in enumerate(files.items()):
            await add_file(
                catalog,
                A,
                "vs_1",
                file_id,
                np.stack([near(q, 0.9 - 0.1 * i, 100 + i), near(q, 0.3 - 0.05 * i, 200 + i)]),
                attributes=attrs,
            )

        async def found(filters: dict[str, Any], k: int = 10) -> list[str]:
            return list(dict.fromkeys(h.file_id for h in await catalog.search(A, ["vs_1"], q, k, filters=filters)))

        assert await found({"type": "eq", "key": "region", "value": "eu"}) == ["file-1", "file-3"]
        assert await found({"type": "ne", "key": "region", "value": "eu"}) == ["file-2"]
        assert await found({"type": "gte", "key": "year", "value": 2024}) == ["file-2", "file-3"]
        assert await found({"type": "lt", "key": "year", "value": 2024.5}) == ["file-1", "file-2"]
        assert await found({"type": "eq", "key": "public", "value": False}) == ["file-2"]
        assert await found({"type": "gt", "key": "region", "value": "eu"}) == ["file-2"]
        assert await found({"type": "and", "filters": [{"type": "eq", "key": "region", "value": "eu"},
                                                       {"type": "gt", "key": "year", "value": 2024}]}) == ["file-3"]  # fmt: skip
        assert await found({"type": "or", "filters": [{"type": "eq", "key": "public", "value": True},
                                                      {"type": "eq", "key": "year", "value": 2025}]}) == ["file-1", "file-3"]  # fmt: skip
        assert await found({"type": "eq", "key": "missing", "value": 1}) == []
        assert await found({"type": "in", "key": "region", "value": ["us", "fr"]}) == ["file-2"]
        assert await found({"type": "in", "key": "year", "value": [2023, 2025.0]}) == ["file-1", "file-3"]
        assert await found({"type": "nin", "key": "year", "value": [2023]}) == ["file-2", "file-3"]  # file-4: none
        assert await found({"type": "in", "key": "region", "value": [2023]}) == []  # another kind
        # Filters apply before k: the one match is found even when better chunks do not pass.
        hits = await catalog.search(A, ["vs_1"], q, 1, filters={"type": "eq", "key": "year", "value": 2025})
        assert [(h.file_id, h.chunk_index) for h in hits] == [("file-3", 0)]

    async def test_several_stores(self, catalog: Catalog) -> None:
        q = unit(12)
        for i in range(3):
            await make_store(catalog, A, f"vs_{i}")
            await add_file(catalog, A, f"vs_{i}", f"file-{i}", np.stack([near(q, 0.5 + 0.1 * i, i)]))
        await make_store(catalog, B, "vs_b")
        await add_file(catalog, B, "vs_b", "file-b", np.stack([near(q, 0.99, 9)]))
        hits = await catalog.search(A, ["vs_0", "vs_2", "vs_b", "vs_missing"], q, 5)
        assert [h.store_id for h in hits] == ["vs_2", "vs_0"]  # not B's store, whatever its scores

    async def test_delete_removes_from_search(self, catalog: Catalog) -> None:
        q = unit(13)
        for store in ("vs_1", "vs_2"):
            await make_store(catalog, A, store)
            await add_file(catalog, A, store, "file-shared", np.stack([near(q, 0.9, 1), near(q, 0.8, 2)]))
        await add_file(catalog, A, "vs_1", "file-own", np.stack([near(q, 0.5, 3)]))
        assert await catalog.delete_store_file(A, "vs_1", "file-shared") is True
        assert [h.file_id for h in await catalog.search(A, ["vs_1"], q, 5)] == ["file-own"]
        assert [h.file_id for h in await catalog.search(A, ["vs_2"], q, 5)] == ["file-shared", "file-shared"]
        assert await catalog.get_file(A, "file-shared") is not None
        assert await catalog.delete_file(A, "file-shared") is True
        assert await catalog.search(A, ["vs_2"], q, 5) == []
        assert await catalog.list_store_files(A, "vs_2") == []

    async def test_readding_replaces(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(14)
        await add_file(catalog, A, "vs_1", "file-1", np.stack([near(q, 0.9, 1), near(q, 0.8, 2), near(q, 0.7, 3)]))
        # A re-attach with another chunking: fewer chunks, other text and vectors. None of the
        # earlier ingestion's chunks is left, not even the third, which this one did not make.
        again = [Chunk(index=i, text=f"second try {i}", tokens=3) for i in range(2)]
        await catalog.add_chunks(A, "vs_1", "file-1", again, np.stack([near(q, 0.6, 4), near(q, 0.95, 5)]))
        hits = await catalog.search(A, ["vs_1"], q, 10)
        assert [(h.chunk_index, h.text, round(h.score, 2)) for h in hits] == [
            (1, "second try 1", 0.95), (0, "second try 0", 0.6)
        ]  # fmt: skip
        await catalog.put_store_file(
            StoreFileRecord(store_id="vs_1", file_id="file-1", tenant=A, status="completed", created_at=1)
        )  # and a status change after it (a rebuilt index) keeps it so
        assert [h.text for h in await catalog.search(A, ["vs_1"], q, 10)] == ["second try 1", "second try 0"]

    async def test_add_chunks_checks_its_input(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        with pytest.raises(ValueError):
            await catalog.add_chunks(A, "vs_1", "file-1", chunks(2, "x"), np.stack([unit(1)]))
        with pytest.raises(ValueError):
            await catalog.add_chunks(A, "vs_1", "file-1", chunks(1, "x"), np.ones((1, 10), dtype=np.float32))
        with pytest.raises(NotFound):  # no such file in the store
            await catalog.add_chunks(A, "vs_1", "file-none", chunks(1, "x"), np.stack([unit(1)]))
        with pytest.raises(NotFound):  # a store file needs the tenant's store and file
            await catalog.put_store_file(
                StoreFileRecord(store_id="vs_1", file_id="file-none", tenant=A, status="in_progress", created_at=1)
            )
        await add_file(catalog, A, "vs_1", "file-1", np.stack([unit(1)]))
        with pytest.raises(NotFound):
            await catalog.put_store_file(
                StoreFileRecord(store_id="vs_1", file_id="file-1", tenant=B, status="completed", created_at=1)
            )

    async def test_restart_keeps_everything(self, catalog: Catalog, reopen: Reopen) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(15)
        await add_file(catalog, A, "vs_1", "file-1", np.stack([near(q, 0.9 - 0.01 * i, i) for i in range(40)]),
                       attributes={"kind": "manual"})  # fmt: skip
        await add_file(catalog, A, "vs_1", "file-2", np.stack([near(q, 0.3, 99)]))
        await catalog.delete_store_file(A, "vs_1", "file-2")
        before = await catalog.search(A, ["vs_1"], q, 10, filters={"type": "eq", "key": "kind", "value": "manual"})
        catalog = await reopen()
        assert await catalog.file_content(A, "file-1") == b"abc"
        assert (await catalog.get_store(A, "vs_1")) is not None
        after = await catalog.search(A, ["vs_1"], q, 10, filters={"type": "eq", "key": "kind", "value": "manual"})
        assert [(h.file_id, h.chunk_index, h.text) for h in after] == [
            (h.file_id, h.chunk_index, h.text) for h in before
        ]
        assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-5)
        assert all(h.file_id == "file-1" for h in await catalog.search(A, ["vs_1"], q, 50))
        # And it keeps working after the restart.
        await add_file(catalog, A, "vs_1", "file-3", np.stack([q]))
        assert (await catalog.search(A, ["vs_1"], q, 1))[0].file_id == "file-3"

    async def test_in_progress_lists_every_tenants_unfinished_files(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        await make_store(catalog, B, "vs_2")
        await add_file(catalog, A, "vs_1", "file-1", np.stack([unit(1)]), status="in_progress")
        await add_file(catalog, A, "vs_1", "file-2", np.stack([unit(2)]))
        await add_file(catalog, B, "vs_2", "file-3", np.stack([unit(3)]), status="in_progress")
        pending = await catalog.in_progress()
        assert sorted((r.tenant, r.store_id, r.file_id) for r in pending) == [
            (A, "vs_1", "file-1"), (B, "vs_2", "file-3")
        ]  # fmt: skip
        assert all(r.status == "in_progress" for r in pending)

    async def test_only_the_current_attach_writes_its_ingestion(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        q = unit(16)
        await add_file(catalog, A, "vs_1", "file-1", np.stack([near(q, 0.9, 1)]), status="in_progress")
        second = StoreFileRecord(store_id="vs_1", file_id="file-1", tenant=A, status="in_progress", created_at=1,
                                 attributes={"v": 2}, attach_id="att_2")  # fmt: skip
        await catalog.put_store_file(second)  # attached again: the older job's writes are refused
        assert await catalog.add_chunks(A, "vs_1", "file-1", chunks(2, "old"), np.stack([unit(2), unit(3)]),
                                        attach_id="att_1") is False  # fmt: skip
        assert await catalog.finish_store_file(A, "vs_1", "file-1", "att_1", "completed") is False
        assert await catalog.get_store_file(A, "vs_1", "file-1") == second
        assert await catalog.add_chunks(A, "vs_1", "file-1", chunks(1, "new"), np.stack([q]), attach_id="att_2")
        assert await catalog.finish_store_file(A, "vs_1", "file-1", "att_2", "completed", usage_bytes=7) is True
        done = await catalog.get_store_file(A, "vs_1", "file-1")
        assert done == msgspec.structs.replace(second, status="completed", usage_bytes=7)
        assert [(h.text, h.attributes) for h in await catalog.search(A, ["vs_1"], q, 5)] == [("new chunk 0", {"v": 2})]
        # Written once: a finished (or cancelled) file is not finished again.
        assert await catalog.finish_store_file(A, "vs_1", "file-1", "att_2", "failed", last_error="x") is False
        assert await catalog.finish_store_file(B, "vs_1", "file-1", "att_2", "completed") is False

    async def test_batches_are_found_by_id(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        for i in range(4):
            await add_file(catalog, A, "vs_1", f"file-{i}", np.stack([unit(i)]), created_at=10 - i)
        for file_id in ("file-0", "file-2", "file-2"):  # twice: once in the batch
            await catalog.join_batch(A, "vs_1", "vsfb_1", file_id)
        await catalog.join_batch(A, "vs_1", "vsfb_2", "file-2")  # a file may be in several batches
        assert [f.file_id for f in await catalog.batch_files(A, "vs_1", "vsfb_1")] == ["file-2", "file-0"]
        assert [f.file_id for f in await catalog.batch_files(A, "vs_1", "vsfb_2")] == ["file-2"]
        assert await catalog.batch_files(B, "vs_1", "vsfb_1") == []
        assert await catalog.batch_files(A, "vs_1", "vsfb_none") == []
        with pytest.raises(NotFound):
            await catalog.join_batch(B, "vs_1", "vsfb_1", "file-1")
        with pytest.raises(NotFound):
            await catalog.join_batch(A, "vs_1", "vsfb_1", "file-none")
        await catalog.delete_store_file(A, "vs_1", "file-2")
        await add_file(catalog, A, "vs_1", "file-2", np.stack([unit(2)]))  # attached again, outside the batch
        assert [f.file_id for f in await catalog.batch_files(A, "vs_1", "vsfb_1")] == ["file-0"]
        assert await catalog.batch_files(A, "vs_1", "vsfb_2") == []
        await catalog.delete_store(A, "vs_1")
        assert await catalog.batch_files(A, "vs_1", "vsfb_1") == []

    async def test_leases(self, catalog: Catalog) -> None:
        await make_store(catalog, A, "vs_1")
        await add_file(catalog, A, "vs_1", "file-1", np.stack([unit(1)]), status="in_progress")
        live = StoreFileRecord(store_id="vs_1", file_id="file-1", tenant=A, status="in_progress", created_at=1,
                               attach_id="att_1", lease_owner="p1", lease_until=100.0)  # fmt: skip
        await catalog.put_store_file(live)
        assert await catalog.in_progress(50.0) == []  # held by a live process
        assert await catalog.claim_store_file(A, "vs_1", "file-1", "att_1", "p2", 50.0, 110.0) is False
        await catalog.renew_leases("p1", 200.0)
        assert await catalog.in_progress(150.0) == []
        assert [r.lease_until for r in await catalog.in_progress(250.0)] == [200.0]
        assert (
            await catalog.claim_store_file(A, "vs_1", "file-1", "att_0", "p2", 250.0, 310.0) is False
        )  # another attach
        assert await catalog.claim_store_file(A, "vs_1", "file-1", "att_1", "p2", 250.0, 310.0) is True
        assert await catalog.claim_store_file(A, "vs_1", "file-1", "att_1", "p3", 250.0, 310.0) is False  # one wins
        held = await catalog.get_store_file(A, "vs_1", "file-1")
        assert held is not None and (held.lease_owner, held.lease_until) == ("p2", 310.0)
        assert [r.file_id for r in await catalog.in_progress()] == ["file-1"]  # without a time: all of them
