"""OIDC bearer tokens (Microsoft Entra ID or any issuer), verified with PyJWT against the issuer's
JWKS.

The algorithm list is fixed by configuration (a token cannot choose `none` or HS256 against an
RSA key); audience, issuer, expiry and subject are required. Signing keys are fetched once and
refetched when a token names an unknown `kid` (key rotation), at most once per
`min_refresh_s`, so random kids cannot turn into a flood of fetches. Verified tokens are cached
until they expire. Fetching happens on a worker thread: it is rare and must not block the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..errors import Unauthorized
from .roles import Identity, Permission, permissions_of

MAX_CACHED_TOKENS = 10_000
FETCH_TIMEOUT = 5.0


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:
        return json.loads(resp.read())


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: tuple[str, ...]
    jwks_url: str | None = None  # discovered from the issuer's openid-configuration when absent
    algorithms: tuple[str, ...] = ("RS256",)
    roles_claim: str = "roles"
    role_map: Mapping[str, str] = field(default_factory=dict)  # claim value -> Interlock role
    default_roles: tuple[str, ...] = ()
    tenant_claim: str = "tid"
    default_tenant: str = "default"
    leeway: float = 60.0
    min_refresh_s: float = 30.0


class OidcVerifier:
    def __init__(
        self,
        config: OidcConfig,
        fetch: Callable[[str], Any] = fetch_json,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()

    async def _refresh(self) -> None:
        async with self._lock:
            if self._clock() - self._fetched_at < self._config.min_refresh_s:
                return
            self._fetched_at = self._clock()
            try:
                keys = await asyncio.to_thread(self._load_keys)
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                raise Unauthorized(f"cannot fetch the issuer's signing keys ({type(exc).__name__})") from None
            self._keys = keys

    def _load_keys(self) -> dict[str, jwt.PyJWK]:
        url = self._config.jwks_url
        if url is None:
            discovery = self._fetch(self._config.issuer.rstrip("/") + "/.well-known/openid-configuration")
            url = discovery["jwks_uri"]
        jwks = jwt.PyJWKSet.from_dict(self._fetch(url))
        return {k.key_id: k for k in jwks.keys if k.key_id}

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is None:
            await self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("token signed with an unknown key")
        return key

    async def verify(self, token: str, roles_table: Mapping[str, frozenset[Permission]]) -> Identity:
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._verified.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        config = self._config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("malformed bearer token") from None
        if header.get("alg") not in config.algorithms:
            raise Unauthorized("token algorithm not allowed")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(config.algorithms),
                audience=list(config.audience),
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token rejected ({type(exc).__name__})") from None
        identity = self._identity(claims, roles_table)
        self._verified[digest] = (float(claims["exp"]), identity)
        while len(self._verified) > MAX_CACHED_TOKENS:
            self._verified.popitem(last=False)
        return identity

    def expires_at(self, token: str) -> float | None:
        """The expiry of a token `verify` accepted (None for one it has not seen)."""
        cached = self._verified.get(hashlib.sha256(token.encode()).digest())
        return cached[0] if cached is not None else None

    def _identity(self, claims: Mapping[str, Any], roles_table: Mapping[str, frozenset[Permission]]) -> Identity:
        config = self._config
        raw = claims.get(config.roles_claim) or []
        values = [raw] if isinstance(raw, str) else [str(v) for v in raw if isinstance(v, str)]
        mapped = [config.role_map.get(v, v) for v in values]
        roles = tuple(dict.fromkeys([*config.default_roles, *(r for r in mapped if r in roles_table)]))
        return Identity(
            subject=str(claims["sub"]),
            kind="oidc",
            tenant=str(claims.get(config.tenant_claim) or config.default_tenant),
            roles=roles,
            permissions=permissions_of(roles, roles_table),
        )
