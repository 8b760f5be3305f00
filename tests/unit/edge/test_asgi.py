"""The gateway as an ASGI app, in process: the route table and the permission each route needs,
405 for a known path with another method and 404 for an unknown one (both before any credential
is looked at), and the routes with parameters (the Azure deployment, a model, a key, a rollout
action), answered with OpenAI-shaped error bodies. The gateway is the one `build` makes, with API
keys in SQLite and one deployment at a port nothing listens on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from interlock.app import build
from interlock.config import parse_settings
from interlock.edge import Gateway
from interlock.edge.http import Message
from interlock.edge.rollouts import ACTIONS
from interlock.observe.metrics import Metrics
from interlock.security.keyadmin import NewKey, create_key
from interlock.security.keystore import SQLiteKeyStore
from interlock.security.roles import DEFAULT_ROLES, Permission
from tests.support.keystore import SECRET
from tests.support.receiver import closed_port

INVOKE, READ_METRICS = Permission.INVOKE, Permission.READ_METRICS
ADMIN_KEYS, ADMIN_ROLLOUTS = Permission.ADMIN_KEYS, Permission.ADMIN_ROLLOUTS
ROUTES = [
    *(("POST", prefix + endpoint, INVOKE) for endpoint in ("chat/completions", "completions", "embeddings")
      for prefix in ("/v1/", "/", "/openai/deployments/d/")),
    ("GET", "/v1/models", INVOKE), ("GET", "/models", INVOKE), ("GET", "/v1/models/m", INVOKE),
    ("GET", "/models/m", INVOKE),
    ("GET", "/healthz", None), ("GET", "/readyz", None),
    ("GET", "/metrics", READ_METRICS), ("GET", "/admin/drift", READ_METRICS),
    ("POST", "/admin/keys", ADMIN_KEYS), ("GET", "/admin/keys", ADMIN_KEYS), ("DELETE", "/admin/keys/k_1-a", ADMIN_KEYS),
    ("POST", "/admin/rollouts", ADMIN_ROLLOUTS), ("GET", "/admin/rollouts/m", ADMIN_ROLLOUTS),
    ("DELETE", "/admin/cache/semantic/m", Permission.ADMIN_CONFIG),
    *(("POST", f"/admin/rollouts/m/{action}", ADMIN_ROLLOUTS) for action in ACTIONS),
    # The dashboard: pages and login check the session themselves; panels and actions as the API.
    ("GET", "/ui", None), ("GET", "/ui/", None), ("POST", "/ui/login", None), ("POST", "/ui/logout", None),
    ("GET", "/ui/static/app.js", None), ("GET", "/ui/static/app.css", None), ("GET", "/ui/api/session", None),
    ("GET", "/ui/api/overview", READ_METRICS), ("GET", "/ui/api/rollouts", READ_METRICS),
    ("GET", "/ui/api/drift", READ_METRICS), ("GET", "/ui/api/limits", READ_METRICS),
    ("GET", "/ui/api/audit", Permission.READ_AUDIT), ("GET", "/ui/api/keys", ADMIN_KEYS),
    ("POST", "/ui/api/keys", ADMIN_KEYS), ("POST", "/ui/api/keys/k_1-a/revoke", ADMIN_KEYS),
    *(("POST", f"/ui/api/rollouts/m/{action}", ADMIN_ROLLOUTS) for action in ACTIONS),
]  # fmt: skip
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The OpenAI error object, checked for its shape."""
        data = orjson.loads(self.body)
        assert list(data) == ["error"] and set(data["error"]) == {"message", "type", "param", "code"}
        assert self.headers[b"content-type"] == b"application/json"
        error: dict[str, Any] = data["error"]
        return error


@dataclass
class Running:
    app: Gateway
    metrics: Metrics
    keys: dict[str, str]  # role -> API key
    ids: dict[str, str]  # role -> key id

    async def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        role: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> Answer:
        sent: list[Message] = []
        arrived = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Message:
            if arrived:
                return arrived.pop(0)
            await asyncio.Event().wait()  # the client stays: a disconnect watch waits until it is cancelled
            raise AssertionError("not reached")

        async def send(message: Message) -> None:
            sent.append(message)

        sent_headers = [*headers, (b"content-length", str(len(body)).encode())]
        if role is not None:
            sent_headers.append((b"authorization", f"Bearer {self.keys[role]}".encode()))
        scope = {"type": "http", "method": method, "path": path, "headers": sent_headers, "query_string": b""}
        await self.app(scope, receive, send)
        start, *rest = sent
        assert start["type"] == "http.response.start"
        return Answer(start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in rest))


