"""`interlock migrate` against the machine's PostgreSQL: a fresh database gets the keys and audit
tables (with the audit trail's append-only triggers), a second run changes nothing and succeeds,
an unreachable server fails the command with status 1 after the wait, naming no DSN, and a
missing database fails it at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.integration
PG = "postgresql://postgres@127.0.0.1:5432"


def psql(sql: str, db: str = "postgres") -> str:
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def migrate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock", "migrate", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60)  # fmt: skip


@pytest.fixture
def database() -> Iterator[str]:
    name = f"migrate_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {name}")
    yield name
    psql(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_fresh_database_is_migrated_and_a_second_run_is_a_no_op(database: str) -> None:
    env = {"TEST_DSN": f"{PG}/{database}"}
    first = migrate("--dsn", "os.environ/TEST_DSN", "--wait", "5", env=env)
    assert first.returncode == 0, first.stderr
    tables = psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database)
    assert tables.split() == ["api_keys", "audit_log"]
    triggers = psql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1", database)
    assert triggers.split() == ["audit_log_no_change", "audit_log_no_truncate"]
    psql("INSERT INTO audit_log VALUES (1, 0, 'e', 'p', 'h')", database)
    second = migrate("--dsn", "os.environ/TEST_DSN", "--wait", "5", env=env)
    assert second.returncode == 0, second.stderr
    assert psql("SELECT count(*) FROM audit_log", database) == "1"  # nothing dropped or recreated
    assert psql("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal", database) == "2"


def test_an_unreachable_database_fails_after_the_wait_without_naming_the_dsn() -> None:
    done = migrate("--dsn", "postgresql://someone:hunter2@127.0.0.1:1/x", "--wait", "2")
    assert done.returncode == 1
    assert "within 2 s" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_missing_database_fails_at_once() -> None:
    done = migrate("--dsn", f"{PG}/no_such_db_{uuid.uuid4().hex[:6]}", "--wait", "30")
    assert done.returncode == 1 and "InvalidCatalogNameError" in done.stderr
