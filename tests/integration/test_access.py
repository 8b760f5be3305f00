"""API keys and OIDC tokens in front of the gateway: the bootstrap admin key from the CLI, keys
made through the admin API, roles, model restrictions, revocation seen by two replicas, and
Entra-style bearer tokens verified against a JWKS served over HTTP. The key store runs on SQLite
and on the real PostgreSQL of this machine."""

from __future__ import annotations

import json
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
from tests.support.procs import ROOT, Gateway, free_port
from tests.support.procs import json_request as request
from tests.support.tokens import Issuer

pytestmark = pytest.mark.integration
SECRET = "test-server-secret-0123456789"
PG = "postgresql://postgres@127.0.0.1:5432/test"


def chat(gw: Gateway, key: str, model: str = "m") -> int:
    status, _ = request(
        gw,
        "POST",
        "/v1/chat/completions",
        key,
        {"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
    return status


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def keyed(request: pytest.FixtureRequest, session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    tmp = session_tmp / f"access-{request.param}"
    tmp.mkdir()
    if request.param == "postgres":
        schema = f"t_{uuid.uuid4().hex[:10]}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"CREATE SCHEMA {schema}"],
            check=True,
        )
        keys: dict[str, Any] = {"postgres_dsn": f"{PG}?search_path={schema}"}
    else:
        keys = {"sqlite_path": "keys.db"}  # relative: beside the config file
    config = {
        "models": [
            {"name": n, "deployments": [{"id": n, "backend": "openai", "api_base": upstream.base("ok")}]}
            for n in ("m", "other")
        ],
        "security": {"server_secret": "os.environ/TEST_SECRET", "keys": keys, "key_cache_ttl": 0.5},
    }
    config_path = tmp / "interlock.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {"TEST_SECRET": SECRET}
    boot = subprocess.run(
        [sys.executable, "-m", "interlock", "keys", "create", "--config", str(config_path), "--name", "bootstrap", "--role", "admin"],
        capture_output=True, text=True, env={**__import__("os").environ, **env}, cwd=ROOT, check=True,
    )  # fmt: skip
    admin_key = json.loads(boot.stdout)["key"]
    assert "Store the key now" in boot.stderr
    a = Gateway(tmp, config, env=env)
    b = Gateway(tmp, config, env=env)
    yield {"a": a, "b": b, "admin": admin_key, "tmp": tmp, "kind": request.param}
    a.stop()
    b.stop()


def test_callers_need_a_valid_key(keyed: dict[str, Any]) -> None:
    a = keyed["a"]
    assert chat(a, "") == 401
    assert chat(a, "ik_" + "x" * 43) == 401
    assert chat(a, keyed["admin"]) == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=a.url + "/v1", api_key="ik_wrong_" + "y" * 40, max_retries=0).models.list()
    assert request(a, "GET", "/healthz", None)[0] == 200  # probes stay open


def test_admin_api_makes_keys_with_roles_and_model_limits(keyed: dict[str, Any]) -> None:
    a = keyed["a"]
    status, made = request(a, "POST", "/admin/keys", keyed["admin"], {"name": "svc", "tenant": "acme", "models": ["m"]})
    assert status == 201 and made["key"].startswith("ik_") and made["roles"] == ["user"]
    user = made["key"]
    client = openai.OpenAI(base_url=a.url + "/v1", api_key=user, max_retries=0)
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
    assert [m.id for m in client.models.list()] == ["m"]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "hi"}])
    assert request(a, "GET", "/metrics", user)[0] == 403
    assert request(a, "POST", "/admin/keys", user, {"name": "escalate", "roles": ["admin"]})[0] == 403
    assert request(a, "GET", "/metrics", keyed["admin"])[0] == 200
    listed = request(a, "GET", "/admin/keys", keyed["admin"])[1]["data"]
    assert {k["name"] for k in listed} >= {"bootstrap", "svc"}
    assert all("key" not in k and "hash" not in k for k in listed)  # neither the key nor its hash
    assert request(a, "POST", "/admin/keys", keyed["admin"], {"name": "x", "roles": ["root"]})[0] == 400


