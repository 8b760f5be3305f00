"""The web dashboard at /ui: pages, login, and the JSON panels the pages read.

    GET  /ui                          the dashboard (or the login form, without a session)
    GET  /ui/static/{file}            its script and style sheet (files in interlock/ui/static)
    POST /ui/login                    form field `key`: an API key or an OIDC token -> a session
    POST /ui/logout                   ends the session (CSRF token required)
    GET  /ui/api/session              who is logged in, their permissions, the CSRF token
    GET  /ui/api/{panel}              overview, rollouts, drift, keys, audit, limits: one request each
    POST /ui/api/rollouts/{m}/{act}   pause | resume | promote | abort: the admin API's action
    POST /ui/api/keys                 create a key (shown once); POST /ui/api/keys/{id}/revoke

The panels need the API's permissions: `read_metrics` (overview, rollouts, drift, limits),
`read_audit` (audit), `admin_keys` (keys); actions `admin_rollouts` or `admin_keys`, and are
audited as the API's are (they are the same handlers). /ui/api also takes the API's bearer
credentials (a key or an OIDC token in `Authorization`), which a browser never sends on its own,
so they need no CSRF token. A login needs a credential with at least one dashboard permission.

Every /ui answer carries a strict Content-Security-Policy (scripts, styles and connections only
from the gateway itself, no inline script, no framing), `X-Frame-Options: DENY`, `nosniff`,
`Referrer-Policy: same-origin` (with `no-referrer` a browser sends `Origin: null`, which the login
refuses) and, except for the static files, `Cache-Control: no-store`.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import msgspec
import orjson

from ..errors import BadRequest, Forbidden, InterlockError, Unauthorized
from ..observe.dashboard import Traffic, overview
from ..rollout.driver import STORE_ERRORS, RolloutDriver
from ..routing import GroupRuntime
from ..security.audit import AuditLog, AuditStore, ChainCheck, Record
from ..security.auth import Authenticator
from ..security.keys import KeyRecord
from ..security.keystore import KeyStore
from ..security.limit_stage import MICRO, Rate, counter_name
from ..security.limits import WINDOW, Limiter, budget_period
from ..security.roles import Identity, Permission
from ..security.sessions import Session, Sessions, csrf_ok
from .admin import AdminHandlers, record_admin
from .exchange import Exchange
from .http import Message, Send, encode_headers, send_bytes
from .info import InfoHandlers
from .pages import page_size, query_params

COOKIE = "interlock_session"
MAX_LOGIN_BODY = 16 * 1024
PAGE = 50  # rows per page of keys, audit events and key limits
MAX_PAGE = 500
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")
HTML = b"text/html; charset=utf-8"
DASHBOARD_PERMISSIONS = (
    Permission.READ_METRICS, Permission.READ_AUDIT, Permission.ADMIN_KEYS, Permission.ADMIN_ROLLOUTS,
)  # fmt: skip
# The audit fields a page shows: who, what, where and how it ended (events never hold text).
AUDIT_FIELDS = (
    "kind", "action", "target", "subject", "auth", "tenant", "endpoint", "model", "deployment", "version",
    "data_class", "findings", "cache", "status", "outcome", "latency_ms", "request_id",
)  # fmt: skip
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml"}
LOGIN_MESSAGES = {
    "": "",
    "invalid": "That key or token was not accepted.",
    "forbidden": "This key has no dashboard permission (read_metrics, read_audit, admin_keys or admin_rollouts).",
    "origin": "The login form must be sent from this gateway's own page.",
    "unavailable": "The session store cannot be reached; try again shortly.",
}


def secured(send: Send, cache: bool = False) -> Send:
    """`send`, adding the dashboard's security headers to the response start."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = SECURITY_HEADERS if cache else [*SECURITY_HEADERS, NO_STORE]
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped


def session_cookie(ex: Exchange) -> str | None:
    raw = ex.headers.get(b"cookie")
    if not raw:
        return None
    for part in raw.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def same_origin(ex: Exchange) -> bool:
    """A request a browser sent from another site carries that site's Origin: refused. (SameSite
    cookies already keep them out; this is the second lock.)"""
    origin = ex.headers.get(b"origin")
    if origin is None:
        return True
    host = ex.headers.get(b"host", b"").decode("latin-1")
    return urllib.parse.urlsplit(origin.decode("latin-1")).netloc == host


