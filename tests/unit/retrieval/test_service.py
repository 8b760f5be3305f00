"""The service's rules over the real catalog: another tenant's ids are not found, stores above
a caller's class are refused, values come back only for `read_pii`, uploads are sealed at rest,
and the audit trail gets ids, never text."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.errors import BadRequest, Forbidden, NotFound
from interlock.security.dlp import Policy
from tests.unit.retrieval.conftest import ADMIN, OTHER, USER, Parts, make_parts

DOC = b"The office cat is named Biscuit. Write to cats@example.com with sightings."


async def ingested(parts: Parts) -> tuple[str, str]:
    store = await parts.service.create_store(USER, "pets", {"team": "facilities"}, None)
    record = await parts.service.upload(USER, "pets.txt", "assistants", DOC)
    await parts.service.attach(USER, store.id, record.id, {"kind": "note"}, None)
    await parts.ingestor.drained()
    return store.id, record.id


async def test_another_tenant_finds_nothing(parts: Parts) -> None:
    store_id, file_id = await ingested(parts)
    calls = [
        lambda: parts.service.file(OTHER, file_id),
        lambda: parts.service.delete_file(OTHER, file_id),
        lambda: parts.service.store(OTHER, store_id),
        lambda: parts.service.delete_store(OTHER, store_id),
        lambda: parts.service.store_file(OTHER, store_id, file_id),
        lambda: parts.service.search(OTHER, [store_id], ["cat"], 3),
        lambda: parts.service.attach(OTHER, store_id, file_id, {}, None),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()
    assert await parts.service.files(OTHER, None, 10, None, "desc") == []
    assert (await parts.service.search(USER, [store_id], ["cat"], 3))[1]  # still there for its tenant


async def test_values_come_back_only_for_read_pii_and_the_content_too(parts: Parts) -> None:
    store_id, file_id = await ingested(parts)
    _, user_hits = await parts.service.search(USER, [store_id], ["cat sightings"], 3)
    _, admin_hits = await parts.service.search(ADMIN, [store_id], ["cat sightings"], 3)
    assert "cats@example.com" not in user_hits[0].text and "<EMAIL_" in user_hits[0].text
    assert "cats@example.com" in admin_hits[0].text
    _, raw = await parts.service.search(ADMIN, [store_id], ["cat sightings"], 3, reveal=False)
    assert "<EMAIL_" in raw[0].text
    with pytest.raises(Forbidden):
        await parts.service.content(USER, file_id)
    assert (await parts.service.content(ADMIN, file_id))[1] == DOC


async def test_uploads_are_sealed_at_rest(parts: Parts) -> None:
    await ingested(parts)
    stored = b"".join(p.read_bytes() for p in parts.directory.rglob("*") if p.is_file())
    assert b"cats@example.com" not in stored and b"Biscuit" in stored  # the chunk's text, tokenized


async def test_a_store_above_the_callers_class_is_refused(parts: Parts) -> None:
    with pytest.raises(Forbidden) as refused:
        await parts.service.create_store(USER, "hr", {}, "restricted")
    assert refused.value.code == "data_class_forbidden"
    store = await parts.service.create_store(ADMIN, "hr", {}, "restricted")
    with pytest.raises(NotFound):
        await parts.service.search(USER, [store.id], ["x"], 1)


async def test_a_store_above_the_callers_class_is_not_found_on_any_path_nor_listed(parts: Parts) -> None:
    # USER may send internal data at most: a restricted store of its own tenant is as absent to
    # it as another tenant's, whatever it asks of it.
    record = await parts.service.upload(ADMIN, "hr.txt", "assistants", DOC)
    store = await parts.service.create_store(ADMIN, "hr", {}, "restricted")
    batch_id, _ = await parts.service.create_batch(ADMIN, store.id, [(record.id, {}, None)])
    await parts.ingestor.drained()
    calls = [
        lambda: parts.service.store(USER, store.id),
        lambda: parts.service.update_store(USER, store.id, "mine", None),
        lambda: parts.service.store_file(USER, store.id, record.id),
        lambda: parts.service.store_files(USER, store.id, None, 10, None, "asc"),
        lambda: parts.service.batch(USER, store.id, batch_id),
        lambda: parts.service.cancel_batch(USER, store.id, batch_id),
        lambda: parts.service.detach(USER, store.id, record.id),
        lambda: parts.service.delete_store(USER, store.id),
        lambda: parts.service.search(USER, [store.id], ["x"], 1),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()
    open_store = await parts.service.create_store(USER, "open", {}, None)
    assert [s.id for s in await parts.service.stores(USER, 10, None, "asc")] == [open_store.id]
    assert [s.id for s in await parts.service.stores(USER, 1, None, "asc")] == [open_store.id]  # paged past it
    assert {s.id for s in await parts.service.stores(ADMIN, 10, None, "asc")} == {store.id, open_store.id}
    assert (await parts.service.store_file(ADMIN, store.id, record.id)).status == "completed"  # all untouched


async def test_the_audit_trail_names_ids_and_never_text(parts: Parts) -> None:
    store_id, file_id = await ingested(parts)
    await parts.service.search(USER, [store_id], ["What is the cat called?"], 3)
    await parts.service.detach(USER, store_id, file_id)
    await parts.service.delete_file(USER, file_id)
    actions = [e["action"] for e in parts.audit]
    assert actions == ["store.create", "file.upload", "store.file.attach", "store.search", "store.file.detach",
                       "file.delete"]  # fmt: skip
    search = parts.audit[3]
    assert search["store_ids"] == [store_id] and search["chunks"] == [f"{file_id}#0"]
    assert all(e["tenant"] == "acme" and e["subject"] == "u" for e in parts.audit)
    text = repr(parts.audit)
    assert "Biscuit" not in text and "cats@example.com" not in text and "cat called" not in text


async def test_a_filename_is_screened_at_upload_and_its_values_come_back_only_for_read_pii(
    parts: Parts, tmp_path: Path
) -> None:
    record = await parts.service.upload(USER, "cats@example.com sightings.txt", "assistants", DOC)
    assert "cats@example.com" not in record.filename and record.filename.startswith("<EMAIL_")
    assert (await parts.service.file(USER, record.id)).filename == record.filename
    assert (await parts.service.file(ADMIN, record.id)).filename == "cats@example.com sightings.txt"
    assert [f.filename for f in await parts.service.files(ADMIN, None, 10, None, "asc")] == [
        "cats@example.com sightings.txt"
    ]
    store = await parts.service.create_store(USER, "pets", {}, None)
    await parts.service.attach(USER, store.id, record.id, {}, None)
    await parts.ingestor.drained()
    _, hits = await parts.service.search(USER, [store.id], ["cat"], 1)
    assert hits[0].filename == record.filename  # what the model and citations are given too
    _, hits = await parts.service.search(ADMIN, [store.id], ["cat"], 1)
    assert hits[0].filename == "cats@example.com sightings.txt"
    stored = b"".join(p.read_bytes() for p in parts.directory.rglob("*") if p.is_file())
    assert b"cats@example.com" not in stored


async def test_a_filename_with_a_blocked_type_refuses_the_upload_naming_the_type_only(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v", Policy("docs", actions={"EMAIL": "block"}))
    await parts.catalog.start()
    try:
        with pytest.raises(BadRequest) as refused:
            await parts.service.upload(USER, "cats@example.com.txt", "assistants", DOC)
        assert "EMAIL" in refused.value.message and "cats@" not in refused.value.message
        assert await parts.service.files(USER, None, 10, None, "asc") == []
    finally:
        await parts.catalog.close()
