"""Dashboard sessions: what a login keeps, when a session ends, the CSRF token, and the store
(in process, and real Redis on 6379 as scripts/services.sh starts it)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from redis.asyncio import Redis

from interlock.errors import Unauthorized, Unavailable
from interlock.security.auth import Authenticator
from interlock.security.keyadmin import NewKey, create_key
from interlock.security.roles import DEFAULT_ROLES, OPEN
from interlock.security.sessions import Login, MemorySessionStore, RedisSessionStore, Session, Sessions, csrf_ok
from tests.support.clock import Clock
from tests.support.keystore import SECRET, CountingStore


def sessions(clock: Clock, store: MemorySessionStore | None = None, **kw: object) -> Sessions:
    return Sessions(store or MemorySessionStore(clock), ttl_s=3600, idle_s=600, clock=clock, **kw)  # type: ignore[arg-type]


async def test_a_session_is_found_by_its_id_and_stored_under_its_digest() -> None:
    clock = Clock(1000.0)
    store = MemorySessionStore(clock)
    s = sessions(clock, store)
    session_id, session = await s.open(Login(OPEN))
    assert len(session_id) >= 40 and session.csrf and session.csrf != session_id
    found = await s.resume(session_id)
    assert found is not None and found.identity == OPEN and found.csrf == session.csrf
    assert session_id not in str(list(store._items))  # whoever reads the store cannot use what they read
    assert await s.resume("not-a-session") is None
    assert await s.resume("x" * 500) is None


async def test_a_session_ends_at_its_ttl_after_idling_and_at_logout() -> None:
    clock = Clock(1000.0)
    s = sessions(clock)
    session_id, _ = await s.open(Login(OPEN))
    for _ in range(7):  # active every 500 s: idling never reaches 600 s, the TTL (3600 s) ends it
        clock.now += 500
        assert await s.resume(session_id) is not None
    clock.now += 500
    assert await s.resume(session_id) is None
    idle, _ = await s.open(Login(OPEN))
    clock.now += 601
    assert await s.resume(idle) is None
    closed, _ = await s.open(Login(OPEN))
    await s.close(closed)
    assert await s.resume(closed) is None


async def test_an_oidc_token_expiry_ends_the_session_sooner() -> None:
    clock = Clock(1000.0)
    s = sessions(clock)
    session_id, session = await s.open(Login(OPEN, expires_at=1100.0))
    assert session.expires_at == 1100.0
    clock.now += 99
    assert await s.resume(session_id) is not None
    clock.now += 2
    assert await s.resume(session_id) is None


async def test_a_revoked_key_ends_its_session_within_the_recheck_interval(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    store = CountingStore(tmp_path / "keys.db")
    await store.start()
    try:
        key, record = await create_key(store, SECRET, NewKey(name="ops", roles=["operator"]), DEFAULT_ROLES, clock)
        auth = Authenticator(store, SECRET, DEFAULT_ROLES, clock=clock)
        login = await auth.login(key)
        assert login.identity.subject == record.id and login.key_hash and key not in login.key_hash
        s = sessions(clock, recheck=auth.recheck, recheck_s=30.0)
        session_id, _ = await s.open(login)
        await store.revoke(record.id, clock())
        clock.now += 10
        assert await s.resume(session_id) is not None  # not checked again yet
        clock.now += 25
        assert await s.resume(session_id) is None
        with pytest.raises(Unauthorized):
            await auth.login(key)
        with pytest.raises(Unauthorized):
            await auth.login("ik_" + secrets.token_urlsafe(32))
    finally:
        await store.close()


def test_the_csrf_token_must_match_exactly() -> None:
    s = Session(identity=OPEN, csrf="token-abc", created=0, expires_at=1, seen=0)
    assert csrf_ok(s, "token-abc")
    assert not csrf_ok(s, "token-abd") and not csrf_ok(s, "") and not csrf_ok(s, None)


async def test_sessions_in_redis_are_shared_and_expire_there() -> None:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:sessions:{secrets.token_hex(4)}:"
    try:
        clock = Clock(1000.0)
        one = Sessions(RedisSessionStore(client, prefix), ttl_s=3600, idle_s=600, clock=clock)
        other = Sessions(RedisSessionStore(client, prefix), ttl_s=3600, idle_s=600, clock=clock)
        session_id, _ = await one.open(Login(OPEN))
        assert (await other.resume(session_id)) is not None  # another replica knows it
        keys = [k.decode() async for k in client.scan_iter(prefix + "*")]
        assert len(keys) == 1 and session_id not in keys[0]
        ttl = await client.pttl(keys[0])
        assert 0 < ttl <= 600_000  # idle_s, the sooner end
        await other.close(session_id)
        assert await one.resume(session_id) is None
    finally:
        await client.aclose()


async def test_an_unreachable_session_store_is_a_503() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.05, socket_connect_timeout=0.05)
    try:
        s = Sessions(RedisSessionStore(dead, "x:"), ttl_s=60, idle_s=60)
        with pytest.raises(Unavailable):
            await s.open(Login(OPEN))
        with pytest.raises(Unavailable):
            await s.resume("some-id")
    finally:
        await dead.aclose()


async def test_repeated_bad_logins_cost_one_store_lookup(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "keys.db")
    await store.start()
    try:
        auth = Authenticator(store, SECRET, DEFAULT_ROLES)
        bad = "ik_" + secrets.token_urlsafe(32)
        for _ in range(50):
            with pytest.raises(Unauthorized):
                await auth.login(bad)
        assert store.lookups == 1  # the negative cache the API's header checks use
        with pytest.raises(Unauthorized):
            await auth.login("")
    finally:
        await store.close()
