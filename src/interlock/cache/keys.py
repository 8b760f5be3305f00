"""Cache keys: a canonical hash of tenant, endpoint and every parameter that changes the answer."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..config import GroupCache
from ..pipeline.context import Endpoint

# Fields that never change what the model answers.
IGNORED_FIELDS = frozenset({"user", "metadata", "store"})


def cache_key(tenant: str, endpoint: Endpoint, body: dict[str, Any]) -> str:
    # (The copy only when there is a field to leave out: most bodies have none.)
    relevant = body if IGNORED_FIELDS.isdisjoint(body) else {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    canonical = orjson.dumps([tenant, endpoint.value, relevant], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def is_cacheable(policy: GroupCache, endpoint: Endpoint, body: dict[str, Any]) -> bool:
    if not policy.enabled or policy.mode == "off":
        return False
    if policy.mode == "always" or endpoint is Endpoint.EMBEDDINGS:
        return True
    # Deterministic requests only: greedy decoding or a fixed seed.
    return body.get("temperature") == 0 or body.get("seed") is not None
