from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from interlock.retrieval import vector_index
from interlock.retrieval.sqlite_catalog import SqliteCatalog
from interlock.retrieval.types import Catalog, StoreFileRecord
from tests.support.catalog_suite import A, CatalogSuite, Reopen, add_file, make_store, near, unit
from tests.support.clock import Clock


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[dict[str, SqliteCatalog]]:
    holder = {"catalog": SqliteCatalog(tmp_path / "rag")}
    await holder["catalog"].start()
    yield holder
    await holder["catalog"].close()


@pytest.fixture
def catalog(state: dict[str, SqliteCatalog]) -> Catalog:
    return state["catalog"]


@pytest.fixture
def reopen(state: dict[str, SqliteCatalog], tmp_path: Path) -> Reopen:
    async def again() -> Catalog:
        await state["catalog"].close()
        state["catalog"] = SqliteCatalog(tmp_path / "rag")
        await state["catalog"].start()
        return state["catalog"]

    return again


class TestSqliteCatalog(CatalogSuite):
    pass


@pytest.fixture
def small_exact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores past 50 chunks search the HNSW graph, so a few hundred chunks exercise it."""
    monkeypatch.setattr(vector_index, "EXACT_LIMIT", 50)


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.stack([unit(seed * 1000 + i) for i in range(8)])
    return np.stack([near(centres[rng.integers(8)], 0.8, seed * 10_000 + i) for i in range(n)])


@pytest.mark.usefixtures("small_exact_limit")
async def test_graph_search_matches_exact(catalog: SqliteCatalog) -> None:
    await make_store(catalog, A, "vs_g")
    data = clustered(400, 1)
    for f in range(4):
        await add_file(catalog, A, "vs_g", f"file-{f}", data[f * 100 : (f + 1) * 100], attributes={"part": f})
    queries = clustered(20, 2)
    hits_found = 0
    for q in queries:
        truth = np.argsort(-(data @ q))[:10]
        got = await catalog.search(A, ["vs_g"], q, 10)
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        hits_found += len({int(h.file_id[-1]) * 100 + h.chunk_index for h in got} & set(truth.tolist()))
        # A filter letting through more than the exact limit walks the graph with hnswlib's filter.
        some = await catalog.search(A, ["vs_g"], q, 10, filters={"type": "lte", "key": "part", "value": 2})
        assert len(some) == 10 and all(h.attributes["part"] <= 2 for h in some)
        # One letting through fewer is exact over those chunks.
        one = await catalog.search(A, ["vs_g"], q, 10, filters={"type": "eq", "key": "part", "value": 3})
        assert [h.chunk_index for h in one] == [int(i) for i in np.argsort(-(data[300:] @ q))[:10]]
    assert hits_found / (10 * len(queries)) >= 0.95


@pytest.mark.usefixtures("small_exact_limit")
async def test_graph_deletes_and_reuses_slots(catalog: SqliteCatalog) -> None:
    await make_store(catalog, A, "vs_g")
    data = clustered(300, 3)
    for f in range(3):
        await add_file(catalog, A, "vs_g", f"file-{f}", data[f * 100 : (f + 1) * 100])
    q = data[150]
    assert (await catalog.search(A, ["vs_g"], q, 1))[0].file_id == "file-1"
    await catalog.delete_store_file(A, "vs_g", "file-1")
    assert all(h.file_id != "file-1" for h in await catalog.search(A, ["vs_g"], q, 50))
    # The freed slots take a new file's chunks; the graph finds them.
    await add_file(catalog, A, "vs_g", "file-new", data[100:200])
    assert (await catalog.search(A, ["vs_g"], q, 1))[0].file_id == "file-new"


async def saved_store(directory: Path, seed: int) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """A store of one file of 200 chunks, closed (so its graph is saved); its vectors, and the top
    5 (chunk, score) for the vector of chunk 7."""
    catalog = SqliteCatalog(directory)
    await catalog.start()
    await make_store(catalog, A, "vs_g")
    data = clustered(200, seed)
    await add_file(catalog, A, "vs_g", "file-0", data)
    top = [(h.chunk_index, h.score) for h in await catalog.search(A, ["vs_g"], data[7], 5)]
    await catalog.close()
    return data, top


@pytest.mark.usefixtures("small_exact_limit")
async def test_restart_loads_the_saved_graph(tmp_path: Path) -> None:
    data, before = await saved_store(tmp_path / "rag", 4)
    [graph] = (tmp_path / "rag" / "index").glob("vs_g-*.hnsw")
    stamp = graph.stat().st_mtime_ns

    catalog = SqliteCatalog(tmp_path / "rag")
    await catalog.start()
    assert [(h.chunk_index, h.score) for h in await catalog.search(A, ["vs_g"], data[7], 5)] == before
    await catalog.close()
    assert graph.exists() and graph.stat().st_mtime_ns == stamp  # loaded, not rebuilt and saved again


@pytest.mark.usefixtures("small_exact_limit")
async def test_a_crash_before_the_save_rebuilds_from_the_rows(tmp_path: Path) -> None:
    data, _ = await saved_store(tmp_path / "rag", 5)
    # Changes after the last save, then no close (the process died): the saved graph is stale.
    crashed = SqliteCatalog(tmp_path / "rag")
    await crashed.start()
    await crashed.delete_store_file(A, "vs_g", "file-0")
    await add_file(crashed, A, "vs_g", "file-1", data[:80])
    assert crashed._executor is not None
    crashed._executor.shutdown(wait=True)  # leaves the connection unclosed and the graph unsaved

    catalog = SqliteCatalog(tmp_path / "rag")
    await catalog.start()
    hits = await catalog.search(A, ["vs_g"], data[3], 100, score_threshold=-1.0)
    assert {h.file_id for h in hits} == {"file-1"} and len(hits) == 80
    assert hits[0].chunk_index == 3
    await catalog.close()


async def test_another_process_writing_is_seen(tmp_path: Path) -> None:
    first, second = SqliteCatalog(tmp_path / "rag"), SqliteCatalog(tmp_path / "rag")
    await first.start()
    await second.start()
    try:
        await make_store(first, A, "vs_1")
        q = unit(1)
        await add_file(first, A, "vs_1", "file-1", np.stack([near(q, 0.5, 1)]))
        assert [h.file_id for h in await second.search(A, ["vs_1"], q, 5)] == ["file-1"]
        await add_file(first, A, "vs_1", "file-2", np.stack([near(q, 0.9, 2)]))
        await first.put_store_file(
            StoreFileRecord(store_id="vs_1", file_id="file-1", tenant=A, status="failed", created_at=1)
        )
        assert [h.file_id for h in await second.search(A, ["vs_1"], q, 5)] == ["file-2"]
    finally:
        await first.close()
        await second.close()


async def test_file_bytes_live_on_disk_and_go_with_the_file(catalog: SqliteCatalog, tmp_path: Path) -> None:
    await make_store(catalog, A, "vs_1")
    await add_file(catalog, A, "vs_1", "file-1", np.stack([unit(1)]))
    path = tmp_path / "rag" / "files" / "file-1"
    assert path.read_bytes() == b"abc"
    await catalog.delete_file(A, "file-1")
    assert not path.exists()


async def test_ids_that_are_not_names_are_refused(catalog: SqliteCatalog) -> None:
    with pytest.raises(ValueError):
        await make_store(catalog, A, "../etc")


@pytest.mark.usefixtures("small_exact_limit")
async def test_graphs_are_saved_once_the_interval_has_passed(tmp_path: Path) -> None:
    clock = Clock(0.0)
    catalog = SqliteCatalog(tmp_path / "rag", save_interval=30.0, clock=clock)
    await catalog.start()
    try:
        await make_store(catalog, A, "vs_g")
        data = clustered(120, 6)
        await add_file(catalog, A, "vs_g", "file-0", data[:60])
        clock.now += 10
        await add_file(catalog, A, "vs_g", "file-1", data[60:100])
        assert list((tmp_path / "rag" / "index").glob("*.hnsw")) == []  # not yet: 10 s since the first change
        clock.now += 25
        await add_file(catalog, A, "vs_g", "file-2", data[100:])
        [saved] = (tmp_path / "rag" / "index").glob("vs_g-*.hnsw")
    finally:
        await catalog.close()
    [after_close] = (tmp_path / "rag" / "index").glob("vs_g-*.hnsw")  # the close saved the last version
    assert after_close != saved


async def test_a_catalog_made_before_attach_ids_and_batch_rows_opens_with_its_rows(tmp_path: Path) -> None:
    (tmp_path / "rag").mkdir()
    db = sqlite3.connect(tmp_path / "rag" / "catalog.sqlite3")
    db.executescript(
        "CREATE TABLE store_files (store_id TEXT NOT NULL, file_id TEXT NOT NULL, tenant TEXT NOT NULL, "
        "status TEXT NOT NULL, created_at INTEGER NOT NULL, attributes TEXT NOT NULL, chunking TEXT NOT NULL, "
        "usage_bytes INTEGER NOT NULL, last_error TEXT, PRIMARY KEY (store_id, file_id));"
        "INSERT INTO store_files VALUES ('vs_1', 'file-1', 'tenant-a', 'in_progress', 1, '{}', "
        '\'{"type": "auto", "batch_id": "vsfb_old"}\', 0, NULL);'
    )
    db.commit()
    db.close()
    catalog = SqliteCatalog(tmp_path / "rag")
    await catalog.start()
    try:
        [record] = await catalog.in_progress()
        assert (record.file_id, record.attach_id) == ("file-1", "")
        assert [f.file_id for f in await catalog.batch_files("tenant-a", "vs_1", "vsfb_old")] == ["file-1"]
    finally:
        await catalog.close()


@pytest.mark.usefixtures("small_exact_limit")
async def test_indexes_past_the_memory_budget_are_saved_dropped_and_loaded_again(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "rag", max_index_bytes=1)  # room for the index in use only
    await catalog.start()
    try:
        data = {name: clustered(120, seed) for seed, name in enumerate(("vs_a", "vs_b"), 11)}
        for name, vectors in data.items():
            await make_store(catalog, A, name)
            await add_file(catalog, A, name, f"file-{name}", vectors)
        assert catalog.loaded == ["vs_b"]  # vs_a was dropped when vs_b's index was built
        assert list((tmp_path / "rag" / "index").glob("vs_a-*.hnsw"))  # saved as it left, being changed
        for _ in range(2):  # each search loads its store again, from its saved graph, and drops the other
            for name, vectors in data.items():
                hits = await catalog.search(A, [name], vectors[7], 3)
                assert hits[0].file_id == f"file-{name}" and hits[0].chunk_index == 7
                assert catalog.loaded == [name]
        both = await catalog.search(A, ["vs_a", "vs_b"], data["vs_a"][7], 2)  # one search, two stores
        assert (both[0].store_id, both[0].chunk_index) == ("vs_a", 7)
    finally:
        await catalog.close()

    roomy = SqliteCatalog(tmp_path / "rag")  # the default budget keeps both
    await roomy.start()
    try:
        for name, vectors in data.items():
            assert (await roomy.search(A, [name], vectors[9], 1))[0].chunk_index == 9
        assert roomy.loaded == ["vs_a", "vs_b"]
    finally:
        await roomy.close()
