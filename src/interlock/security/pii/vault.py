"""Reversible tokenization: a value becomes `<EMAIL_k3f9a2c7d1e0b>`.

A token is an HMAC of the tenant, conversation, type and value, so the same value gives the same
token throughout a conversation and nobody without the key can guess one. The mapping back is
kept encrypted (AES-GCM, the token bound in as associated data) in a store with a TTL: memory,
or Redis shared by every replica. Two different values never share a token: before a mapping is
stored, an existing entry for the token that decrypts to another value makes the token longer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

SHORT, LONG = 12, 24  # base32 characters of a token: 60 bits, or 120 after a collision


def vault_scope(tenant: str, kind: str, name: str) -> str:
    """`<tenant>:<kind>:<name>`, the one way scopes are named: requests' (`rq`), stores' (`vs`) and
    file names' (`file`). The tenant's own `%` and `:` are escaped, so its first `:` always ends it
    and a tenant named `a:rq:b` cannot reach tenant `a`'s scopes."""
    return f"{tenant.replace('%', '%25').replace(':', '%3A')}:{kind}:{name}"


class VaultStore(Protocol):
    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def put_many(self, items: dict[str, bytes], ttl: int) -> None: ...

    async def extend(self, keys: list[str], ttl: int) -> None:
        """Keep each key at least `ttl` seconds more; never shortens a longer life."""
        ...

    async def close(self) -> None: ...


class MemoryVaultStore:
    def __init__(self, max_items: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_items
        self._clock = clock

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        now = self._clock()
        out: list[bytes | None] = []
        for key in keys:
            item = self._items.get(key)
            out.append(item[1] if item is not None and item[0] > now else None)
        return out

    async def put_many(self, items: dict[str, bytes], ttl: int) -> None:
        expires = self._clock() + ttl
        for key, value in items.items():
            self._items[key] = (expires, value)
            self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def extend(self, keys: list[str], ttl: int) -> None:
        expires = self._clock() + ttl
        for key in keys:
            item = self._items.get(key)
            if item is not None and item[0] < expires:
                self._items[key] = (expires, item[1])

    async def close(self) -> None:
        self._items.clear()


class RedisVaultStore:
    def __init__(self, client: Redis, prefix: str = "interlock:vault:") -> None:
        self._client = client
        self._prefix = prefix

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._client.mget([self._prefix + k for k in keys])
        return [v if isinstance(v, bytes) else None for v in values]

    async def put_many(self, items: dict[str, bytes], ttl: int) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(self._prefix + key, value, ex=ttl)
            await pipe.execute()

    async def extend(self, keys: list[str], ttl: int) -> None:
        if not keys:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(self._prefix + key, ttl, gt=True)  # Redis 7: only ever lengthened
            await pipe.execute()

    async def close(self) -> None:
        pass  # the client is its maker's to close


class TokenVault:
    def __init__(self, key: bytes, store: VaultStore, ttl: int) -> None:
        self._token_key = hmac.new(key, b"interlock token", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(key, b"interlock vault", hashlib.sha256).digest())
        self._store = store
        self._ttl = ttl

    def token(self, scope: str, kind: str, value: str, length: int = SHORT) -> str:
        digest = hmac.new(self._token_key, f"{scope}\0{kind}\0{value}".encode(), hashlib.sha256).digest()
        return f"<{kind}_{base64.b32encode(digest).decode().lower()[:length]}>"

    def _seal(self, scope: str, token: str, value: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value.encode(), f"{scope}\0{token}".encode())

    def _open(self, scope: str, token: str, blob: bytes) -> str | None:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], f"{scope}\0{token}".encode()).decode()
        except (InvalidTag, ValueError):
            return None

    async def tokenize(
        self, scope: str, values: Iterable[tuple[str, str]], ttl: int | None = None
    ) -> dict[tuple[str, str], str]:
        """Tokens for (type, value) pairs, their mappings stored for `ttl` seconds (the vault's
        own by default; stored documents keep theirs longer). Raises if the store fails."""
        wanted = {(kind, value): self.token(scope, kind, value) for kind, value in set(values)}
        if not wanted:
            return {}
        tokens = list(wanted.values())
        existing = await self._store.get_many([f"{scope}:{t}" for t in tokens])
        by_token = dict(zip(tokens, existing, strict=True))
        claimed: dict[str, str] = {}
        held_already: set[str] = set()
        for (kind, value), token in list(wanted.items()):
            blob = by_token.get(token)
            held = self._open(scope, token, blob) if blob is not None else None
            if (held is not None and held != value) or claimed.get(token, value) != value:
                token = wanted[(kind, value)] = self.token(scope, kind, value, LONG)  # a collision
            elif held == value:
                held_already.add(token)
            claimed[token] = value
        # A mapping already stored keeps its own life, only ever lengthened: a request's short TTL
        # never cuts a stored document's long one.
        life = ttl or self._ttl
        fresh = {f"{scope}:{t}": self._seal(scope, t, v) for t, v in claimed.items() if t not in held_already}
        if fresh:
            await self._store.put_many(fresh, life)
        await self._store.extend([f"{scope}:{t}" for t in sorted(held_already)], life)
        return wanted

    async def close(self) -> None:
        await self._store.close()

    async def recall(self, scope: str, tokens: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(tokens))
        blobs = await self._store.get_many([f"{scope}:{t}" for t in wanted])
        out: dict[str, str] = {}
        for token, blob in zip(wanted, blobs, strict=True):
            value = self._open(scope, token, blob) if blob is not None else None
            if value is not None:
                out[token] = value
        return out
