from __future__ import annotations

import pytest

from interlock.errors import Unauthorized
from interlock.security.auth import Authenticator, presented_credential
from interlock.security.keyadmin import NewKey, create_key
from interlock.security.keys import new_key
from interlock.security.roles import DEFAULT_ROLES, Permission
from tests.support.clock import Clock
from tests.support.keystore import SECRET, CountingStore

START = 1_000_000.0  # the clock's reading when a test begins


def test_credentials_come_from_bearer_or_api_key() -> None:
    assert presented_credential({b"authorization": b"Bearer ik_abc"}) == "ik_abc"
    assert presented_credential({b"api-key": b"ik_abc"}) == "ik_abc"
    assert presented_credential({b"authorization": b"Basic dXNlcg=="}) is None
    assert presented_credential({}) is None


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
