"""Secrets by reference: environment, files, HashiCorp Vault (KV v2 with AppRole login) and Azure
Key Vault, read at start and refreshed while the gateway runs. Neither vault can run here: the
stand-ins speak their HTTP APIs (Key Vault's over TLS, with its token challenge), and the real
hvac and azure-keyvault-secrets clients talk to them."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from interlock import ConfigError, parse_settings
from tests.support.fake_upstream import AZURE_TOKEN, IDENTITY_HEADER, FakeUpstream
from tests.support.keyvault import FakeKeyVault
from tests.support.procs import Gateway

pytestmark = pytest.mark.integration


def test_env_and_file_references(tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    raw = {"models": [{"name": "m", "deployments": [
        {"id": "a", "backend": "openai", "api_base": "http://x/v1", "api_key": "env:A_KEY"},
        {"id": "b", "backend": "openai", "api_base": "http://x/v1", "api_key": f"file:{secret_file}"},
        {"id": "c", "backend": "openai", "api_base": "http://x/v1", "api_key": "os.environ/A_KEY"},
    ]}]}  # fmt: skip
    keys = [d.api_key for d in parse_settings(raw, environ={"A_KEY": "from-env"}).models[0].deployments]  # type: ignore[union-attr]
    assert keys == ["from-env", "from-a-file", "from-env"]
    raw["models"][0]["deployments"][1]["api_key"] = "file:/nonexistent/secret"  # type: ignore[index]
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, environ={"A_KEY": "from-env"})
    assert "$.models[0].deployments[1].api_key" in str(err.value) and "from-env" not in str(err.value)


def test_vault_secrets_are_read_at_start_and_rotated_while_running(session_tmp: Path, upstream: FakeUpstream) -> None:
    upstream.vault["secret/interlock/upstream"] = {"api_key": "upstream-key-v1"}
    secret_id = session_tmp / "approle-secret-id"
    secret_id.write_text(upstream.vault_approle[1])
    config = {
        "models": [{"name": "m", "deployments": [
            {"id": "m", "backend": "openai", "api_base": upstream.base("ok"), "api_key": "vault://secret/interlock/upstream#api_key"},
        ]}],
        "secrets": {
            "vault": {"url": f"http://127.0.0.1:{upstream.port}", "auth": "approle", "role_id": "env:TEST_ROLE_ID",
                      "secret_id": f"file:{secret_id}"},
            "refresh_s": 0.3,
        },
    }  # fmt: skip
    gw = Gateway(session_tmp, config, env={"TEST_ROLE_ID": upstream.vault_approle[0]})
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        upstream.reset()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert upstream.state.seen[-1].headers["Authorization"] == "Bearer upstream-key-v1"
        upstream.vault["secret/interlock/upstream"] = {"api_key": "upstream-key-v2"}  # rotated in Vault
        deadline = time.monotonic() + 10
        while True:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            if upstream.state.seen[-1].headers["Authorization"] == "Bearer upstream-key-v2":
                break
            assert time.monotonic() < deadline, "the new key was never used"
            time.sleep(0.2)
        log = gw.log()
        assert "upstream-key-v1" not in log and "upstream-key-v2" not in log
        assert "rotated the upstream credential of deployment m" in log
    finally:
        gw.stop()


def test_azure_key_vault_secrets_through_the_real_sdk(session_tmp: Path, upstream: FakeUpstream) -> None:
    kv = FakeKeyVault(session_tmp, AZURE_TOKEN)
    kv.secrets["upstream-key"] = "kv-key-v1"
    config = {
        "models": [{"name": "m", "deployments": [
            {"id": "m", "backend": "openai", "api_base": upstream.base("ok"), "api_key": "azure-keyvault://prod-vault/upstream-key"},
        ]}],
        "secrets": {"keyvault": {"url_template": f"https://127.0.0.1:{kv.port}", "verify_challenge_resource": False}, "refresh_s": 0.3},
    }  # fmt: skip
    env = {
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{upstream.port}/identity",  # managed identity, App Service style
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "REQUESTS_CA_BUNDLE": str(kv.cert),  # trust the stand-in's certificate
    }
    gw = Gateway(session_tmp, config, env=env)
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        upstream.reset()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert upstream.state.seen[-1].headers["Authorization"] == "Bearer kv-key-v1"
        kv.secrets["upstream-key"] = "kv-key-v2"
        deadline = time.monotonic() + 10
        while upstream.state.seen[-1].headers["Authorization"] != "Bearer kv-key-v2":
            assert time.monotonic() < deadline, "the rotated key was never used"
            time.sleep(0.2)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert "kv-key-v1" not in gw.log() and "kv-key-v2" not in gw.log()
    finally:
        gw.stop()
        kv.stop()
