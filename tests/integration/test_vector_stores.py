"""The Files and Vector Stores API and chat with retrieval through a running gateway, with the
official `openai` client, on the SQLite catalog and on PostgreSQL with pgvector: upload, attach,
poll until completed, search (filters, thresholds, several queries), chat with `vector_store_ids`
in `extra_body` (the chunks reach the upstream's prompt, the answer and a stream's first event
carry the citations), a file that cannot be read fails alone, tenancy (404 for another tenant's
ids), data classes (a restricted store's chunks reach only a deployment cleared for restricted,
and nothing when none is), deletion, and the audit trail (ids, never text)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, Gateway

pytestmark = pytest.mark.integration
PG = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "test-server-secret-0123456789"
DOCS = {
    "kestrel.md": b"# Project Kestrel\n\nProject Kestrel ships on 14 March. The launch owner is the platform team.\n",
    "pets.html": b"<html><body><h1>Office pets</h1><p>The office cat is named Biscuit and sleeps by the window.</p>"
    b"</body></html>",
    "billing.txt": b"Invoices go out on the first business day of each month. Disputes: write to "
    b"billing.disputes@acme-corp.com within 30 days.",
    "broken.bin": bytes(range(256)) * 8,
}
EMAIL = "billing.disputes@acme-corp.com"


def create_key(config: Path, env: dict[str, str], *args: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "interlock", "keys", "create", "--config", str(config), *args],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, check=True,
    )  # fmt: skip
    key: str = json.loads(made.stdout)["key"]
    return key


def catalog_section(kind: str) -> dict[str, Any]:
    """The `retrieval` section: SQLite beside the config, or a PostgreSQL schema of the test's own."""
    if kind == "sqlite":
        return {"catalog": "sqlite"}
    return {"catalog": "postgres", "postgres_dsn": PG, "postgres_schema": f"rag_api_{uuid.uuid4().hex[:10]}"}


def drop_schema(retrieval: dict[str, Any]) -> None:
    if retrieval["catalog"] == "postgres":
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc",
                        f"DROP SCHEMA IF EXISTS {retrieval['postgres_schema']} CASCADE"], check=True)  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    tmp = session_tmp / f"vector-stores-{request.param}"
    tmp.mkdir()
    config = {
        "models": [
            {"name": "chat", "deployments": [{"id": "chat", "backend": "openai", "api_base": upstream.base("rag-chat")}]},
            {"name": "private", "deployments": [{"id": "private", "backend": "openai",
                                                  "api_base": upstream.base("rag-private"), "max_class": "restricted"}]},
        ],
        "security": {"server_secret": "os.environ/TEST_SECRET", "keys": {"sqlite_path": "keys.db"},
                     "roles": {"reader": ["invoke"]}},
        "dlp": {"tokenization_key": "os.environ/TEST_TOKEN_KEY",
                "policies": {"default": {"actions": {"EMAIL": "tokenize"}}}},
        "audit": {"sqlite_path": "audit.db"},
        "retrieval": {**catalog_section(request.param), "max_file_bytes": 1_000_000},
        "router": {"retries": 0},
    }  # fmt: skip
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"TEST_SECRET": SECRET, "TEST_TOKEN_KEY": "t" * 40}
    keys = {
        "admin": create_key(path, env, "--name", "admin", "--role", "admin", "--tenant", "acme"),
        "user": create_key(path, env, "--name", "user", "--tenant", "acme"),
        "cleared": create_key(path, env, "--name", "cleared", "--tenant", "acme", "--max-class", "restricted"),
        "reader": create_key(path, env, "--name", "reader", "--role", "reader", "--tenant", "acme"),
        "other": create_key(path, env, "--name", "other", "--tenant", "globex"),
        "metered": create_key(path, env, "--name", "metered", "--tenant", "acme", "--rpm", "3"),
    }
    gw = Gateway(tmp, config, env=env)
    clients = {name: openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) for name, key in keys.items()}
    user = clients["user"]
    files = {name: user.files.create(file=(name, data), purpose="assistants") for name, data in DOCS.items()}
    store = user.vector_stores.create(name="handbook", file_ids=[f.id for f in files.values()])
    wait_done(user, store.id)
    yield {"gw": gw, "clients": clients, "keys": keys, "files": files, "store": store, "config": path, "env": env,
           "kind": request.param, "tmp": tmp}  # fmt: skip
    for client in clients.values():
        client.close()
    gw.stop()
    drop_schema(config["retrieval"])


