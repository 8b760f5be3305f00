"""Files at rest: the bytes of an upload sealed with AES-GCM before the catalog stores them.

A document holds whatever its author put in it, PII included, and ingestion screens only what it
indexes (the chunks). The uploaded bytes are kept too (`GET /v1/files/{id}/content`, a store
attaching the file later), so they are sealed: the SQLite file and the PostgreSQL table hold
ciphertext, bound to the file's id and tenant (one file's ciphertext cannot be passed off as
another's). The key is derived from DLP's tokenization key; without one, bytes are stored as
they came (`Plain`), which docs/retrieval.md says.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12


class SealError(Exception):
    """Stored bytes that do not open under this key (another key, or altered)."""


class Seal(Protocol):
    def seal(self, tenant: str, file_id: str, content: bytes) -> bytes: ...

    def open(self, tenant: str, file_id: str, stored: bytes) -> bytes: ...


class Plain:
    """No key configured: the bytes as they came."""

    def seal(self, tenant: str, file_id: str, content: bytes) -> bytes:
        return content

    def open(self, tenant: str, file_id: str, stored: bytes) -> bytes:
        return stored


class Sealed:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(hmac.new(key, b"interlock files", hashlib.sha256).digest())

    def seal(self, tenant: str, file_id: str, content: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, content, f"{tenant}\0{file_id}".encode())

    def open(self, tenant: str, file_id: str, stored: bytes) -> bytes:
        try:
            return self._aead.decrypt(stored[:NONCE], stored[NONCE:], f"{tenant}\0{file_id}".encode())
        except (InvalidTag, ValueError):
            raise SealError(f"the stored bytes of {file_id} do not open under this key") from None
