from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from interlock.errors import Unauthorized
from interlock.security.auth import Authenticator, presented_credential
from interlock.security.keyadmin import NewKey, UnknownRole, create_key
from interlock.security.keys import KEY_PREFIX, key_hash, new_key
from interlock.security.keystore import SQLiteKeyStore
from interlock.security.oidc import OidcConfig, OidcVerifier
from interlock.security.roles import DEFAULT_ROLES, Permission
from tests.support.clock import Clock
from tests.support.tokens import Issuer

START = 1_000_000.0  # the clock's reading when a test begins

SECRET = b"0123456789abcdef-server-secret"


class CountingStore(SQLiteKeyStore):
    lookups = 0

    async def by_hash(self, digest: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().by_hash(digest)


def test_keys_are_long_random_and_their_hmac_depends_on_the_server_secret() -> None:
    a, b = new_key(), new_key()
    assert a.startswith(KEY_PREFIX) and len(a) >= 35 and a != b
    assert key_hash(SECRET, a) == key_hash(SECRET, a) != key_hash(b"another-secret-value", a)


def everything_in(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


async def test_only_a_keys_hmac_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SQLiteKeyStore(path)
    await store.start()
    try:
        key, record = await create_key(store, SECRET, NewKey(name="svc", tenant="acme"), DEFAULT_ROLES, Clock(START))
        assert record.hash == key_hash(SECRET, key)
        assert (await store.by_hash(key_hash(SECRET, key))) is not None
    finally:
        await store.close()
    stored = everything_in(tmp_path)  # the database and any journal
    secret_part = key.removeprefix(KEY_PREFIX)
    assert secret_part.encode() not in stored and key_hash(SECRET, key).encode() in stored


def test_credentials_come_from_bearer_or_api_key() -> None:
    assert presented_credential({b"authorization": b"Bearer ik_abc"}) == "ik_abc"
    assert presented_credential({b"api-key": b"ik_abc"}) == "ik_abc"
    assert presented_credential({b"authorization": b"Basic dXNlcg=="}) is None
    assert presented_credential({}) is None


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = CountingStore(tmp_path / "keys.db")
    await s.start()
    yield s
    await s.close()


async def test_a_key_identifies_its_holder_and_the_store_is_not_read_again(store: CountingStore) -> None:
    clock = Clock(START)
    key, record = await create_key(
        store, SECRET, NewKey(name="svc", tenant="acme", models=["gpt"]), DEFAULT_ROLES, clock
    )
    auth = Authenticator(store, SECRET, DEFAULT_ROLES, cache_ttl=30, clock=clock)
    for _ in range(3):
        who = await auth.identify({b"authorization": f"Bearer {key}".encode()})
    assert (who.subject, who.tenant, who.roles) == (record.id, "acme", ("user",))
    assert who.may_call("gpt") and not who.may_call("other") and not who.may(Permission.READ_METRICS)
    assert store.lookups == 1


async def test_a_revoked_key_stops_working_within_the_cache_ttl(store: CountingStore) -> None:
    clock = Clock(START)
    key, record = await create_key(store, SECRET, NewKey(name="svc"), DEFAULT_ROLES, clock)
    auth = Authenticator(store, SECRET, DEFAULT_ROLES, cache_ttl=30, clock=clock)
    headers = {b"api-key": key.encode()}
    await auth.identify(headers)
    assert await store.revoke(record.id, clock.now)
    clock.now += 29
    await auth.identify(headers)  # still cached
    clock.now += 2
    with pytest.raises(Unauthorized):
        await auth.identify(headers)


async def test_expired_unknown_and_missing_keys_are_refused(store: CountingStore) -> None:
    clock = Clock(START)
    key, _ = await create_key(store, SECRET, NewKey(name="short", expires_in_days=1), DEFAULT_ROLES, clock)
    auth = Authenticator(store, SECRET, DEFAULT_ROLES, cache_ttl=30, clock=clock)
    await auth.identify({b"api-key": key.encode()})
    clock.now += 86_401
    with pytest.raises(Unauthorized):
        await auth.identify({b"api-key": key.encode()})
    bogus = {b"authorization": b"Bearer " + new_key().encode()}
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await auth.identify(bogus)
    assert store.lookups == 3  # the unknown key is remembered as unknown for a while
    with pytest.raises(Unauthorized):
        await auth.identify({})


async def test_unknown_roles_are_refused_at_creation(store: CountingStore) -> None:
    with pytest.raises(UnknownRole):
        await create_key(store, SECRET, NewKey(name="x", roles=["superuser"]), DEFAULT_ROLES)


ISSUER = "https://login.example.test/tenant-1/v2.0"


class Later:
    """Real time plus an offset: PyJWT checks `exp` against real time, the cache uses this."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def verifier(issuer: Issuer, fetched: list[str], clock: Later | None = None) -> OidcVerifier:
    def fetch(url: str) -> object:
        fetched.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            return {"jwks_uri": "https://login.example.test/keys"}
        return issuer.jwks()

    config = OidcConfig(issuer=ISSUER, audience=("api://interlock",), role_map={"Interlock.Admin": "admin"})
    return OidcVerifier(config, fetch=fetch, clock=clock or Later())


async def test_a_valid_token_maps_its_roles_and_tenant() -> None:
    issuer, fetched = Issuer(ISSUER, "api://interlock"), []
    v = verifier(issuer, fetched)
    who = await v.verify(issuer.token(roles=["Interlock.Admin", "Unknown.Role"], tid="t-9"), DEFAULT_ROLES)
    assert (who.kind, who.subject, who.tenant, who.roles) == ("oidc", "user-123", "t-9", ("admin",))
    assert fetched == [ISSUER + "/.well-known/openid-configuration", "https://login.example.test/keys"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda i: i.token(aud="api://someone-else"),
        lambda i: i.token(iss="https://evil.example/v2.0"),
        lambda i: i.token(lifetime=-3600),
        lambda i: jwt.encode(
            {"iss": ISSUER, "aud": "api://interlock", "sub": "x", "exp": 9999999999},
            "k" * 32,
            algorithm="HS256",
        ),
        lambda i: "not.a.jwt",
    ],
    ids=["audience", "issuer", "expired", "hs256", "garbage"],
)
async def test_bad_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    issuer = Issuer(ISSUER, "api://interlock")
    v = verifier(issuer, [])
    with pytest.raises(Unauthorized):
        await v.verify(mutate(issuer), DEFAULT_ROLES)


async def test_an_unknown_kid_refetches_the_keys_but_not_more_than_once_per_interval() -> None:
    issuer, fetched, clock = Issuer(ISSUER, "api://interlock"), [], Later()
    v = verifier(issuer, fetched, clock)
    await v.verify(issuer.token(), DEFAULT_ROLES)
    clock.offset += 60  # the last fetch was a while ago
    issuer.rotate()
    await v.verify(issuer.token(), DEFAULT_ROLES)  # signed with the new key: found after one refetch
    count = len(fetched)
    forged = Issuer(ISSUER, "api://interlock")  # keys the verifier has never seen
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await v.verify(forged.token(), DEFAULT_ROLES)
    assert len(fetched) == count  # refetching is rate limited
