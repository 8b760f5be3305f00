"""What the API key tests share: the server secret keys are hashed with, and a SQLite key store
that counts its lookups by hash."""

from __future__ import annotations

from interlock.security.keystore import SQLiteKeyStore

SECRET = b"0123456789abcdef-server-secret"


class CountingStore(SQLiteKeyStore):
    lookups = 0

    async def by_hash(self, digest: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().by_hash(digest)