def paging(ex: Exchange) -> tuple[dict[str, str], int]:
    """The query's parameters (blank ones left out) and the page size it asks for (`limit`,
    default PAGE), parsed as the API's pages are (pages.py)."""
    params = {k: v for k, v in query_params(ex).items() if v}
    return params, page_size(params, PAGE, MAX_PAGE)


# -- panel data: pure functions over what the stores return ---------------------------------------------
def key_cursor(record: KeyRecord) -> str:
    return f"{record.created_at!r}:{record.id}"


def parse_key_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    created, _, key_id = cursor.partition(":")
    try:
        return float(created), key_id
    except ValueError:
        raise BadRequest("`after` is not a cursor this page gave", param="after") from None


def keys_panel(records: Sequence[KeyRecord], limit: int, counts: Mapping[str, int], now: float) -> dict[str, Any]:
    """A page of keys (one more than `limit` was read, to know whether a next page exists)."""
    rows = []
    for r in records[:limit]:
        state = "revoked" if r.revoked_at is not None else "expired" if not r.usable(now) else "active"
        rows.append({**r.public(), "state": state})
    more = len(records) > limit
    return {"data": rows, "counts": dict(counts), "next": key_cursor(records[limit - 1]) if more else None}


def audit_rows(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Audit records as the page shows them: the whitelisted fields only."""
    rows = []
    for r in records:
        try:
            event = orjson.loads(r.event)
        except orjson.JSONDecodeError:
            event = {}
        fields = {k: event[k] for k in AUDIT_FIELDS if k in event} if isinstance(event, dict) else {}
        rows.append({"seq": r.seq, "ts": r.ts, "hash": r.hash[:12], **fields})
    return rows


def limit_rows(
    scoped: Sequence[tuple[str, str, Rate]], values: Sequence[int] | None, period: str
) -> list[dict[str, Any]]:
    """Usage against each limit: `values` holds three counters per (scope, name, rate) in the order
    `limit_counters` gave them (None: the counter store could not be read)."""
    rows = []
    for i, (scope, name, rate) in enumerate(scoped):
        rpm, tpm, spend = values[3 * i : 3 * i + 3] if values is not None else (None, None, None)
        rows.append(
            {
                "scope": scope, "name": name,
                "rpm": {"used": rpm, "limit": rate.rpm} if rate.rpm else None,
                "tpm": {"used": tpm, "limit": rate.tpm} if rate.tpm else None,
                "budget": {"used": spend / MICRO if spend is not None else None, "limit": rate.budget, "period": period}
                if rate.budget is not None else None,
            }
        )  # fmt: skip
    return rows


def limit_counters(scoped: Sequence[tuple[str, str, Rate]], now: float, period: str) -> list[tuple[str, int]]:
    window = int(now // WINDOW)
    budget_window, _ = budget_period(now, period)
    out = []
    for scope, name, _ in scoped:
        out.append((counter_name(scope, name, "rpm"), window))
        out.append((counter_name(scope, name, "tpm"), window))
        out.append((counter_name(scope, name, "spend"), budget_window))
    return out


class Asset(msgspec.Struct, frozen=True):
    body: bytes
    content_type: bytes
    etag: bytes


def load_assets() -> dict[str, Asset]:
    """The dashboard's files, read once from the package (no build step, nothing fetched)."""
    out = {}
    for item in resources.files("interlock.ui").joinpath("static").iterdir():
        name = item.name
        if name.startswith(".") or not item.is_file():
            continue
        body = item.read_bytes()
        suffix = name[name.rfind(".") :]
        ctype = _TYPES.get(suffix, HTML)
        out[name] = Asset(body, ctype, b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"')
    return out


class UiHandlers:
    def __init__(
        self,
        sessions: Sessions,
        auth: Authenticator,
        info: InfoHandlers,
        admin: AdminHandlers,
        traffic: Traffic,
        groups: Iterable[GroupRuntime],
        *,
        secure_cookie: bool = False,
        driver: RolloutDriver | None = None,
        keys: KeyStore | None = None,
        audit_store: AuditStore | None = None,
        chain: ChainCheck | None = None,
        audit: AuditLog | None = None,
        limiter: Limiter | None = None,
        tenants: Mapping[str, Rate] | None = None,
        models: Mapping[str, Rate] | None = None,
        budget_period: str = "month",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._auth = auth
        self._info = info
        self._admin = admin
        self._traffic = traffic
        self._groups = list(groups)
        self._secure = secure_cookie
        self._driver = driver
        self._keys = keys
        self._audit_store = audit_store
        self._chain = chain
        self._audit = audit
        self._limiter = limiter
        self._tenants = dict(tenants or {})
        self._models = dict(models or {})
        self._period = budget_period
        self._clock = clock
        self.assets = load_assets()

    # -- who is calling ------------------------------------------------------------------------------
    async def _session(self, ex: Exchange) -> tuple[str, Session] | None:
        session_id = session_cookie(ex)
        if session_id is None:
            return None
        session = await self._sessions.resume(session_id)
        return (session_id, session) if session is not None else None

    async def identify(self, ex: Exchange) -> Identity:
        """The caller of a /ui/api route: the API's bearer credentials, or a session (and, for an
        action, the session's CSRF token and a same-origin request)."""
        if b"authorization" in ex.headers or b"api-key" in ex.headers:
            return await self._auth.identify(ex.headers)
        found = await self._session(ex)
        if found is None:
            raise Unauthorized("No dashboard session: log in at /ui")
        _, session = found
        if ex.scope["method"] != "GET":
            self._check_action(ex, session)
        return session.identity

    @staticmethod
    def _check_action(ex: Exchange, session: Session) -> None:
        token = ex.headers.get(b"x-csrf-token")
        if not same_origin(ex) or not csrf_ok(session, token.decode("latin-1") if token else None):
            raise Forbidden("Missing or wrong CSRF token: actions must come from the dashboard's own page")

    # -- pages -----------------------------------------------------------------------------------------
    @staticmethod
    async def _send(
        ex: Exchange, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = (), ctype: bytes = HTML
    ) -> None:
        ex.started = ex.done = True
        await send_bytes(ex.send, status, body, encode_headers(ex.request_id, extra), (b"content-type", ctype))

    def _login_page(self, message: str) -> bytes:
        text = html.escape(LOGIN_MESSAGES.get(message, ""))
        return self.assets["login.html"].body.replace(b"{{message}}", text.encode())

    async def page(self, ex: Exchange) -> None:
        try:
            found = await self._session(ex)
        except InterlockError:
            await self._send(ex, 503, self._login_page("unavailable"))
            return
        if found is None:
            await self._send(ex, 200, self._login_page(""))
            return
        await self._send(ex, 200, self.assets["index.html"].body)

    async def asset(self, ex: Exchange, name: str) -> None:
        asset = self.assets[name]
        headers = [(b"etag", asset.etag), (b"cache-control", b"no-cache")]
        if ex.headers.get(b"if-none-match") == asset.etag:
            await self._send(ex, 304, b"", headers, asset.content_type)
            return
        await self._send(ex, 200, asset.body, headers, asset.content_type)

    def _cookie(self, value: str, max_age: float) -> tuple[bytes, bytes]:
        parts = [f"{COOKIE}={value}", "Path=/ui", "HttpOnly", "SameSite=Strict", f"Max-Age={max(0, int(max_age))}"]
        if self._secure:
            parts.append("Secure")
        return b"set-cookie", "; ".join(parts).encode()

    async def login(self, ex: Exchange) -> None:
        """The login form's POST: the credential is checked as the API checks it, exchanged for a
        session, and dropped; the browser gets the session's id in a cookie, and is sent to /ui."""
        if not same_origin(ex):
            await self._send(ex, 403, self._login_page("origin"))
            return
        raw = await ex.body(MAX_LOGIN_BODY)
        fields = urllib.parse.parse_qs(raw.decode("latin-1"))
        credential = (fields.get("key") or [""])[-1]
        try:
            login = await self._auth.login(credential)
        except Unauthorized:
            await self._send(ex, 401, self._login_page("invalid"))
            return
        if not any(login.identity.may(p) for p in DASHBOARD_PERMISSIONS):
            await self._send(ex, 403, self._login_page("forbidden"))
            return
        try:
            session_id, session = await self._sessions.open(login)
        except InterlockError:
            await self._send(ex, 503, self._login_page("unavailable"))
            return
        ex.identity = login.identity
        record_admin(self._audit, ex, "ui.login", login.identity.subject)
        cookie = self._cookie(session_id, session.expires_at - session.created)
        await self._send(ex, 303, b"", [cookie, (b"location", b"/ui")])

    async def logout(self, ex: Exchange) -> None:
        found = await self._session(ex)
        if found is not None:
            session_id, session = found
            self._check_action(ex, session)
            await self._sessions.close(session_id)
            ex.identity = session.identity
            record_admin(self._audit, ex, "ui.logout", session.identity.subject)
        await ex.json(200, b'{"logged_out":true}', [self._cookie("", 0)])

    # -- panels ----------------------------------------------------------------------------------------
    async def session_info(self, ex: Exchange) -> None:
        who = ex.identity
        found = await self._session(ex) if b"authorization" not in ex.headers else None
        body = {
            "subject": who.subject, "kind": who.kind, "tenant": who.tenant, "roles": list(who.roles),
            "permissions": sorted(who.permissions), "csrf": found[1].csrf if found else None,
            "expires_at": found[1].expires_at if found else None,
        }  # fmt: skip
        await ex.json(200, orjson.dumps(body))

    async def overview(self, ex: Exchange) -> None:
        _, ready, _ = await self._info.deployments_ready()
        await ex.json(200, orjson.dumps(overview(self._traffic, self._groups, ready)))

    async def drift(self, ex: Exchange) -> None:
        """The drift reports (the same as GET /admin/drift), or `enabled: false`."""
        data = await self._admin.drift_data()
        await ex.json(200, orjson.dumps({"enabled": data is not None, "data": data or []}))

    async def rollouts(self, ex: Exchange) -> None:
        driver = self._driver
        if driver is None:
            await ex.json(200, b'{"enabled":false,"data":[]}')
            return
        models = driver.models()
        found = await asyncio.gather(*(driver.status(m, settled=True) for m in models), return_exceptions=True)
        data = []
        for model, status in zip(models, found, strict=True):
            if isinstance(status, (*STORE_ERRORS, KeyError)):
                data.append({"model": model, "error": type(status).__name__})
            elif isinstance(status, BaseException):
                raise status
            else:
                data.append(msgspec.to_builtins(status))
        await ex.json(200, orjson.dumps({"enabled": True, "data": data}))

    async def keys(self, ex: Exchange) -> None:
        store = self._keys
        if store is None:
            await ex.json(200, b'{"enabled":false,"data":[],"counts":{},"next":null}')
            return
        params, limit = paging(ex)
        records, counts = await asyncio.gather(
            store.page(limit + 1, parse_key_cursor(params.get("after"))), store.counts()
        )
        await ex.json(200, orjson.dumps({"enabled": True, **keys_panel(records, limit, counts, self._clock())}))

    async def audit(self, ex: Exchange) -> None:
        store = self._audit_store
        if store is None:
            await ex.json(200, b'{"enabled":false,"data":[],"chain":null,"next":null}')
            return
        params, limit = paging(ex)
        before = params.get("before")
        try:
            cursor = int(before) if before else None
        except ValueError:
            raise BadRequest("`before` must be a record number", param="before") from None
        records = await store.latest(limit + 1, cursor)
        chain = self._chain.status.to_dict() if self._chain is not None else None
        more = len(records) > limit
        body = {
            "enabled": True, "data": audit_rows(records[:limit]), "chain": chain,
            "next": records[limit - 1].seq if more else None,
        }  # fmt: skip
        await ex.json(200, orjson.dumps(body))

    async def limits(self, ex: Exchange) -> None:
        """Usage against the limits of the configured tenants and model groups, and of a page of
        keys (those with limits of their own), from the same counters the limiter counts in."""
        scoped: list[tuple[str, str, Rate]] = [("tenant", n, r) for n, r in sorted(self._tenants.items())]
        scoped += [("model", n, r) for n, r in sorted(self._models.items())]
        params, limit = paging(ex)
        next_cursor = None
        if self._keys is not None:
            records = await self._keys.page(limit + 1, parse_key_cursor(params.get("after")))
            if len(records) > limit:
                next_cursor = key_cursor(records[limit - 1])
            for r in records[:limit]:
                if r.revoked_at is None and (r.rpm or r.tpm or r.budget is not None):
                    scoped.append(("key", r.id, Rate(r.rpm, r.tpm, r.budget)))
        now = self._clock()
        values = None
        if self._limiter is not None:
            values = await self._limiter.usage(limit_counters(scoped, now, self._period))
        body = {
            "data": limit_rows(scoped, values, self._period), "window_s": WINDOW, "next": next_cursor,
            "counters_readable": values is not None,
        }  # fmt: skip
        await ex.json(200, orjson.dumps(body))