def wait_done(client: openai.OpenAI, store_id: str, timeout: float = 90.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = list(client.vector_stores.files.list(store_id, limit=100))
        if all(f.status != "in_progress" for f in listed):
            return listed
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


def test_files_upload_list_retrieve_and_their_content_needs_read_pii(setup: dict[str, Any]) -> None:
    user, admin = setup["clients"]["user"], setup["clients"]["admin"]
    kestrel = setup["files"]["kestrel.md"]
    assert kestrel.object == "file" and kestrel.bytes == len(DOCS["kestrel.md"]) and kestrel.filename == "kestrel.md"
    assert {f.id for f in user.files.list()} >= {f.id for f in setup["files"].values()}
    assert user.files.retrieve(kestrel.id).id == kestrel.id
    assert admin.files.content(kestrel.id).read() == DOCS["kestrel.md"]
    with pytest.raises(openai.PermissionDeniedError):
        user.files.content(kestrel.id)


def test_ingestion_completes_and_one_unreadable_file_fails_alone(setup: dict[str, Any]) -> None:
    user, store = setup["clients"]["user"], setup["store"]
    by_id = {f.id: f for f in user.vector_stores.files.list(store.id)}
    broken = by_id[setup["files"]["broken.bin"].id]
    assert broken.status == "failed" and broken.last_error is not None
    assert broken.last_error.code == "unsupported_file"
    assert all(f.status == "completed" and f.usage_bytes > 0 for i, f in by_id.items() if i != broken.id)
    shown = user.vector_stores.retrieve(store.id)
    assert shown.status == "completed" and shown.name == "handbook"
    assert (shown.file_counts.completed, shown.file_counts.failed, shown.file_counts.total) == (3, 1, 4)
    assert shown.model_extra is not None and shown.model_extra["data_class"] == "internal"
    assert store.id in {s.id for s in user.vector_stores.list()}


def test_the_clients_upload_and_poll_helper_works_unchanged(setup: dict[str, Any]) -> None:
    user = setup["clients"]["user"]
    store = user.vector_stores.create(name="polled")
    done = user.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("faq.md", b"# FAQ\n\nThe VPN is called Tunnelbear Pro."), poll_interval_ms=100
    )
    assert done.status == "completed" and done.vector_store_id == store.id
    (hit,) = user.vector_stores.search(store.id, query="What is the VPN called?", max_num_results=1)
    assert "Tunnelbear" in hit.content[0].text


def test_file_batches_upload_and_poll_list_and_cancel(setup: dict[str, Any]) -> None:
    user, other = setup["clients"]["user"], setup["clients"]["other"]
    store = user.vector_stores.create(name="batched")
    batch = user.vector_stores.file_batches.upload_and_poll(
        store.id, files=[("a.md", b"The printer is on floor 3."), ("b.md", b"The canteen opens at 8.")],
        poll_interval_ms=100,
    )  # fmt: skip
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (2, 2)
    listed = list(user.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
    assert {f.status for f in listed} == {"completed"} and len(listed) == 2
    assert all(f.chunking_strategy is not None and f.chunking_strategy.type == "static" for f in listed)
    assert user.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).id == batch.id
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    cancelled = user.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "completed"  # nothing left to cancel
    with pytest.raises(openai.BadRequestError):
        user.vector_stores.file_batches.create(store.id)


def test_search_finds_the_chunk_that_answers(setup: dict[str, Any]) -> None:
    user, store = setup["clients"]["user"], setup["store"]
    page = user.vector_stores.search(store.id, query="When does Project Kestrel ship?", max_num_results=2)
    hits = list(page)
    assert hits[0].file_id == setup["files"]["kestrel.md"].id and "14 March" in hits[0].content[0].text
    assert len(hits) <= 2
    several = list(user.vector_stores.search(store.id, query=["office cat name", "Kestrel launch date"]))
    assert {h.filename for h in several[:2]} == {"pets.html", "kestrel.md"}
    strict = list(user.vector_stores.search(store.id, query="office cat", ranking_options={"score_threshold": 0.99}))
    assert strict == []


