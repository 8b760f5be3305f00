"""Documents full of PII ingested under a tokenize policy, on the SQLite catalog and on
PostgreSQL: no raw value in the catalog's files (SQLite, its WAL, the stored uploads, the ANN
graphs) or the PostgreSQL schema's data, the gateway's log, the audit trail, what the upstream
was sent for a chat with retrieval, or search results for a caller without `read_pii`; a caller
with it gets the values back. A policy that blocks a type fails the file with `pii_refused`
naming the type, never the value."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.integration.test_vector_stores import catalog_section, create_key, drop_schema, wait_done
from tests.support.fake_upstream import FakeUpstream
from tests.support.leaks import leaked
from tests.support.procs import ROOT, Gateway

pytestmark = pytest.mark.integration
SECRET = "test-server-secret-0123456789"
PEOPLE = [  # the values tests/integration/test_no_raw_pii.py sends through a gateway
    ("maria.garcia@contoso.com", "+1 206 555 0143", "4539 1488 0343 6467", "GB82 WEST 1234 5698 7654 32", "219-45-6789"),
    ("li.wei@fabrikam.cn", "+44 20 7946 0958", "5555 5555 5555 4444", "DE89 3704 0044 0532 0130 00", "536-22-1234"),
    ("o.brien@example.ie", "+1 415 555 2671", "3782 822463 10005", "FR14 2004 1010 0505 0001 3M02 606", "078-12-3456"),
]  # fmt: skip
RAW = [value for person in PEOPLE for value in person]


def document(i: int, person: tuple[str, ...]) -> bytes:
    email, phone, card, iban, ssn = person
    text = (
        f"# Customer record {i}\n\nThe customer asked about their refund for order {1000 + i}. "
        f"Reach them at {email} or on {phone}. The refund goes to the card {card}; if that fails, "
        f"to the account {iban}. Their social security number on file is {ssn}.\n\n"
        "Refunds are processed within five business days of approval by the billing team.\n"
    )
    return text.encode()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    tmp = session_tmp / f"vector-stores-pii-{request.param}"
    tmp.mkdir()
    retrieval = catalog_section(request.param)
    config = {
        "models": [{"name": "chat", "deployments": [{"id": "chat", "backend": "openai",
                                                      "api_base": upstream.base("rag-pii")}]}],
        "security": {"server_secret": "os.environ/TEST_SECRET", "keys": {"sqlite_path": "keys.db"}},
        "dlp": {"tokenization_key": "os.environ/TEST_TOKEN_KEY", "policies": {
            "default": {"default_action": "tokenize"},
            "strict": {"actions": {"US_SSN": "block"}, "default_action": "tokenize"},
        }},
        "audit": {"sqlite_path": "audit.db"},
        "server": {"log_level": "debug"},
        "retrieval": retrieval,
    }  # fmt: skip
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"TEST_SECRET": SECRET, "TEST_TOKEN_KEY": "p" * 40}
    keys = {
        "admin": create_key(path, env, "--name", "admin", "--role", "admin", "--tenant", "acme"),
        "user": create_key(path, env, "--name", "user", "--tenant", "acme"),
    }
    gw = Gateway(tmp, config, env=env)
    clients = {name: openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) for name, key in keys.items()}
    user = clients["user"]
    ids = [user.files.create(file=(f"customer-{i}.md", document(i, p)), purpose="assistants").id
           for i, p in enumerate(PEOPLE)]  # fmt: skip
    store = user.vector_stores.create(name="customers", file_ids=ids)
    statuses = wait_done(user, store.id)
    yield {"gw": gw, "clients": clients, "store": store, "statuses": statuses, "tmp": tmp, "config": path, "env": env,
           "retrieval": retrieval, "kind": request.param}  # fmt: skip
    for client in clients.values():
        client.close()
    gw.stop()
    drop_schema(config["retrieval"])


def catalog_text(setup: dict[str, Any]) -> str:
    """Everything the catalog wrote, as text: every file under its directory, or the schema's data."""
    if setup["kind"] == "sqlite":
        directory = setup["tmp"] / "interlock-vectors"
        files = [p for p in directory.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".hnsw") for p in files) or files, "the catalog wrote nothing"
        return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    schema = setup["retrieval"]["postgres_schema"]
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "--data-only", "-n", schema],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "COPY" in dump.stdout
    return dump.stdout


