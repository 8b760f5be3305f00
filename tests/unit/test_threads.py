from __future__ import annotations

import threading
from pathlib import Path

from interlock.retrieval.sealed import Sealed
from interlock.threads import INLINE_BYTES, sized
from tests.unit.retrieval.conftest import ADMIN, make_parts


async def test_small_work_runs_inline_and_large_work_on_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    assert await sized(INLINE_BYTES, threading.get_ident) == loop_thread
    assert await sized(INLINE_BYTES + 1, threading.get_ident) != loop_thread


class Recording(Sealed):
    """The real AES-GCM seal, noting the thread each call ran on."""

    def __init__(self) -> None:
        super().__init__(b"s" * 32)
        self.threads: list[int] = []

    def seal(self, tenant: str, file_id: str, content: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        return super().seal(tenant, file_id, content)

    def open(self, tenant: str, file_id: str, stored: bytes) -> bytes:
        self.threads.append(threading.get_ident())
        return super().open(tenant, file_id, stored)


async def test_a_large_upload_is_sealed_and_opened_off_the_event_loop(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "v")
    seal = parts.service._seal = Recording()
    await parts.catalog.start()
    try:
        small = await parts.service.upload(ADMIN, "small.txt", "assistants", b"x" * 100)
        large = await parts.service.upload(ADMIN, "large.txt", "assistants", b"x" * (INLINE_BYTES * 2))
        assert (await parts.service.content(ADMIN, large.id))[1] == b"x" * (INLINE_BYTES * 2)
        assert (await parts.service.content(ADMIN, small.id))[1] == b"x" * 100
        here = threading.get_ident()
        assert [t == here for t in seal.threads] == [True, False, False, True]
    finally:
        await parts.catalog.close()
