"""The audit trail of a running gateway on the machine's PostgreSQL: events for requests and
admin actions with no prompt text, a database that refuses UPDATE, DELETE and TRUNCATE, and
`interlock audit verify` naming a record edited behind its back; and a database that is not
there yet, whose events wait in the spool and arrive, in order, once it is."""

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

import openai
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, Gateway

pytestmark = pytest.mark.integration
PG = "postgresql://postgres@127.0.0.1:5432"
SECRET_PROMPT = "the merger with Initech closes Friday"


def psql(sql: str, db: str = "test", check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                          capture_output=True, text=True, check=check)  # fmt: skip


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock", "audit", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=60)  # fmt: skip


def config_for(upstream: FakeUpstream, dsn: str, tmp: Path) -> dict[str, Any]:
    return {
        "models": [{"name": "m", "deployments": [{"id": "m", "backend": "openai", "api_base": upstream.base("ok")}]}],
        "audit": {"postgres_dsn": dsn, "spool_path": str(tmp / "audit.spool")},
    }


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def audited(session_tmp: Path, upstream: FakeUpstream) -> Iterator[tuple[Gateway, Path, str]]:
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE SCHEMA {schema}")
    tmp = session_tmp / schema
    tmp.mkdir()
    config = config_for(upstream, f"{PG}/test?search_path={schema}", tmp)
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = Gateway(tmp, config)
    yield gw, path, schema
    gw.stop()


def test_requests_are_audited_without_their_content(audited: tuple[Gateway, Path, str]) -> None:
    gw, path, _ = audited
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": SECRET_PROMPT}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": SECRET_PROMPT}])
    wait_for(lambda: cli(path, "export").stdout.count("\n") >= 2)
    lines = [json.loads(line) for line in cli(path, "export").stdout.splitlines()]
    events = [line["event"] for line in lines]
    assert [(e["model"], e["status"], e["outcome"]) for e in events[-2:]] == [
        ("m", 200, "served"),
        ("_unknown", 404, "model_not_found"),
    ]
    assert SECRET_PROMPT not in json.dumps(lines)
    assert cli(path, "verify").returncode == 0


def test_the_database_refuses_to_change_history_and_verify_finds_an_edit(audited: tuple[Gateway, Path, str]) -> None:
    _, path, schema = audited
    for sql in (
        f"UPDATE {schema}.audit_log SET event = '{{}}'",
        f"DELETE FROM {schema}.audit_log",
        f"TRUNCATE {schema}.audit_log",
    ):
        out = psql(sql, check=False)
        assert out.returncode != 0 and "append-only" in out.stderr
    # Someone with the rights to switch the triggers off edits record 1: verify names it.
    psql(f"ALTER TABLE {schema}.audit_log DISABLE TRIGGER USER; "
         f"""UPDATE {schema}.audit_log SET event = replace(event, '"status":200', '"status":201') WHERE seq = 1; """
         f"ALTER TABLE {schema}.audit_log ENABLE TRIGGER USER")  # fmt: skip
    result = cli(path, "verify")
    assert result.returncode == 1 and "record 1 was edited" in result.stdout


def test_events_wait_for_a_database_that_is_not_there_yet(session_tmp: Path, upstream: FakeUpstream) -> None:
    db = f"audit_late_{uuid.uuid4().hex[:8]}"
    tmp = session_tmp / db
    tmp.mkdir()
    config = config_for(upstream, f"{PG}/{db}", tmp)
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = Gateway(tmp, config)
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        ids = []
        for _ in range(4):
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            ids.append(raw.headers["x-request-id"])  # served although the audit database is missing
        wait_for(lambda: (tmp / "audit.spool").exists())
        psql(f"CREATE DATABASE {db}")
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
        ids.append(raw.headers["x-request-id"])
        wait_for(lambda: not (tmp / "audit.spool").exists(), timeout=20)
        wait_for(lambda: cli(path, "export").stdout.count("\n") >= 5)
        exported = [json.loads(line)["event"]["request_id"] for line in cli(path, "export").stdout.splitlines()]
        assert exported == ids  # all of them, in order
        assert cli(path, "verify").returncode == 0
    finally:
        gw.stop()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", check=False)
