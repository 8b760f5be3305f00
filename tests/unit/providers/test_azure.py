from __future__ import annotations

from interlock.providers.azure import EntraToken


class Credential:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str):  # type: ignore[no-untyped-def]
        self.calls += 1

        class Token:
            token = f"t{self.calls}"
            expires_on = 1000 + 3600 * self.calls

        return Token()

    async def close(self) -> None: ...


async def test_entra_token_is_cached_and_refreshed_five_minutes_before_expiry() -> None:
    now = [1000.0]
    cred = Credential()
    token = EntraToken(cred, "scope", clock=lambda: now[0])
    assert await token.get() == "t1"
    now[0] = 1000 + 3600 - 301
    assert await token.get() == "t1" and cred.calls == 1
    now[0] = 1000 + 3600 - 299
    assert await token.get() == "t2" and cred.calls == 2
