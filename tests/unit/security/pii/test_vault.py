from __future__ import annotations

from interlock.security.pii.vault import MemoryVaultStore, TokenVault


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
