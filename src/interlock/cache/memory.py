"""The in-process tier: an LRU bounded in bytes, with per-entry expiry.

Generic over what it holds (anything that says its own size): cached answers here, computed
embeddings in `embeddings/store.py`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    def size(self) -> int:
        """Bytes this value holds, for the bound."""
        ...


V = TypeVar("V", bound=Sized)


class MemoryCache(Generic[V]):
    __slots__ = ("_clock", "_entries", "_max_bytes", "_max_entry", "bytes")

    def __init__(self, max_bytes: int, max_entry_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_bytes = max_bytes
        self._max_entry = min(max_entry_bytes, max_bytes)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, int, V]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, size, answer = item
        if expires <= self._clock():
            del self._entries[key]
            self.bytes -= size
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: str, answer: V, ttl: float) -> bool:
        size = answer.size() + len(key)
        if size > self._max_entry or ttl <= 0:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (self._clock() + ttl, size, answer)
        self.bytes += size
        while self.bytes > self._max_bytes:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.bytes -= evicted
        return True
