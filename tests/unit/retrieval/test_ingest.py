"""Ingestion over the real SQLite catalog, MiniLM and DLP: files complete with their values
tokenized, a bad file fails alone with a reason, a policy's refusal and a store's data class fail
a file without indexing it, a full queue refuses, a detached file leaves nothing, and files left
in_progress by a process that stopped are resumed by the next."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from interlock.errors import BadRequest, NotFound, Overloaded
from interlock.retrieval.chunking import AUTO, Chunker, parse_strategy
from interlock.retrieval.extract import extract_text
from interlock.retrieval.ingest import Ingestor, Job
from interlock.retrieval.sealed import Sealed
from interlock.retrieval.service import VectorStores
from interlock.retrieval.sqlite_catalog import SqliteCatalog
from interlock.retrieval.types import StoreFileRecord
from interlock.security.dlp import Policy
from interlock.security.roles import Identity
from tests.support.clock import Clock
from tests.support.embedder import minilm
from tests.unit.retrieval.conftest import ADMIN, OTHER, USER, Parts, make_parts


def later() -> float:
    """The clock of a process started after the first one's leases expired (it stopped)."""
    return time.time() + 3600


def rewire(parts: Parts, extract: Any, **ingestor: Any) -> None:
    """Parts whose ingestor extracts with `extract` and has no DLP."""
    parts.ingestor = Ingestor(parts.catalog, Sealed(b"s" * 32), extract, Chunker().split, minilm(), None, **ingestor)
    parts.service = VectorStores(parts.catalog, parts.ingestor, minilm(), Sealed(b"s" * 32), AUTO)


DOC = b"Refunds are processed within five business days. Questions go to refunds.team@example.com."


async def attach(parts: Parts, store_id: str, name: str, content: bytes, who: Identity = USER) -> str:
    record = await parts.service.upload(who, name, "assistants", content)
    await parts.service.attach(who, store_id, record.id, {}, None)
    return record.id


async def test_a_file_completes_with_its_values_tokenized(parts: Parts) -> None:
    store = await parts.service.create_store(USER, "docs", {}, None)
    file_id = await attach(parts, store.id, "refunds.txt", DOC)
    await parts.ingestor.drained()
    done = await parts.service.store_file(USER, store.id, file_id)
    assert done.status == "completed" and done.last_error is None and done.usage_bytes > 0
    _, hits = await parts.service.search(USER, [store.id], ["how long do refunds take"], 5)
    assert hits[0].file_id == file_id and "five business days" in hits[0].text
    assert "refunds.team@example.com" not in hits[0].text and "<EMAIL_" in hits[0].text


async def test_one_bad_file_fails_alone_with_a_reason_and_no_text(parts: Parts) -> None:
    store = await parts.service.create_store(USER, "docs", {}, None)
    bad = await attach(parts, store.id, "blob.bin", bytes(range(256)) * 4)
    empty = await attach(parts, store.id, "empty.txt", b"   \n")
    good = await attach(parts, store.id, "refunds.txt", DOC)
    await parts.ingestor.drained()
    statuses = {f.file_id: f for f in await parts.service.store_files(USER, store.id, None, 10, None, "asc")}
    assert statuses[good].status == "completed"
    assert statuses[bad].status == "failed" and (statuses[bad].last_error or "").startswith("unsupported_file: ")
    assert statuses[empty].status == "failed" and (statuses[empty].last_error or "").startswith("invalid_file: ")
    counts = await parts.service.counts(USER, store.id)
    assert (counts.completed, counts.failed) == (1, 2)


