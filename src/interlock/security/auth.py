"""Who is calling: API keys (looked up by HMAC, cached) and OIDC bearer tokens.

The hot path does no database read for a known key: a verified key is cached in process for
`cache_ttl` seconds, so a revoked key stops working within that TTL on every replica. Unknown
keys are cached as unknown for a shorter time, so a flood of bad keys does not become a flood of
database reads. The presented credential is only ever hashed: it is never stored, logged or put
in an error message.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from hashlib import blake2b

from ..errors import Unauthorized
from .keys import KeyRecord, key_hasher, looks_like_key
from .keystore import KeyStore
from .oidc import OidcVerifier
from .roles import OPEN, Identity, Permission
from .sessions import Login

NEGATIVE_TTL = 5.0
MAX_CACHED = 10_000


def presented_credential(headers: Mapping[bytes, bytes]) -> str | None:
    """The credential from `Authorization: Bearer ...` or Azure's `api-key` header."""
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = headers.get(b"api-key")
    return api_key.decode("latin-1").strip() if api_key else None


class Authenticator:
    def __init__(
        self,
        store: KeyStore | None,
        secret: bytes,
        roles: Mapping[str, frozenset[Permission]],
        oidc: OidcVerifier | None = None,
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._hash = key_hasher(secret)
        self._roles = roles
        self._oidc = oidc
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Identity | None]] = OrderedDict()

    @property
    def open(self) -> bool:
        """No key store and no OIDC: anyone on loopback is admitted (the CLI refuses other hosts)."""
        return self._store is None and self._oidc is None

    def identity_of(self, record: KeyRecord) -> Identity:
        from .roles import permissions_of

        return Identity(
            subject=record.id,
            kind="key",
            tenant=record.tenant,
            roles=record.roles,
            permissions=permissions_of(record.roles, self._roles),
            models=frozenset(record.models) if record.models else None,
            max_class=record.max_class,
            rpm=record.rpm,
            tpm=record.tpm,
            max_tokens=record.max_tokens,
            budget=record.budget,
        )

    async def identify(self, headers: Mapping[bytes, bytes]) -> Identity:
        if self._store is None and self._oidc is None:  # `open`, without a property call
            return OPEN
        raw = headers.get(b"authorization")
        if raw is None:
            raw = headers.get(b"api-key", b"")
        # A key seen lately is found by a plain BLAKE2b digest of the header as sent (0.5 µs, no
        # parsing; the keyed HMAC the store is indexed by costs 2 µs more and is needed only on a
        # miss). Neither keeps the key. Another spelling of the same key is another entry.
        digest = blake2b(raw, digest_size=16).digest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self._clock():
            if cached[1] is None:
                raise Unauthorized("Invalid API key")
            return cached[1]
        credential = presented_credential(headers)
        if not credential:
            raise Unauthorized("Missing credentials: send an API key as `Authorization: Bearer ik_...`")
        if looks_like_key(credential) and self._store is not None:
            return await self._by_key(credential, digest)
        if self._oidc is not None and credential.count(".") == 2:
            return await self._oidc.verify(credential, self._roles)
        raise Unauthorized("Invalid credentials")

    async def login(self, credential: str) -> Login:
        """What a dashboard session keeps of a credential, checked as `identify` checks a header
        (its caches included, so a flood of bad logins is not a flood of database reads): the
        identity, the key's HMAC (to check later that the key is still active; never the key) or
        an OIDC token's expiry."""
        credential = credential.strip()
        identity = await self.identify({b"authorization": b"Bearer " + credential.encode("latin-1", "replace")})
        if identity.kind == "key":
            return Login(identity, key_hash=self._hash(credential))
        if identity.kind == "oidc" and self._oidc is not None:
            return Login(identity, expires_at=self._oidc.expires_at(credential))
        return Login(identity)

    async def recheck(self, key_hash: str) -> Identity | None:
        """The identity of the key with this HMAC while it is usable (active, not expired), else None."""
        if self._store is None:
            return None
        record = await self._store.by_hash(key_hash)
        return self.identity_of(record) if record is not None and record.usable(self._clock()) else None

    async def _by_key(self, key: str, cache_key: bytes) -> Identity:
        """Look a key up in the store and remember the answer, known or not, under `cache_key`."""
        now = self._clock()
        assert self._store is not None
        record = await self._store.by_hash(self._hash(key))
        identity = self.identity_of(record) if record is not None and record.usable(now) else None
        expires = now + (self._ttl if identity is not None else NEGATIVE_TTL)
        if record is not None and record.expires_at is not None:
            expires = min(expires, record.expires_at)
        self._cache[cache_key] = (expires, identity)
        self._cache.move_to_end(cache_key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        if identity is None:
            raise Unauthorized("Invalid API key")
        return identity
