"""Dashboard sessions: what an API key or a bearer token is exchanged for at login.

The browser holds only a random session id, in an `HttpOnly`, `SameSite=Strict` cookie; the key
itself is never kept (a key session keeps the key's HMAC, which is what the key store is indexed
by, to check now and then that the key is still active). Sessions are stored under the SHA-256
of their id, so whoever reads the store (Redis, when replicas share it) cannot use what they read.

Each session has its own CSRF token, sent by the page in the `x-csrf-token` header of every
action and compared in constant time. A session ends at `expires_at` (the TTL, or an OIDC token's
expiry when sooner), after `idle_s` without a request, at logout, or when its key is revoked or
expires (noticed within `recheck_s`, as the API's key cache notices it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..errors import Unavailable
from .roles import Identity

MAX_LOCAL_SESSIONS = 10_000
TOUCH_S = 30.0  # `seen` is written back at most this often (a Redis write per page load is waste)
STORE_TIMEOUT_S = 1.0


class Session(msgspec.Struct, kw_only=True):
    identity: Identity
    csrf: str
    created: float
    expires_at: float  # the absolute end
    seen: float  # the latest request
    key_hash: str | None = None  # the key's HMAC (never the key), to check it is still active
    checked: float = 0.0  # when the key was last checked


class Login(msgspec.Struct, frozen=True):
    """What a credential is worth to a session: who it is, how to check it again, when it ends."""

    identity: Identity
    key_hash: str | None = None
    expires_at: float | None = None


class SessionStore(Protocol):
    async def get(self, digest: str) -> bytes | None: ...

    async def put(self, digest: str, blob: bytes, ttl_s: float) -> None: ...

    async def delete(self, digest: str) -> None: ...


class MemorySessionStore:
    """In process: one replica, one worker (a session opened on another process is unknown here)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, digest: str) -> bytes | None:
        item = self._items.get(digest)
        if item is None or item[0] <= self._clock():
            self._items.pop(digest, None)
            return None
        return item[1]

    async def put(self, digest: str, blob: bytes, ttl_s: float) -> None:
        self._items[digest] = (self._clock() + ttl_s, blob)
        self._items.move_to_end(digest)
        while len(self._items) > MAX_LOCAL_SESSIONS:
            self._items.popitem(last=False)

    async def delete(self, digest: str) -> None:
        self._items.pop(digest, None)


class RedisSessionStore:
    """Shared by every replica: one key per session, expiring with it."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix + "session:"

    async def get(self, digest: str) -> bytes | None:
        value = await self._client.get(self._prefix + digest)
        return value if isinstance(value, bytes) else None

    async def put(self, digest: str, blob: bytes, ttl_s: float) -> None:
        await self._client.set(self._prefix + digest, blob, px=max(1, int(ttl_s * 1000)))

    async def delete(self, digest: str) -> None:
        await self._client.delete(self._prefix + digest)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Session).decode


class Sessions:
    def __init__(
        self,
        store: SessionStore,
        ttl_s: float,
        idle_s: float,
        recheck: Callable[[str], Awaitable[Identity | None]] | None = None,
        recheck_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._idle = idle_s
        self._recheck = recheck
        self._recheck_s = recheck_s
        self._clock = clock

    async def _call(self, op: Awaitable[object]) -> object:
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                return await op
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable(f"The session store failed ({type(exc).__name__})", retry_after=1) from None

    async def _put(self, session_id: str, session: Session) -> None:
        left = min(session.expires_at, session.seen + self._idle) - self._clock()
        await self._call(self._store.put(_digest(session_id), _encode(session), left))

    async def open(self, login: Login) -> tuple[str, Session]:
        """A new session for a verified login: (its id, for the cookie; the session)."""
        now = self._clock()
        end = now + self._ttl
        if login.expires_at is not None:
            end = min(end, login.expires_at)
        session = Session(
            identity=login.identity, csrf=secrets.token_urlsafe(32), created=now, expires_at=end, seen=now,
            key_hash=login.key_hash, checked=now,
        )  # fmt: skip
        session_id = secrets.token_urlsafe(32)
        await self._put(session_id, session)
        return session_id, session

    async def resume(self, session_id: str) -> Session | None:
        """The live session of this id, or None (unknown, ended, idle too long, key revoked)."""
        if not session_id or len(session_id) > 128:
            return None
        blob = await self._call(self._store.get(_digest(session_id)))
        if not isinstance(blob, bytes):
            return None
        try:
            session = _decode(blob)
        except msgspec.DecodeError:
            return None
        now = self._clock()
        if now >= session.expires_at or now - session.seen >= self._idle:
            await self.close(session_id)
            return None
        dirty = now - session.seen >= TOUCH_S
        if session.key_hash is not None and self._recheck is not None and now - session.checked >= self._recheck_s:
            identity = await self._recheck(session.key_hash)
            if identity is None:
                await self.close(session_id)
                return None
            session.identity, session.checked, dirty = identity, now, True
        if dirty:
            session.seen = now
            await self._put(session_id, session)
        return session

    async def close(self, session_id: str) -> None:
        await self._call(self._store.delete(_digest(session_id)))


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether an action carries its session's CSRF token (compared in constant time)."""
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
