"""Protocols the package is built around. Imports nothing of ours, so anything may import it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class Clock(Protocol):
    def __call__(self) -> float: ...


class KeyValueStore(Protocol):
    """The shared cache tier: Redis in production, anything with these three calls in tests."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: int) -> None: ...

    async def close(self) -> None: ...


class EventStream(Protocol):
    """Server-sent event payloads (the bytes after `data: `), without the final `[DONE]`."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...


JSON = dict[str, Any]