ROLES = ("user", "auditor", "operator", "admin")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    path = tmp_path / "keys.db"
    store = SQLiteKeyStore(path)
    await store.start()
    keys, ids = {}, {}
    for role in ROLES:
        keys[role], record = await create_key(store, SECRET, NewKey(name=role, roles=[role]), DEFAULT_ROLES)
        ids[role] = record.id
    await store.close()
    settings = parse_settings(
        {
            "models": [{"name": "m", "deployments": [
                {"id": "d", "backend": "openai", "api_base": f"http://127.0.0.1:{closed_port()}/v1"}]}],
            "router": {"retries": 0},
            "security": {"server_secret": SECRET.decode(), "keys": {"sqlite_path": str(path)}},
            # start-up tunes the collector: leave the test process's as it is
            "server": {"gc_freeze": False, "gc_gen0_threshold": gc.get_threshold()[0]},
        }
    )  # fmt: skip
    metrics = Metrics()
    app = build(settings, metrics)
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    answers: asyncio.Queue[Message] = asyncio.Queue()
    running = asyncio.ensure_future(app({"type": "lifespan"}, lifespan.get, answers.put))
    await lifespan.put({"type": "lifespan.startup"})
    assert (await answers.get())["type"] == "lifespan.startup.complete"
    yield Running(app, metrics, keys, ids)
    await lifespan.put({"type": "lifespan.shutdown"})
    assert (await answers.get())["type"] == "lifespan.shutdown.complete"
    await running


async def test_every_route_names_the_permission_it_needs(gateway: Running) -> None:
    app = gateway.app
    assert {(method, path): app._resolve(method, path)[1] for method, path, _ in ROUTES} == {
        (method, path): permission for method, path, permission in ROUTES
    }
    assert set(app._routes) <= {(method, path) for method, path, _ in ROUTES}  # a new route needs a row above


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/chat/completions", "Method GET is not allowed on /v1/chat/completions"),
        ("DELETE", "/healthz", "Method DELETE is not allowed on /healthz"),
        ("POST", "/metrics", "Method POST is not allowed on /metrics"),
        ("PUT", "/admin/keys", "Method PUT is not allowed on /admin/keys"),
        ("GET", "/openai/deployments/d/chat/completions", "Method GET is not allowed on this path"),
        ("POST", "/admin/rollouts/m", "Method POST is not allowed on /admin/rollouts/m"),
        ("GET", "/admin/rollouts/m/pause", "Method GET is not allowed on /admin/rollouts/m/pause"),
        ("POST", "/v1/models/m", "Method POST is not allowed on this path"),
        ("GET", "/admin/keys/key_1", "Method GET is not allowed on this path"),
        ("GET", "/admin/cache/semantic/m", "Method GET is not allowed on this path"),
    ],
)
async def test_a_known_path_with_another_method_is_405_before_credentials(
    gateway: Running, method: str, path: str, message: str
) -> None:
    answer = await gateway.call(method, path)  # no credentials: the route is resolved first
    assert answer.status == 405
    assert answer.error() == {
        "message": message, "type": "invalid_request_error", "param": None, "code": "method_not_allowed"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models"),
        ("POST", "/v1/chat"),
        ("GET", "/v1/models/m/extra"),
        ("POST", "/openai/deployments/d/images/generations"),
        ("DELETE", "/admin/keys/not a key id"),
        ("POST", "/admin/rollouts/m/explode"),  # not an action
        ("GET", "/admin/rollouts/m/explode"),
        ("GET", "/"),
    ],
)
async def test_an_unknown_path_is_404_before_credentials(gateway: Running, method: str, path: str) -> None:
    answer = await gateway.call(method, path, headers=[(b"x-request-id", b"caller-7")])
    assert answer.status == 404
    assert answer.error() == {
        "message": f"Unknown path {path}", "type": "invalid_request_error", "param": None, "code": "not_found"
    }  # fmt: skip
    assert answer.headers[b"x-request-id"] == b"caller-7"  # a caller's safe id is echoed
    labels = {"model": "_unknown", "deployment": "_none", "version": "_none", "class": "client"}
    assert gateway.metrics.registry.get_sample_value("interlock_errors_total", labels) == 1