def test_search_filters_on_attributes(setup: dict[str, Any]) -> None:
    user = setup["clients"]["user"]
    store = user.vector_stores.create(name="filtered")
    pets, kestrel = setup["files"]["pets.html"], setup["files"]["kestrel.md"]
    user.vector_stores.files.create(store.id, file_id=pets.id, attributes={"team": "facilities", "year": 2024})
    user.vector_stores.files.create(store.id, file_id=kestrel.id, attributes={"team": "platform", "year": 2025})
    wait_done(user, store.id)
    query = "what happens at the office"
    only = list(
        user.vector_stores.search(store.id, query=query, filters={"type": "eq", "key": "team", "value": "platform"})
    )
    assert {h.file_id for h in only} == {kestrel.id}
    assert only[0].attributes == {"team": "platform", "year": 2025}
    recent = {"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2024},
                                         {"type": "ne", "key": "team", "value": "platform"}]}  # fmt: skip
    assert {h.file_id for h in user.vector_stores.search(store.id, query=query, filters=recent)} == {pets.id}
    with pytest.raises(openai.BadRequestError) as bad:
        user.vector_stores.search(store.id, query=query, filters={"type": "near", "key": "team", "value": 1})
    assert bad.value.body is not None and "filters" in str(bad.value.body)


def test_search_results_show_tokens_unless_the_caller_may_see_values(setup: dict[str, Any]) -> None:
    store = setup["store"]
    clients = setup["clients"]
    user_text = " ".join(h.content[0].text for h in clients["user"].vector_stores.search(store.id, query="disputes"))
    admin_text = " ".join(h.content[0].text for h in clients["admin"].vector_stores.search(store.id, query="disputes"))
    assert "Disputes" in user_text and EMAIL not in user_text and "<EMAIL_" in user_text
    assert EMAIL in admin_text and "<EMAIL_" not in admin_text


def test_chat_with_vector_store_ids_puts_the_chunks_in_the_prompt_and_cites_them(
    setup: dict[str, Any], upstream: FakeUpstream
) -> None:
    user, store = setup["clients"]["user"], setup["store"]
    pets = setup["files"]["pets.html"]
    answer = user.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "What is the office cat called?"}],
        extra_body={"vector_store_ids": [store.id]},
    )  # fmt: skip
    assert answer.choices[0].message.content == "answer from rag-chat"
    assert answer.model_extra is not None
    citations = answer.model_extra["citations"]
    assert citations[0]["file_id"] == pets.id and citations[0]["filename"] == "pets.html"
    assert {"chunk_index", "score", "vector_store_id"} <= set(citations[0]) and "text" not in citations[0]
    (sent,) = upstream.state.bodies("rag-chat")
    assert "vector_store_ids" not in sent
    system, question = sent["messages"][0], sent["messages"][-1]
    assert system["role"] == "system" and "Biscuit" in system["content"] and "[1] pets.html" in system["content"]
    assert question == {"role": "user", "content": "What is the office cat called?"}


def test_a_stream_carries_the_citations_in_its_first_event(setup: dict[str, Any], upstream: FakeUpstream) -> None:
    user, store = setup["clients"]["user"], setup["store"]
    stream = user.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "When does Kestrel ship?"}], stream=True,
        extra_body={"vector_store_ids": [store.id]},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].model_extra is not None
    assert chunks[0].model_extra["citations"][0]["file_id"] == setup["files"]["kestrel.md"].id
    assert all("citations" not in (c.model_extra or {}) for c in chunks[1:])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == "answer from rag-chat"
    (sent,) = upstream.state.bodies("rag-chat")
    assert "14 March" in sent["messages"][0]["content"]


