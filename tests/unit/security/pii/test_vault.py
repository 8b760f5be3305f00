from __future__ import annotations

import secrets

from redis.asyncio import Redis

from interlock.security.pii.vault import MemoryVaultStore, RedisVaultStore, TokenVault, vault_scope
from tests.support.clock import Clock


async def test_vault_tokens_are_stable_scoped_and_reversible() -> None:
    vault = TokenVault(b"k" * 32, MemoryVaultStore(), ttl=60)
    a = await vault.tokenize("t:c1", [("EMAIL", "x@y.io")])
    again = await vault.tokenize("t:c1", [("EMAIL", "x@y.io")])
    other = await vault.tokenize("t:c2", [("EMAIL", "x@y.io")])
    token = a[("EMAIL", "x@y.io")]
    assert token == again[("EMAIL", "x@y.io")] != other[("EMAIL", "x@y.io")]
    assert await vault.recall("t:c1", [token]) == {token: "x@y.io"}
    assert await vault.recall("t:c2", [token]) == {}  # another conversation cannot open it


async def test_a_token_collision_gives_the_newcomer_a_longer_token() -> None:
    store = MemoryVaultStore()
    vault = TokenVault(b"k" * 32, store, ttl=60)
    first = (await vault.tokenize("s", [("EMAIL", "a@a.io")]))[("EMAIL", "a@a.io")]
    vault.token = lambda scope, kind, value, length=12: first if length == 12 else f"<{kind}_{'z' * length}>"  # type: ignore[method-assign]
    second = (await vault.tokenize("s", [("EMAIL", "b@b.io")]))[("EMAIL", "b@b.io")]
    assert second != first and len(second) > len(first)
    assert await vault.recall("s", [first, second]) == {first: "a@a.io", second: "b@b.io"}


async def test_tokenizing_again_with_a_shorter_ttl_never_shortens_the_mappings_life() -> None:
    clock = Clock(0.0)
    vault = TokenVault(b"k" * 32, MemoryVaultStore(clock=clock), ttl=60)
    token = (await vault.tokenize("s", [("EMAIL", "a@a.io")], ttl=3600))[("EMAIL", "a@a.io")]
    assert (await vault.tokenize("s", [("EMAIL", "a@a.io")]))[("EMAIL", "a@a.io")] == token  # ttl 60
    clock.now = 1000.0
    assert await vault.recall("s", [token]) == {token: "a@a.io"}
    await vault.tokenize("s", [("EMAIL", "a@a.io")], ttl=3600)  # a later use lengthens it
    clock.now = 4000.0
    assert await vault.recall("s", [token]) == {token: "a@a.io"}


async def test_redis_vault_store_extends_but_never_shortens() -> None:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:vault:{secrets.token_hex(4)}:"
    try:
        vault = TokenVault(b"k" * 32, RedisVaultStore(client, prefix), ttl=60)
        token = (await vault.tokenize("s", [("EMAIL", "a@a.io")], ttl=3600))[("EMAIL", "a@a.io")]
        await vault.tokenize("s", [("EMAIL", "a@a.io")])  # ttl 60
        assert await client.ttl(f"{prefix}s:{token}") > 3000
        await vault.tokenize("s", [("EMAIL", "a@a.io")], ttl=7200)
        assert await client.ttl(f"{prefix}s:{token}") > 7000
        assert await vault.recall("s", [token]) == {token: "a@a.io"}
    finally:
        async for key in client.scan_iter(prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def test_a_tenant_whose_name_holds_the_separator_cannot_name_another_tenants_scope() -> None:
    # Unescaped, tenant "a:rq:c" naming store "s" and tenant "a" in conversation "c:vs:s" would
    # share "a:rq:c:vs:s"; escaped, a tenant's scopes all start with its own escaped name.
    store = vault_scope("a", "vs", "s1")
    assert vault_scope("a:vs", "rq", "x") != store and not vault_scope("a:vs", "rq", "x").startswith("a:")
    assert vault_scope("a:rq:c", "vs", "s") != vault_scope("a", "rq", "c:vs:s")
    assert vault_scope("a%3A", "rq", "c") != vault_scope("a:", "rq", "c")  # the escape is escaped too
    assert store == "a:vs:s1"  # names without ':' or '%' are as before
