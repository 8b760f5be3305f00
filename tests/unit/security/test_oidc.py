from __future__ import annotations

import time

import jwt
import pytest

from interlock.errors import Unauthorized
from interlock.security.oidc import OidcConfig, OidcVerifier
from interlock.security.roles import DEFAULT_ROLES
from tests.support.tokens import Issuer

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


async def test_a_dashboard_login_with_a_token_ends_when_the_token_does() -> None:
    from interlock.security.auth import Authenticator

    issuer = Issuer(ISSUER, "api://interlock")
    auth = Authenticator(None, b"", DEFAULT_ROLES, verifier(issuer, []))
    token = issuer.token(lifetime=120, roles=["Interlock.Admin"])
    login = await auth.login(token)
    assert login.identity.kind == "oidc" and "admin" in login.identity.roles and login.key_hash is None
    assert login.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]
    with pytest.raises(Unauthorized):
        await auth.login(issuer.token(lifetime=-600))