async def test_a_policy_that_blocks_a_type_fails_the_file_naming_it(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v", Policy("docs", actions={"EMAIL": "block"}))
    await parts.catalog.start()
    await parts.ingestor.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        file_id = await attach(parts, store.id, "refunds.txt", DOC)
        await parts.ingestor.drained()
        failed = await parts.service.store_file(USER, store.id, file_id)
        assert (failed.status, failed.last_error) == ("failed", "pii_refused: EMAIL")
        assert (await parts.service.search(USER, [store.id], ["refunds"], 5))[1] == []
    finally:
        await parts.ingestor.close()
        await parts.catalog.close()


async def test_findings_above_the_stores_class_fail_the_file(parts: Parts) -> None:
    store = await parts.service.create_store(ADMIN, "docs", {}, "confidential")
    file_id = await attach(parts, store.id, "ssn.txt", b"The employee's SSN is 219-45-6789, on file since 2019.", ADMIN)
    await parts.ingestor.drained()
    failed = await parts.service.store_file(ADMIN, store.id, file_id)
    assert (failed.status, failed.last_error) == ("failed", "data_class_exceeded: restricted")
    restricted = await parts.service.create_store(ADMIN, "hr", {}, "restricted")
    await parts.service.attach(ADMIN, restricted.id, file_id, {}, None)
    await parts.ingestor.drained()
    assert (await parts.service.store_file(ADMIN, restricted.id, file_id)).status == "completed"


async def test_a_full_queue_refuses_the_file_and_links_nothing(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v", queue_size=1)
    await parts.catalog.start()  # the workers are not started: the queue fills
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        await attach(parts, store.id, "a.txt", DOC)
        refused = await parts.service.upload(USER, "b.txt", "assistants", DOC)
        with pytest.raises(Overloaded) as raised:
            await parts.service.attach(USER, store.id, refused.id, {}, None)
        assert raised.value.status == 503 and raised.value.headers["retry-after"] == "5"
        assert [f.file_id for f in await parts.service.store_files(USER, store.id, None, 10, None, "asc")] != [
            refused.id
        ]
        assert (await parts.service.counts(USER, store.id)).total == 1
    finally:
        await parts.catalog.close()


async def test_files_left_in_progress_are_resumed_by_the_next_process(tmp_path: Path) -> None:
    first = make_parts(tmp_path / "v")
    await first.catalog.start()  # no workers: the process stops with the file queued
    store = await first.service.create_store(USER, "docs", {}, None)
    file_id = await attach(first, store.id, "refunds.txt", DOC)
    await first.catalog.close()
    second = make_parts(tmp_path / "v", clock=later)
    await second.catalog.start()
    try:
        pending = await second.service.pending()
        assert [(job.file_id, record.status) for job, record in pending] == [(file_id, "in_progress")]
        await second.ingestor.start(pending)
        await second.ingestor.drained()
        assert (await second.service.store_file(USER, store.id, file_id)).status == "completed"
    finally:
        await second.ingestor.close()
        await second.catalog.close()


async def test_a_file_detached_before_its_turn_leaves_nothing(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    await parts.catalog.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        file_id = await attach(parts, store.id, "refunds.txt", DOC)
        await parts.service.detach(USER, store.id, file_id)
        await parts.ingestor.start()
        await parts.ingestor.drained()
        assert await parts.catalog.get_store_file(USER.tenant, store.id, file_id) is None
        assert (await parts.service.counts(USER, store.id)).total == 0
    finally:
        await parts.ingestor.close()
        await parts.catalog.close()


async def test_a_store_with_more_files_than_the_queue_takes_is_refused_before_it_is_made(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v", queue_size=2)
    await parts.catalog.start()  # no workers: what is queued stays queued
    try:
        ids = [(await parts.service.upload(USER, f"{i}.txt", "assistants", DOC)).id for i in range(3)]
        with pytest.raises(BadRequest):
            await parts.service.create_store(USER, "big", {}, None, ids)
        await parts.service.create_store(USER, "one", {}, None, ids[:1])
        with pytest.raises(Overloaded):
            await parts.service.create_store(USER, "two", {}, None, ids[1:])
        assert [s.name for s in await parts.service.stores(USER, 10, None, "asc")] == ["one"]
    finally:
        await parts.catalog.close()


async def test_an_unexpected_error_fails_the_file_by_its_type_and_the_loop_goes_on(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")

    def extract(content: bytes, filename: str) -> str:
        if filename == "odd.txt":
            raise RuntimeError("a message that could quote the document: " + content.decode())
        return content.decode()

    rewire(parts, extract)
    await parts.catalog.start()
    await parts.ingestor.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        odd = await attach(parts, store.id, "odd.txt", DOC)
        fine = await attach(parts, store.id, "fine.txt", DOC)
        await parts.ingestor.drained()
        failed = await parts.service.store_file(USER, store.id, odd)
        assert (failed.status, failed.last_error) == ("failed", "server_error: RuntimeError")
        assert (await parts.service.store_file(USER, store.id, fine)).status == "completed"
    finally:
        await parts.ingestor.close()
        await parts.catalog.close()


async def test_attaching_again_reingests_a_done_file_and_never_queues_one_twice(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v", queue_size=1)
    await parts.catalog.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        record = await parts.service.upload(USER, "a.txt", "assistants", DOC)
        first = await parts.service.attach(USER, store.id, record.id, {"v": 1}, None)
        again = await parts.service.attach(USER, store.id, record.id, {"v": 2}, None)  # queued already: as it was
        assert again == first and parts.ingestor.queued == 1
        await parts.ingestor.start()
        await parts.ingestor.drained()
        await parts.ingestor.close()
        other = await parts.service.upload(USER, "b.txt", "assistants", DOC)
        await parts.service.attach(USER, store.id, other.id, {}, None)  # fills the queue (no workers now)
        with pytest.raises(Overloaded):  # a full queue leaves the completed link as it was
            await parts.service.attach(USER, store.id, record.id, {"v": 3}, None)
        kept = await parts.service.store_file(USER, store.id, record.id)
        assert kept.status == "completed" and kept.attributes == {"v": 1}
    finally:
        await parts.catalog.close()


async def test_a_batch_is_queued_whole_resumed_after_a_restart_and_cancelled_files_are_skipped(tmp_path: Path) -> None:
    first = make_parts(tmp_path / "v")
    await first.catalog.start()  # no workers: the batch stays queued when this process stops
    store = await first.service.create_store(USER, "docs", {}, None)
    ids = [(await first.service.upload(USER, f"{i}.txt", "assistants", DOC)).id for i in range(3)]
    kept, _ = await first.service.create_batch(USER, store.id, [(i, {}, None) for i in ids[:2]])
    dropped, _ = await first.service.create_batch(USER, store.id, [(ids[2], {}, None)])
    assert [f.status for f in await first.service.cancel_batch(USER, store.id, dropped)] == ["cancelled"]
    await first.catalog.close()
    second = make_parts(tmp_path / "v", clock=later)
    await second.catalog.start()
    try:
        pending = await second.service.pending()
        assert sorted(job.file_id for job, _ in pending) == sorted(ids[:2])
        await second.ingestor.start(pending)
        await second.ingestor.drained()
        assert {f.status for f in await second.service.batch(USER, store.id, kept)} == {"completed"}
        assert [f.status for f in await second.service.batch(USER, store.id, dropped)] == ["cancelled"]
    finally:
        await second.ingestor.close()
        await second.catalog.close()


class FailingWrites(SqliteCatalog):
    """The real catalog, whose chunk writes fail (a full disk, a lost database)."""

    async def add_chunks(self, *args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")


async def test_a_catalog_error_after_preparing_fails_the_file_by_its_type(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    parts.catalog = FailingWrites(tmp_path / "v")
    rewire(parts, extract_text)
    await parts.catalog.start()
    await parts.ingestor.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        file_id = await attach(parts, store.id, "refunds.txt", DOC)
        await parts.ingestor.drained()
        failed = await parts.service.store_file(USER, store.id, file_id)
        assert (failed.status, failed.last_error) == ("failed", "server_error: OperationalError")
        assert await parts.catalog.in_progress() == []  # nothing left to resume forever
    finally:
        await parts.ingestor.close()
        await parts.catalog.close()


@pytest.mark.parametrize("how", ["detach", "cancel"])
async def test_a_reattach_during_ingestion_wins_over_the_older_job(tmp_path: Path, how: str) -> None:
    started, release = threading.Event(), threading.Event()

    def extract(content: bytes, filename: str) -> str:
        if not release.is_set():  # the first ingestion stops here until the file is attached again
            started.set()
            release.wait(10)
        return content.decode()

    parts = make_parts(tmp_path / "v")
    rewire(parts, extract)
    await parts.catalog.start()
    await parts.ingestor.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        text = " ".join(["refunds"] * 300)
        file_id = (await parts.service.upload(USER, "long.txt", "assistants", text.encode())).id
        batch_id, _ = await parts.service.create_batch(USER, store.id, [(file_id, {"v": 1}, None)])
        assert await asyncio.to_thread(started.wait, 10)
        if how == "detach":
            await parts.service.detach(USER, store.id, file_id)
        else:
            await parts.service.cancel_batch(USER, store.id, batch_id)
        small = parse_strategy({"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 0}})
        await parts.service.attach(USER, store.id, file_id, {"v": 2}, small)
        release.set()
        await parts.ingestor.drained()
        done = await parts.service.store_file(USER, store.id, file_id)
        assert (done.status, done.attributes) == ("completed", {"v": 2})
        assert done.chunking["static"]["max_chunk_size_tokens"] == 400
        _, hits = await parts.service.search(USER, [store.id], ["refunds"], 50)
        made = Chunker().split(text, small)
        assert 1 < len(made) < len(Chunker().split(text, AUTO))  # the second chunking makes fewer chunks
        assert sorted(h.chunk_index for h in hits) == [c.index for c in made]
        assert all(h.attributes == {"v": 2} for h in hits)
    finally:
        release.set()
        await parts.ingestor.close()
        await parts.catalog.close()


async def test_a_batch_of_files_already_being_ingested_is_found(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    await parts.catalog.start()  # no workers: attached files stay in_progress
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        busy = await attach(parts, store.id, "a.txt", DOC)
        fresh = (await parts.service.upload(USER, "b.txt", "assistants", DOC)).id
        only_busy, _ = await parts.service.create_batch(USER, store.id, [(busy, {}, None)])
        both, _ = await parts.service.create_batch(USER, store.id, [(busy, {}, None), (fresh, {}, None)])
        assert [f.file_id for f in await parts.service.batch(USER, store.id, only_busy)] == [busy]
        assert sorted(f.file_id for f in await parts.service.batch(USER, store.id, both)) == sorted([busy, fresh])
        assert parts.ingestor.queued == 2  # each file queued once
        await parts.service.detach(USER, store.id, busy)
        with pytest.raises(NotFound):
            await parts.service.batch(USER, store.id, only_busy)
        with pytest.raises(NotFound):
            await parts.service.batch(OTHER, store.id, both)
    finally:
        await parts.catalog.close()


async def test_a_starting_process_leaves_the_files_a_live_one_holds_until_its_lease_expires(tmp_path: Path) -> None:
    clock = Clock(time.time())
    first = make_parts(tmp_path / "v", clock=clock)  # lease 60 s
    await first.catalog.start()  # its workers never run: its two files stay queued, its leases live
    store = await first.service.create_store(USER, "docs", {}, None)
    ids = [await attach(first, store.id, f"{i}.txt", DOC) for i in range(2)]
    processes = [first]
    try:
        clock.now += 30
        second = make_parts(tmp_path / "v", queue_size=1, clock=clock)  # another replica, same catalog
        processes.append(second)
        await second.catalog.start()
        assert await second.service.pending() == []
        await second.ingestor.start(await _all(second))  # even handed every in_progress file
        await second.ingestor.drained()
        for file_id in ids:  # neither resumed nor failed by the second
            record = await second.catalog.get_store_file(USER.tenant, store.id, file_id)
            assert record is not None and (record.status, record.lease_owner) == ("in_progress", first.ingestor.owner)
        await first.catalog.renew_leases(first.ingestor.owner, first.ingestor.lease_until())  # what its loop does
        clock.now += 50  # past the first lease, not the renewed one
        assert await second.service.pending() == []
        clock.now += 3600  # the first stopped renewing: its files are resumed, once
        third = make_parts(tmp_path / "v", clock=clock)
        processes.append(third)
        await third.catalog.start()
        pending = await third.service.pending()
        assert sorted(job.file_id for job, _ in pending) == sorted(ids)
        await third.ingestor.start(pending)
        await second.ingestor.start(pending)  # too late: the third holds them
        assert second.ingestor.queued == 0
        await third.ingestor.drained()
        for file_id in ids:
            assert (await third.service.store_file(USER, store.id, file_id)).status == "completed"
    finally:
        for parts in reversed(processes):
            await parts.ingestor.close()
            await parts.catalog.close()


async def _all(parts: Parts) -> list[tuple[Job, StoreFileRecord]]:
    """Every in_progress file as a job, live lease or not (what a start resumed before leases)."""
    out = []
    for record in await parts.catalog.in_progress():
        job = Job(record.tenant, record.store_id, record.file_id, "internal", AUTO, record.attach_id)
        out.append((job, record))
    return out


async def test_a_running_ingestor_renews_its_leases(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    rewire(parts, extract_text, workers=0, lease=0.3)
    await parts.catalog.start()
    await parts.ingestor.start()
    try:
        store = await parts.service.create_store(USER, "docs", {}, None)
        file_id = await attach(parts, store.id, "a.txt", DOC)
        taken = await parts.catalog.get_store_file(USER.tenant, store.id, file_id)
        await asyncio.sleep(0.5)
        renewed = await parts.catalog.get_store_file(USER.tenant, store.id, file_id)
        assert taken is not None and renewed is not None and renewed.lease_until > taken.lease_until
    finally:
        await parts.ingestor.close()
        await parts.catalog.close()


async def test_a_stopped_process_releases_its_leases_and_a_dead_ones_are_taken_by_a_running_one(
    tmp_path: Path,
) -> None:
    first = make_parts(tmp_path / "v")
    await first.catalog.start()
    store = await first.service.create_store(USER, "docs", {}, None)
    stopped = await attach(first, store.id, "a.txt", DOC)
    await first.ingestor.close()  # a clean stop: its lease is released
    died = await attach(first, store.id, "b.txt", DOC)
    record = await first.catalog.get_store_file(USER.tenant, store.id, died)
    assert record is not None  # its last renewal, as another process that then died:
    await first.catalog.put_store_file(
        msgspec.structs.replace(record, lease_owner="dead", lease_until=time.time() + 60)
    )
    await first.catalog.close()
    clock = Clock(time.time())
    second = make_parts(tmp_path / "v")
    rewire(second, extract_text, lease=0.3, clock=clock)
    await second.catalog.start()
    try:
        pending = await second.service.pending()
        assert [job.file_id for job, _ in pending] == [stopped]  # the dead one's lease is still live
        await second.ingestor.start(pending)
        clock.now += 120
        for _ in range(100):  # the lease loop takes it once its lease expired
            if (await second.service.store_file(USER, store.id, died)).status == "completed":
                break
            await asyncio.sleep(0.1)
        for file_id in (stopped, died):
            assert (await second.service.store_file(USER, store.id, file_id)).status == "completed"
    finally:
        await second.ingestor.close()
        await second.catalog.close()
