"""Creating, listing and revoking keys: one piece of code behind the admin API and the CLI."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Literal

import msgspec

from .keys import KeyRecord, key_hash, new_key
from .keystore import KeyStore
from .roles import Permission

DataClass = Literal["public", "internal", "confidential", "restricted"]  # as roles.DATA_CLASSES


class NewKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "default"
    roles: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["user"])
    models: list[str] = msgspec.field(default_factory=list)
    max_class: DataClass = "internal"
    rpm: Annotated[int, msgspec.Meta(ge=1)] | None = None
    tpm: Annotated[int, msgspec.Meta(ge=1)] | None = None
    budget: Annotated[float, msgspec.Meta(ge=0)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    expires_in_days: Annotated[float, msgspec.Meta(gt=0)] | None = None


class UnknownRole(ValueError):
    pass


async def create_key(
    store: KeyStore,
    secret: bytes,
    spec: NewKey,
    roles_table: Mapping[str, frozenset[Permission]],
    clock: Callable[[], float] = time.time,
) -> tuple[str, KeyRecord]:
    """Make a key and store its HMAC. The key is returned once and kept nowhere."""
    unknown = [r for r in spec.roles if r not in roles_table]
    if unknown:
        raise UnknownRole(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(sorted(roles_table))}")
    key = new_key()
    now = clock()
    record = KeyRecord(
        id="key_" + secrets.token_hex(8),
        hash=key_hash(secret, key),
        name=spec.name,
        tenant=spec.tenant,
        roles=tuple(spec.roles),
        models=tuple(spec.models),
        max_class=spec.max_class,
        rpm=spec.rpm,
        tpm=spec.tpm,
        budget=spec.budget,
        max_tokens=spec.max_tokens,
        created_at=now,
        expires_at=now + spec.expires_in_days * 86400 if spec.expires_in_days else None,
    )
    await store.create(record)
    return key, record