def test_another_tenant_gets_404_for_every_id(setup: dict[str, Any], upstream: FakeUpstream) -> None:
    other, store = setup["clients"]["other"], setup["store"]
    file_id = setup["files"]["kestrel.md"].id
    calls = [
        lambda: other.files.retrieve(file_id),
        lambda: other.files.delete(file_id),
        lambda: other.files.content(file_id),
        lambda: other.vector_stores.retrieve(store.id),
        lambda: other.vector_stores.update(store.id, name="mine"),
        lambda: other.vector_stores.delete(store.id),
        lambda: other.vector_stores.search(store.id, query="Kestrel"),
        lambda: other.vector_stores.files.list(store.id),
        lambda: other.vector_stores.files.retrieve(file_id, vector_store_id=store.id),
        lambda: other.vector_stores.files.create(store.id, file_id=file_id),
        lambda: other.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Kestrel?"}],
            extra_body={"vector_store_ids": [store.id]},
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert list(other.files.list()) == [] and list(other.vector_stores.list()) == []
    assert upstream.state.calls["rag-chat"] == 0
    mine = other.files.create(file=("x.txt", b"globex notes"), purpose="user_data")
    with pytest.raises(openai.NotFoundError):  # its own file, the other tenant's store
        other.vector_stores.files.create(store.id, file_id=mine.id)


def test_a_restricted_store_reaches_only_a_deployment_cleared_for_restricted(
    setup: dict[str, Any], upstream: FakeUpstream
) -> None:
    cleared, user = setup["clients"]["cleared"], setup["clients"]["user"]
    with pytest.raises(openai.PermissionDeniedError):  # the user key may send internal data at most
        user.vector_stores.create(name="secret", extra_body={"data_class": "restricted"})
    store = cleared.vector_stores.create(
        name="secret", file_ids=[setup["files"]["kestrel.md"].id], extra_body={"data_class": "restricted"}
    )
    wait_done(cleared, store.id)
    ask = {
        "messages": [{"role": "user", "content": "When does Kestrel ship?"}],
        "extra_body": {"vector_store_ids": [store.id]},
    }
    with pytest.raises(openai.InternalServerError) as refused:  # `chat` is cleared for internal: fails closed
        cleared.chat.completions.create(model="chat", **ask)  # type: ignore[call-overload]
    assert refused.value.status_code == 503
    assert upstream.state.calls["rag-chat"] == 0
    answer = cleared.chat.completions.with_raw_response.create(model="private", **ask)  # type: ignore[call-overload]
    assert answer.headers["x-interlock-data-class"] == "restricted"
    assert "14 March" in upstream.state.bodies("rag-private")[0]["messages"][0]["content"]
    # nor may the internal key use it in any way: it is not found, as another tenant's store
    for call in (
        lambda: user.vector_stores.search(store.id, query="Kestrel"),
        lambda: user.vector_stores.retrieve(store.id),
        lambda: user.vector_stores.files.list(store.id),
        lambda: user.vector_stores.delete(store.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert store.id not in [s.id for s in user.vector_stores.list()]
    assert cleared.vector_stores.retrieve(store.id).id == store.id


def test_bad_input_gets_openai_shaped_errors(setup: dict[str, Any]) -> None:
    user, store = setup["clients"]["user"], setup["store"]
    with pytest.raises(openai.BadRequestError):
        user.vector_stores.search(store.id, query="x", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        user.vector_stores.create(name="x", chunking_strategy={"type": "static", "static": {
            "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}})  # fmt: skip
    with pytest.raises(openai.BadRequestError):
        user.files.create(file=("a.txt", b"x"), purpose="fine-tune")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        user.vector_stores.create(name="x", file_ids=["file-missing"])
    with pytest.raises(openai.APIStatusError) as too_large:
        user.files.create(file=("big.txt", b"x" * 1_200_000), purpose="assistants")
    assert too_large.value.status_code == 413
    broken = httpx.post(setup["gw"].url + "/v1/vector_stores", content=b"{not json",
                        headers={"authorization": f"Bearer {setup['keys']['user']}"})  # fmt: skip
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        user.get(f"/vector_stores/{store.id}/nothing", cast_to=object)
    with pytest.raises(openai.PermissionDeniedError):  # a reader (invoke only) may not upload
        setup["clients"]["reader"].files.create(file=("a.txt", b"x"), purpose="assistants")


def test_detach_delete_and_the_audit_trail(setup: dict[str, Any]) -> None:
    user = setup["clients"]["user"]
    doc = user.files.create(file=("gone.txt", b"The staging cluster is called Quokka."), purpose="assistants")
    store = user.vector_stores.create(name="temporary", file_ids=[doc.id])
    wait_done(user, store.id)
    assert [h.file_id for h in user.vector_stores.search(store.id, query="staging cluster name")] == [doc.id]
    assert user.files.delete(doc.id).deleted
    assert list(user.vector_stores.search(store.id, query="staging cluster name")) == []
    with pytest.raises(openai.NotFoundError):
        user.vector_stores.files.retrieve(doc.id, vector_store_id=store.id)
    assert user.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        user.vector_stores.retrieve(store.id)
    exported = subprocess.run(
        [sys.executable, "-m", "interlock", "audit", "export", "--config", str(setup["config"])],
        capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ, **setup["env"]},
    ).stdout  # fmt: skip
    actions = [json.loads(line).get("event", json.loads(line)) for line in exported.splitlines() if doc.id in line]
    assert {"file.upload", "store.file.attach", "file.delete"} <= {a.get("action") for a in actions}
    assert "Quokka" not in exported and "Biscuit" not in exported and EMAIL not in exported
    assert "store.search" in exported


def test_metrics_count_ingestion_and_retrievals(setup: dict[str, Any]) -> None:
    user = setup["clients"]["user"]
    list(user.vector_stores.search(setup["store"].id, query="office cat"))
    scraped = httpx.get(setup["gw"].url + "/metrics", headers={"authorization": f"Bearer {setup['keys']['admin']}"})
    text = scraped.text
    assert 'interlock_ingest_files_total{reason="unsupported_file",status="failed"}' in text
    assert 'interlock_ingest_files_total{reason="",status="completed"}' in text
    assert "interlock_ingest_chunks_total " in text
    assert 'interlock_retrieval_seconds_count{kind="search"}' in text


def test_a_file_being_ingested_when_the_gateway_stops_is_resumed_by_the_next(
    session_tmp: Path, upstream: FakeUpstream
) -> None:
    tmp = session_tmp / "vector-stores-restart"
    tmp.mkdir()
    config = {
        "models": [{"name": "chat", "deployments": [{"id": "chat", "backend": "openai",
                                                      "api_base": upstream.base("rag-chat")}]}],
        "retrieval": {},
    }  # fmt: skip
    long = "".join(f"Paragraph {i}: the maintenance window for rack {i % 40} is on day {i % 28}. " for i in range(4000))
    first = Gateway(tmp, config)
    try:
        client = openai.OpenAI(base_url=first.url + "/v1", api_key="unused", max_retries=0)
        doc = client.files.create(file=("racks.txt", long.encode()), purpose="assistants")
        store = client.vector_stores.create(name="racks", file_ids=[doc.id])
        assert client.vector_stores.files.retrieve(doc.id, vector_store_id=store.id).status == "in_progress"
    finally:
        first.stop()  # part way through its chunks
    second = Gateway(tmp, config)
    try:
        client = openai.OpenAI(base_url=second.url + "/v1", api_key="unused", max_retries=0)
        (done,) = wait_done(client, store.id, timeout=180)
        assert done.status == "completed" and done.usage_bytes > len(long)  # every chunk, with overlap
        assert "resuming 1 file(s) left in_progress" in second.log()
        assert list(client.vector_stores.search(store.id, query="maintenance window for a rack"))
    finally:
        second.stop()


def test_the_files_and_stores_routes_count_against_the_keys_requests_per_minute(setup: dict[str, Any]) -> None:
    metered, store = setup["clients"]["metered"], setup["store"]
    listed = metered.vector_stores.with_raw_response.list()
    assert listed.headers["x-ratelimit-limit-requests"] == "3"
    metered.vector_stores.search(store.id, query="Kestrel")
    metered.files.list()
    with pytest.raises(openai.RateLimitError) as refused:  # the fourth request of the minute
        metered.vector_stores.search(store.id, query="Kestrel")
    assert refused.value.response.headers["retry-after"]
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