def test_a_keys_max_tokens_cap_is_applied(keyed: dict[str, Any], upstream: FakeUpstream) -> None:
    a = keyed["a"]
    _, made = request(a, "POST", "/admin/keys", keyed["admin"], {"name": "capped", "max_tokens": 50})
    assert made["max_tokens"] == 50
    client = openai.OpenAI(base_url=a.url + "/v1", api_key=made["key"], max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=100)
    assert err.value.param == "max_tokens"
    upstream.reset()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert upstream.state.bodies("ok")[-1]["max_tokens"] == 50  # a request naming none gets the cap


def test_a_key_revoked_on_one_replica_stops_working_on_the_other(keyed: dict[str, Any]) -> None:
    a, b = keyed["a"], keyed["b"]
    _, made = request(a, "POST", "/admin/keys", keyed["admin"], {"name": "temp"})
    assert chat(b, made["key"]) == 200  # b caches it now
    assert request(a, "DELETE", f"/admin/keys/{made['id']}", keyed["admin"]) == (
        200,
        {"id": made["id"], "revoked": True},
    )
    time.sleep(0.6)  # key_cache_ttl is 0.5 s
    assert chat(b, made["key"]) == 401
    assert request(a, "DELETE", f"/admin/keys/{made['id']}", keyed["admin"])[0] == 404


def test_keys_never_reach_the_logs(keyed: dict[str, Any]) -> None:
    log = keyed["a"].log() + keyed["b"].log()
    assert keyed["admin"] not in log and SECRET not in log


def test_serving_beyond_loopback_without_auth_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "interlock", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "without authentication" in out.stderr


@pytest.fixture(scope="module")
def oidc_gateway(session_tmp: Path, upstream: FakeUpstream) -> Iterator[tuple[Gateway, Issuer]]:
    issuer = Issuer(upstream.issuer(), "api://interlock")
    upstream.jwks = issuer.jwks()
    config = {
        "models": [{"name": "m", "deployments": [{"id": "m", "backend": "openai", "api_base": upstream.base("ok")}]}],
        "security": {
            "oidc": {
                "issuer": upstream.issuer(),
                "audience": "api://interlock",
                "role_map": {"Interlock.User": "user", "Interlock.Admin": "admin"},
                "jwks_min_refresh_s": 0.5,
            },
        },
    }
    gw = Gateway(session_tmp, config)
    yield gw, issuer
    gw.stop()


def test_entra_style_tokens_are_verified_and_their_roles_mapped(
    oidc_gateway: tuple[Gateway, Issuer], upstream: FakeUpstream
) -> None:
    gw, issuer = oidc_gateway
    user = openai.OpenAI(
        base_url=gw.url + "/v1", api_key=issuer.token(roles=["Interlock.User"], tid="tenant-1"), max_retries=0
    )
    assert user.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
    assert request(gw, "GET", "/metrics", issuer.token(roles=["Interlock.User"]))[0] == 403
    assert request(gw, "GET", "/metrics", issuer.token(roles=["Interlock.Admin"]))[0] == 200
    assert request(gw, "GET", "/v1/models", issuer.token(roles=["Interlock.User"], aud="api://other"))[0] == 401
    assert request(gw, "GET", "/v1/models", issuer.token(roles=["Interlock.User"], lifetime=-600))[0] == 401
    assert request(gw, "GET", "/v1/models", issuer.token(roles=[]))[0] == 403  # valid, but no role
    # Key rotation: a token signed with a new key is accepted after one refetch of the JWKS.
    fetches = upstream.state.calls["oidc-jwks"]
    issuer.rotate()
    upstream.jwks = issuer.jwks()
    time.sleep(0.6)  # past jwks_min_refresh_s since the first fetch
    assert request(gw, "GET", "/v1/models", issuer.token(roles=["Interlock.User"]))[0] == 200
    assert upstream.state.calls["oidc-jwks"] - fetches == 1
    # Tokens naming keys the issuer never published are refused without a fetch storm.
    forged = Issuer(upstream.issuer(), "api://interlock")
    for _ in range(5):
        assert request(gw, "GET", "/v1/models", forged.token(roles=["Interlock.Admin"]))[0] == 401
    assert upstream.state.calls["oidc-jwks"] - fetches <= 2
