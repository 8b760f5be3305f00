"""The dashboard's edge: the panel data functions, and login, sessions, CSRF and headers through
the real ASGI app (the browser tests run the same in Chromium: tests/integration/test_dashboard.py)."""

from __future__ import annotations

import orjson
import pytest

from interlock.edge.ui import (
    audit_rows,
    key_cursor,
    keys_panel,
    limit_counters,
    limit_rows,
    parse_key_cursor,
)
from interlock.errors import BadRequest
from interlock.security.audit import Record
from interlock.security.keys import KeyRecord
from interlock.security.limit_stage import Rate
from tests.unit.edge.test_asgi import Running, gateway  # noqa: F401  (the gateway fixture)


def key(i: int, revoked: bool = False) -> KeyRecord:
    return KeyRecord(
        id=f"key_{i:04d}", hash=f"h{i}", name=f"k{i}", tenant="t", roles=("user",), models=(), max_class="internal",
        rpm=None, tpm=None, budget=None, max_tokens=None, created_at=1000.0 + i, expires_at=None,
        revoked_at=5.0 if revoked else None,
    )  # fmt: skip


def test_a_keys_page_says_whether_there_is_a_next_one_and_never_shows_a_hash() -> None:
    records = [key(i, revoked=i == 1) for i in range(4)]  # limit 3: one more was read
    panel = keys_panel(records, 3, {"total": 9}, now=2000.0)
    assert [r["id"] for r in panel["data"]] == ["key_0000", "key_0001", "key_0002"]
    assert [r["state"] for r in panel["data"]] == ["active", "revoked", "active"]
    assert panel["next"] == key_cursor(records[2]) and parse_key_cursor(panel["next"]) == (1002.0, "key_0002")
    assert all("hash" not in r for r in panel["data"])
    assert keys_panel(records[:2], 3, {}, 2000.0)["next"] is None
    with pytest.raises(BadRequest):
        parse_key_cursor("not-a-cursor")


def test_audit_rows_show_only_the_whitelisted_fields() -> None:
    event = {"kind": "request", "subject": "key_1", "status": 200, "model": "m", "text": "a prompt", "messages": [1]}
    (row,) = audit_rows([Record(7, 1.5, orjson.dumps(event).decode(), "p" * 64, "abcdef" * 10 + "abcd")])
    assert row == {"seq": 7, "ts": 1.5, "hash": "abcdefabcdef", "kind": "request", "subject": "key_1", "status": 200,
                   "model": "m"}  # fmt: skip


def test_limits_read_each_scope_in_its_window() -> None:
    scoped = [("tenant", "acme", Rate(rpm=10, budget=5.0)), ("key", "key_1", Rate(tpm=1000))]
    counters = limit_counters(scoped, now=120.5, period="day")
    assert counters[:3] == [("tenant:acme:rpm", 2), ("tenant:acme:tpm", 2), ("tenant:acme:spend", 0)]
    rows = limit_rows(scoped, [4, 0, 2_500_000, 0, 300, 0], "day")
    assert rows[0]["rpm"] == {"used": 4, "limit": 10} and rows[0]["tpm"] is None
    assert rows[0]["budget"] == {"used": 2.5, "limit": 5.0, "period": "day"}
    assert rows[1]["tpm"] == {"used": 300, "limit": 1000} and rows[1]["rpm"] is None
    assert limit_rows(scoped, None, "day")[0]["rpm"] == {"used": None, "limit": 10}  # the store is down


def cookie_of(answer: object) -> str:
    raw = answer.headers[b"set-cookie"].decode()  # type: ignore[attr-defined]
    return raw.split(";")[0]


async def test_a_login_gives_a_locked_down_cookie_and_actions_need_the_csrf_token(gateway: Running) -> None:  # noqa: F811
    app = gateway
    host = [(b"host", b"gw.test")]
    refused = await app.call("POST", "/ui/login", f"key={app.keys['user']}".encode(), headers=host)
    assert refused.status == 403 and b"no dashboard permission" in refused.body and b"set-cookie" not in refused.headers
    cross = await app.call("POST", "/ui/login", f"key={app.keys['admin']}".encode(),
                           headers=[*host, (b"origin", b"https://elsewhere.test")])  # fmt: skip
    assert cross.status == 403 and b"set-cookie" not in cross.headers
    assert (await app.call("POST", "/ui/login", b"key=ik_wrong", headers=host)).status == 401
    ok = await app.call("POST", "/ui/login", f"key={app.keys['operator']}".encode(), headers=host)
    assert ok.status == 303 and ok.headers[b"location"] == b"/ui"
    flags = ok.headers[b"set-cookie"].decode().split("; ")
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui"} <= set(flags) and "Secure" not in flags
    cookie = [(b"cookie", cookie_of(ok).encode()), *host]
    session = orjson.loads((await app.call("GET", "/ui/api/session", headers=cookie)).body)
    assert session["roles"] == ["operator"] and app.keys["operator"] not in str(session)
    overview = await app.call("GET", "/ui/api/overview", headers=cookie)
    assert overview.status == 200 and b"content-security-policy" in overview.headers
    assert (await app.call("GET", "/ui/api/keys", headers=cookie)).status == 403  # operator: no admin_keys
    # An action: refused without the token, with a wrong one, or from another origin.
    action = "/ui/api/rollouts/m/pause"
    assert (await app.call("POST", action, headers=cookie)).status == 403
    assert (await app.call("POST", action, headers=[*cookie, (b"x-csrf-token", b"wrong")])).status == 403
    token = (b"x-csrf-token", session["csrf"].encode())
    assert (
        await app.call("POST", action, headers=[*cookie, token, (b"origin", b"https://elsewhere.test")])
    ).status == 403
    reached = await app.call("POST", action, headers=[*cookie, token])
    assert reached.status == 400 and b"Rollouts are not enabled" in reached.body  # past the checks: the handler
    # Logout ends the session everywhere it is looked up.
    assert (await app.call("POST", "/ui/logout", headers=[*cookie, token])).status == 200
    assert (await app.call("GET", "/ui/api/overview", headers=cookie)).status == 401


async def test_pages_and_assets_carry_the_security_headers(gateway: Running) -> None:  # noqa: F811
    page = await gateway.call("GET", "/ui")
    assert page.status == 200 and b'name="key"' in page.body  # the login form, without a session
    csp = page.headers[b"content-security-policy"].decode()
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers[b"x-frame-options"] == b"DENY" and page.headers[b"cache-control"] == b"no-store"
    script = await gateway.call("GET", "/ui/static/app.js")
    assert script.status == 200 and script.headers[b"content-type"].startswith(b"text/javascript")
    again = await gateway.call("GET", "/ui/static/app.js", headers=[(b"if-none-match", script.headers[b"etag"])])
    assert again.status == 304 and again.body == b""
    assert b"<script>" not in page.body and b"innerHTML" not in script.body  # no inline script, no HTML injection
    assert (await gateway.call("GET", "/ui/static/missing.js")).status == 404