def test_every_file_is_completed_with_its_values_tokenized(setup: dict[str, Any]) -> None:
    assert [s.status for s in setup["statuses"]] == ["completed"] * len(PEOPLE)


def test_no_raw_value_in_the_catalog(setup: dict[str, Any]) -> None:
    text = catalog_text(setup)
    assert "Refunds are processed" in text or setup["kind"] == "postgres" or "refund" in text.lower()
    assert leaked(text, RAW) == []


def test_search_shows_tokens_to_a_user_and_values_to_a_caller_with_read_pii(setup: dict[str, Any]) -> None:
    store = setup["store"]
    query = "where does the refund go and how to reach the customer"
    user_hits = list(setup["clients"]["user"].vector_stores.search(store.id, query=query, max_num_results=10))
    user_text = "\n".join(h.content[0].text for h in user_hits)
    assert "refund" in user_text and "<EMAIL_" in user_text
    assert leaked(user_text, RAW) == []
    admin_text = "\n".join(
        h.content[0].text
        for h in setup["clients"]["admin"].vector_stores.search(store.id, query=query, max_num_results=10)
    )
    assert "maria.garcia@contoso.com" in admin_text and "<EMAIL_" not in admin_text


def test_chat_with_retrieval_sends_the_model_tokens_only(setup: dict[str, Any], upstream: FakeUpstream) -> None:
    upstream.reset()
    answer = setup["clients"]["user"].chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "How do I reach the customer about the refund?"}],
        extra_body={"vector_store_ids": [setup["store"].id]},
    )  # fmt: skip
    assert answer.model_extra is not None and answer.model_extra["citations"]
    (sent,) = upstream.state.bodies("rag-pii")
    prompt = sent["messages"][0]["content"]
    assert "<EMAIL_" in prompt and leaked(prompt, RAW) == []


def test_no_raw_value_in_the_log_or_the_audit_trail(setup: dict[str, Any]) -> None:
    time.sleep(1.5)  # the audit writer's batch
    exported = subprocess.run(
        [sys.executable, "-m", "interlock", "audit", "export", "--config", str(setup["config"])],
        capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ, **setup["env"]},
    ).stdout  # fmt: skip
    assert "file.upload" in exported
    assert leaked(exported, RAW) == []
    assert leaked(setup["gw"].log(), RAW) == []


def test_a_policy_that_blocks_a_type_fails_the_file_naming_the_type(tmp_path: Path, setup: dict[str, Any]) -> None:
    """`interlock ingest` under the `strict` policy: the SSN is refused, nothing of it is indexed."""
    config = yaml.safe_load(setup["config"].read_text())
    config["retrieval"] = {**setup["retrieval"], "dlp_policy": "strict"}
    if setup["kind"] == "sqlite":
        config["retrieval"]["directory"] = str(tmp_path / "vectors")
    config["audit"] = {"sqlite_path": str(tmp_path / "audit.db")}
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(config))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "record.md").write_bytes(document(9, PEOPLE[0]))
    (docs / "clean.md").write_text("Refunds are processed within five business days.")
    run = subprocess.run(
        [sys.executable, "-m", "interlock", "ingest", str(docs), "--store", "strict", "--tenant", "acme",
         "--config", str(path)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **setup["env"]}, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "1 completed, 1 failed" in run.stdout
    assert "2/2 files, 1 failed" in run.stderr
    assert leaked(run.stdout + run.stderr, RAW) == []
    assert "record.md: pii_refused: US_SSN" in run.stderr
