"""The `store` fixture: a started SQLite key store that counts its lookups by hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.keystore import CountingStore


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = CountingStore(tmp_path / "keys.db")
    await s.start()
    yield s
    await s.close()
