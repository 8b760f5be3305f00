"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a running
gateway with real Redis: a login exchanges a key for a session cookie the page's script cannot
read, live numbers move while traffic flows, a rollout aborted from the page stops the gateway
sending the candidate traffic (and is audited), a user key is refused and an auditor sees no key
admin, an action without the CSRF token is refused, and every page carries the CSP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, Traffic, chat, config, login, prepare
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import Gateway, RedisServer, http_get

pytestmark = pytest.mark.integration
playwright_api = pytest.importorskip("playwright.sync_api")
PREFIX = "test:dashboard:"


@pytest.fixture(scope="module")
def setup(session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/services.sh installs it)")
    tmp = session_tmp / "dashboard"
    tmp.mkdir()
    server = RedisServer()
    settings = config(upstream, server.url, tmp, PREFIX)
    _, keys = prepare(tmp, settings)
    gateway = Gateway(tmp, settings)
    try:
        yield {"gateway": gateway, "keys": keys, "redis": server.url, "tmp": tmp, "settings": settings}
    finally:
        gateway.stop()
        server.stop()


@pytest.fixture(scope="module")
def browser(setup: dict[str, Any]) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def number(text: str) -> float:
    return float(text.replace(",", "").replace("$", "").strip() or 0)


def test_login_gives_a_session_the_page_script_cannot_read(setup: dict[str, Any], browser: Any) -> None:
    gw, key = setup["gateway"], setup["keys"]["admin"]
    page = login(browser, gw.url, key)
    page.wait_for_selector("main[data-page=overview]")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "interlock_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] != key
    # Nothing the page's script can reach holds the key, or the session id.
    held = page.evaluate(
        "() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.documentElement.outerHTML]"
    )
    assert all(key not in h and cookie["value"] not in h for h in held)
    # The session is in Redis under the SHA-256 of its id, never under the id itself.
    client = redis.Redis.from_url(setup["redis"])
    names = [k.decode() for k in client.scan_iter(PREFIX + "ui:session:*")]
    client.close()
    assert names and all(cookie["value"] not in n for n in names)
    # Another replica on the same Redis knows the session; logging out ends it on both.
    other = Gateway(setup["tmp"], setup["settings"])
    try:
        session = [(b"cookie", f"interlock_session={cookie['value']}".encode())]
        assert get_with(other.url + "/ui/api/overview", session)[0] == 200
        page.click("#logout")
        page.wait_for_selector("#key")  # back at the login form
        assert get_with(other.url + "/ui/api/overview", session)[0] == 401
        assert get_with(gw.url + "/ui/api/overview", session)[0] == 401
    finally:
        other.stop()
    page.context.close()


