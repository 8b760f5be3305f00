"""The gateway as the Helm chart runs it, short of a container: the chart rendered by Helm's engine
(scripts/deploy_check.py), its ConfigMap's config, its migration Job's command, then its gateway
container's command under bubblewrap with the root filesystem read-only and only the chart's
emptyDir mounts (/tmp, /var/lib/interlock) writable, HOME unwritable, against the machine's
PostgreSQL and a Redis of the test's own. The migration runs, the gateway becomes ready and
answers with an API key; the audit database is made unreachable, so its events wait in the spool
the chart places on the /var/lib/interlock emptyDir: nothing it needs writes elsewhere.

Not shown here: non-root. The interpreter lives under /root (mode 700) on this machine, so a
process with another uid could not start it; the image installs it under /usr/local instead."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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
from tests.support.procs import ROOT, RedisServer, free_port, wait_http

pytestmark = pytest.mark.integration
PG = "postgresql://postgres@127.0.0.1:5432"


def _deploy_check() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "scripts" / "deploy_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bwrap_works() -> bool:
    if shutil.which("bwrap") is None:
        return False
    done = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "true"], capture_output=True)
    return done.returncode == 0


needs_bwrap = pytest.mark.skipif(not _bwrap_works(), reason="bubblewrap (scripts/services.sh installs it) cannot run")


def psql(sql: str, db: str = "postgres") -> str:
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


class Pod:
    """The chart's mounts: / read-only; /tmp and /var/lib/interlock emptyDirs; the config read-only."""

    def __init__(self, tmp: Path, config_text: str, env: dict[str, str]) -> None:
        self.varlib = tmp / "varlib"
        (self.varlib / "interlock").mkdir(parents=True)
        (self.varlib / "config").mkdir()
        self.config = "/var/lib/config/config.yaml"  # the ConfigMap (at /etc/interlock in the pod)
        (self.varlib / "config" / "config.yaml").write_text(config_text)
        self.env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                    "PYTHONDONTWRITEBYTECODE": "1", **env}  # fmt: skip

    def command(self, args: list[str]) -> list[str]:
        return [
            "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--ro-bind", str(self.varlib), "/var/lib", "--bind", str(self.varlib / "interlock"), "/var/lib/interlock",
            "--unshare-pid", "--die-with-parent", "--chdir", "/var/lib/interlock", "--clearenv",
            *[a for k, v in self.env.items() for a in ("--setenv", k, v)],
            sys.executable, "-m", "interlock", *args,
        ]  # fmt: skip

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(args), capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"pod_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {name}")
    yield f"{PG}/{name}"
    psql(f"DROP DATABASE {name} WITH (FORCE)")


@needs_bwrap
def test_the_chart_s_gateway_runs_on_a_read_only_root(tmp_path: Path, upstream: FakeUpstream, database: str) -> None:
    check = _deploy_check()
    models = [{"name": "m", "deployments": [{"id": "fake", "backend": "openai", "api_base": upstream.base("ok")}]}]
    # The audit trail's database is one that is not there: its events must go to the spool.
    overrides = {"config": {"models": models, "audit": {"postgres_dsn": "os.environ/AUDIT_DSN"}}}
    rendered = list(check.documents(check.render(check.EXAMPLES / "external-cpu-hpa.yaml", overrides)))
    kinds = {(d["kind"], d["metadata"]["name"]): d for _, d in rendered}
    config_text = kinds[("ConfigMap", "interlock")]["data"]["config.yaml"]
    job_args = kinds[("Job", "interlock-migrate")]["spec"]["template"]["spec"]["containers"][0]["args"]
    gateway = kinds[("Deployment", "interlock")]["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/var/lib/interlock"}  # what the sandbox below leaves writable

    redis = RedisServer()
    port = free_port()
    secret = "k" * 40
    pod = Pod(tmp_path, config_text.replace("port: 4000", f"port: {port}"), {
        "INTERLOCK_SECRET": secret, "INTERLOCK_POSTGRES_DSN": database, "INTERLOCK_REDIS_URL": redis.url,
        "AUDIT_DSN": "postgresql://postgres@127.0.0.1:1/none",
    })  # fmt: skip
    spool = Path(yaml.safe_load(config_text)["audit"]["spool_path"])
    assert spool.parent == Path("/var/lib/interlock")
    try:
        migrated = pod.run(job_args)
        assert migrated.returncode == 0, migrated.stderr
        made = pod.run(["keys", "create", "--config", pod.config, "--name", "app"])
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["key"]
        serve_args = [a if a != "/etc/interlock/config.yaml" else pod.config for a in container["args"]]
        log = (tmp_path / "serve.log").open("wb")
        proc = subprocess.Popen(pod.command(serve_args), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, proc=proc)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
            on_host = pod.varlib / "interlock" / spool.name
            deadline = time.monotonic() + 15
            while not (on_host.exists() and on_host.stat().st_size > 0):
                assert time.monotonic() < deadline, "no audit event reached the spool"
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
        output = (tmp_path / "serve.log").read_text(errors="replace")
        assert "Read-only file system" not in output and "Traceback" not in output, output[-3000:]
    finally:
        redis.stop()
