from __future__ import annotations

from pathlib import Path

import pytest

from interlock.security.keyadmin import NewKey, UnknownRole, create_key
from interlock.security.keys import KEY_PREFIX, key_hash
from interlock.security.keystore import SQLiteKeyStore
from interlock.security.roles import DEFAULT_ROLES
from tests.support.clock import Clock
from tests.support.keystore import SECRET, CountingStore

START = 1_000_000.0  # the clock's reading when a test begins


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


async def test_unknown_roles_are_refused_at_creation(store: CountingStore) -> None:
    with pytest.raises(UnknownRole):
        await create_key(store, SECRET, NewKey(name="x", roles=["superuser"]), DEFAULT_ROLES)