def get_with(url: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={k.decode(): v.decode() for k, v in headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def test_live_numbers_move_while_traffic_flows(setup: dict[str, Any], browser: Any) -> None:
    gw, key = setup["gateway"], setup["keys"]["admin"]
    page = login(browser, gw.url, key)
    page.wait_for_selector("tr[data-model=chat]")
    requests_cell = "tr[data-model=chat] td:nth-child(11)"
    before = number(page.inner_text(requests_cell))
    traffic = Traffic(gw.url, setup["keys"]["user"])
    try:
        # The page polls by itself every 2 s: no reload here.
        page.wait_for_function(
            "([sel, n]) => Number(document.querySelector(sel).textContent.replace(/,/g, '')) > n + 20",
            arg=[requests_cell, before], timeout=20_000,
        )  # fmt: skip
        rate = number(page.inner_text("tr[data-model=chat] td:nth-child(6)"))
        assert rate > 0
        first = number(page.inner_text(requests_cell))
        page.wait_for_function(
            "([sel, n]) => Number(document.querySelector(sel).textContent.replace(/,/g, '')) > n",
            arg=[requests_cell, first], timeout=10_000,
        )  # fmt: skip
        # Repeated deterministic questions are answered by the exact cache; spend is counted.
        page.wait_for_function(
            "() => parseFloat(document.querySelector('tr[data-model=chat] td:nth-child(9)').textContent) > 0",
            timeout=10_000,
        )
        assert number(page.inner_text("tr[data-model=chat] td:nth-child(13)")) > 0
        assert page.inner_text("tr[data-deployment=chat-east] td:nth-child(4)") == "closed"
    finally:
        traffic.stop()
    page.context.close()


def test_no_request_text_on_any_page(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    chat(gw.url, {"model": "chat", "messages": [{"role": "user", "content": "secret-marker-4242 jane@example.com"}]},
         setup["keys"]["user"])  # fmt: skip
    page = login(browser, gw.url, setup["keys"]["admin"])
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    page.wait_for_selector("main[data-page=overview]")
    for name in ("overview", "rollouts", "drift", "keys", "audit", "limits"):
        page.goto(f"{gw.url}/ui#{name}")
        page.wait_for_selector(f"main[data-page={name}]")
        text = page.content()
        assert "secret-marker-4242" not in text and "jane@example.com" not in text
        assert page.query_selector("#failed") is None, name
    assert console == []  # no script error, no request the CSP refused (the pages need nothing it forbids)
    page.context.close()


def test_drift_and_audit_pages_show_their_data(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    for _ in range(30):
        chat(gw.url, {"model": "chat", "messages": [{"role": "user", "content": "Can you help me with my invoice?"}]},
             setup["keys"]["user"])  # fmt: skip
    page = login(browser, gw.url, setup["keys"]["admin"])
    page.wait_for_selector("main[data-page=overview]")
    page.goto(gw.url + "/ui#drift")
    page.wait_for_selector("[data-drift='chat/all'] svg rect[data-feature]", timeout=15_000)
    page.goto(gw.url + "/ui#audit")
    page.wait_for_selector("main[data-page=audit] tr[data-seq]")
    page.wait_for_function(
        "() => document.querySelector('#chain').textContent.includes('chain intact')", timeout=10_000
    )
    seqs = [int(s) for s in page.eval_on_selector_all("tr[data-seq]", "rows => rows.map(r => r.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) <= 50
    page.context.close()


def canary(i: int) -> dict[str, Any]:
    return {"model": "canary", "user": f"user-{i}", "messages": [{"role": "user", "content": "hi"}]}


def test_abort_from_the_page_stops_traffic_to_the_candidate(setup: dict[str, Any], browser: Any) -> None:
    gw, user = setup["gateway"], setup["keys"]["user"]
    seen = {chat(gw.url, canary(i), user)[1] for i in range(40)}
    assert seen == {"canary-v1", "canary-v2"}  # held at 50 %
    page = login(browser, gw.url, setup["keys"]["operator"])
    page.wait_for_selector("main[data-page=overview]")
    page.goto(gw.url + "/ui#rollouts")
    page.click("[data-rollout=canary] button[data-action=abort]")
    page.wait_for_selector("[data-result=canary].ok", timeout=10_000)
    assert "Aborted" in page.inner_text("[data-rollout=canary] h3")
    time.sleep(1.0)  # every replica reads the new state within a poll (0.25 s)
    after = [chat(gw.url, canary(i), user) for i in range(40)]
    assert {d for _, d in after} == {"canary-v1"} and {s for s, _ in after} == {200}
    # Audited as the API's action is, by the operator's key.
    page.goto(gw.url + "/ui#audit")
    page.context.close()
    status, body = admin_json(gw.url, "/ui/api/audit?limit=200", setup["keys"]["admin"])
    assert status == 200
    assert any(e.get("action") == "rollout.abort" and e.get("target") == "canary" for e in body["data"])


def admin_json(
    url: str, path: str, key: str | None, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + path, method=method, data=b"" if method == "POST" else None, headers=headers or {}
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"{}")


def test_a_user_key_is_refused(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    page = login(browser, gw.url, setup["keys"]["user"])
    page.wait_for_load_state()
    assert "no dashboard permission" in page.inner_text("#message")
    assert page.context.cookies() == []
    page.context.close()
    # Its bearer credential on the panels: refused as the API refuses it.
    assert admin_json(gw.url, "/ui/api/overview", setup["keys"]["user"])[0] == 403
    assert admin_json(gw.url, "/ui/api/overview", None)[0] == 401


def test_an_auditor_sees_no_key_admin(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    page = login(browser, gw.url, setup["keys"]["auditor"])
    page.wait_for_selector("main[data-page=overview]")
    assert page.query_selector("nav a[data-page=keys]") is None
    status = page.evaluate("() => fetch('/ui/api/keys').then(r => r.status)")
    assert status == 403
    page.goto(gw.url + "/ui#rollouts")
    page.wait_for_selector("main[data-page=rollouts]")
    assert page.query_selector("button[data-action]") is None  # no admin_rollouts: no buttons
    page.context.close()


def test_an_action_without_the_csrf_token_is_refused(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    page = login(browser, gw.url, setup["keys"]["admin"])
    page.wait_for_selector("main[data-page=overview]")
    script = """async (token) => {
        const headers = token === null ? {} : {'x-csrf-token': token};
        const r = await fetch('/ui/api/rollouts/canary/pause', {method: 'POST', headers});
        return [r.status, (await r.json()).error?.message || ''];
    }"""
    status, message = page.evaluate(script, None)
    assert status == 403 and "CSRF" in message
    assert page.evaluate(script, "forged-token")[0] == 403
    token = page.evaluate("() => fetch('/ui/api/session').then(r => r.json()).then(s => s.csrf)")
    assert page.evaluate(script, token)[0] in (200, 409)  # the action itself (the rollout may be over)
    # A create without the token creates nothing.
    before = page.evaluate("() => fetch('/ui/api/keys').then(r => r.json()).then(k => k.counts.total)")
    made = page.evaluate(
        "() => fetch('/ui/api/keys', {method: 'POST', body: JSON.stringify({name: 'x'})}).then(r => r.status)"
    )
    assert made == 403
    assert page.evaluate("() => fetch('/ui/api/keys').then(r => r.json()).then(k => k.counts.total)") == before
    page.context.close()


def test_keys_are_created_once_and_revoked_from_the_page(setup: dict[str, Any], browser: Any) -> None:
    gw = setup["gateway"]
    page = login(browser, gw.url, setup["keys"]["admin"])
    page.wait_for_selector("main[data-page=overview]")
    page.goto(gw.url + "/ui#keys")
    page.wait_for_selector("main[data-page=keys]")
    page.fill("input[name=name]", "made in the browser")
    page.click("form.inline button[type=submit]")
    new_key = page.inner_text("#new-key", timeout=10_000)
    assert new_key.startswith("ik_")
    assert chat(gw.url, {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, new_key)[0] == 200
    page.goto(gw.url + "/ui#audit")
    page.wait_for_selector("main[data-page=audit]")
    page.goto(gw.url + "/ui#keys")
    page.wait_for_selector("main[data-page=keys]")
    assert new_key not in page.content()  # shown once, then never again
    page.on("dialog", lambda d: d.accept())
    row = page.locator("tr", has_text="made in the browser")
    row.locator("button[data-revoke]").click()
    page.wait_for_selector("tr:has-text('made in the browser') .pill.bad", timeout=10_000)
    time.sleep(1.0)  # the key cache's TTL (0.5 s)
    assert chat(gw.url, {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, new_key)[0] == 401
    page.context.close()


def test_every_page_carries_the_security_headers(setup: dict[str, Any]) -> None:
    gw = setup["gateway"]
    for path in ("/ui", "/ui/static/app.js", "/ui/api/overview"):
        _, headers, _ = http_get(gw.url + path)
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    # A login posted from another site is refused before the key is even looked at.
    request = urllib.request.Request(
        gw.url + "/ui/login", data=f"key={setup['keys']['admin']}".encode(), method="POST",
        headers={"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as err:
        assert err.code == 403 and "set-cookie" not in {k.lower() for k in err.headers}
