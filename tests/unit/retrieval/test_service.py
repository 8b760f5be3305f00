"""The service's rules over the real catalog: another tenant's ids are not found, stores above
a caller's class are refused, values come back only for `read_pii`, uploads are sealed at rest,
and the audit trail gets ids, never text."""

from __future__ import annotations

import pytest

from interlock.errors import Forbidden, NotFound
from tests.unit.retrieval.conftest import ADMIN, OTHER, USER, Parts

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
    with pytest.raises(Forbidden):
        await parts.service.search(USER, [store.id], ["x"], 1)


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