async def test_each_route_admits_only_the_identities_with_its_permission(gateway: Running) -> None:
    call = gateway.call
    health = await call("GET", "/healthz")  # open: for probes
    assert (health.status, health.body) == (200, b'{"status":"ok"}')
    anonymous = await call("GET", "/v1/models")
    assert anonymous.status == 401 and anonymous.error()["code"] == "invalid_api_key"
    refused = [
        ("user", "GET", "/metrics", "read_metrics"),
        ("user", "GET", "/admin/drift", "read_metrics"),
        ("user", "GET", "/admin/keys", "admin_keys"),
        ("user", "POST", "/admin/rollouts/m/abort", "admin_rollouts"),
        ("auditor", "POST", "/v1/chat/completions", "invoke"),
        ("auditor", "GET", "/v1/models/m", "invoke"),
        ("operator", "DELETE", f"/admin/keys/{gateway.ids['user']}", "admin_keys"),
        ("operator", "DELETE", "/admin/cache/semantic/m", "admin_config"),
    ]
    for role, method, path, permission in refused:
        answer = await call(method, path, CHAT if method == "POST" else b"", role)
        assert answer.status == 403, (role, method, path)
        assert answer.error() == {
            "message": f"This identity lacks the `{permission}` permission", "type": "permission_denied",
            "param": None, "code": "forbidden",
        }  # fmt: skip
    models = await call("GET", "/v1/models", role="user")
    assert models.status == 200 and [m["id"] for m in orjson.loads(models.body)["data"]] == ["m"]
    metrics = await call("GET", "/metrics", role="auditor")
    assert metrics.status == 200 and b"interlock_errors_total" in metrics.body
    listed = await call("GET", "/admin/keys", role="admin")
    assert listed.status == 200 and len(orjson.loads(listed.body)["data"]) == len(ROLES)


async def test_the_azure_path_names_the_model_by_its_deployment(gateway: Running) -> None:
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})  # no model: the path names it
    unknown = await gateway.call("POST", "/openai/deployments/nope/chat/completions", body, "user")
    assert unknown.status == 404
    assert unknown.error() == {
        "message": "The model `nope` does not exist", "type": "invalid_request_error", "param": "model",
        "code": "model_not_found",
    }  # fmt: skip
    # The group `m` exists: the request goes on to its deployment, which nothing answers.
    known = await gateway.call("POST", "/openai/deployments/m/embeddings", b'{"input":"hi"}', "user")
    assert known.status == 502 and known.error()["message"].startswith("deployment d is unreachable")


async def test_a_model_is_read_by_name(gateway: Running) -> None:
    for path in ("/v1/models/m", "/models/m"):
        answer = await gateway.call("GET", path, role="user")
        assert answer.status == 200
        model = orjson.loads(answer.body)
        assert model.pop("created") > 0 and model == {"id": "m", "object": "model", "owned_by": "interlock"}
    missing = await gateway.call("GET", "/v1/models/other", role="user")
    assert missing.status == 404 and missing.error()["code"] == "model_not_found"


async def test_a_key_is_revoked_by_its_id(gateway: Running) -> None:
    user = gateway.ids["user"]
    revoked = await gateway.call("DELETE", f"/admin/keys/{user}", role="admin")
    assert (revoked.status, orjson.loads(revoked.body)) == (200, {"id": user, "revoked": True})
    again = await gateway.call("DELETE", f"/admin/keys/{user}", role="admin")
    assert again.status == 404 and again.error()["message"] == f"No active key with id {user}"
    listed = orjson.loads((await gateway.call("GET", "/admin/keys", role="admin")).body)["data"]
    assert [k["id"] for k in listed if k["revoked_at"] is not None] == [user]


async def test_every_rollout_action_reaches_the_rollout_handlers(gateway: Running) -> None:
    # No rollouts are configured: the handlers answer 400, which shows the route found them.
    for method, path in [("GET", "/admin/rollouts/m"), *(("POST", f"/admin/rollouts/m/{a}") for a in ACTIONS)]:
        answer = await gateway.call(method, path, role="operator")
        assert answer.status == 400, path
        assert answer.error()["message"].startswith("Rollouts are not enabled")
