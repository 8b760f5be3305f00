from __future__ import annotations

from interlock.cache.entry import CachedAnswer
from interlock.cache.memory import MemoryCache


def test_memory_tier_is_bounded_in_bytes_and_evicts_least_recently_used() -> None:
    now = [0.0]
    cache = MemoryCache(max_bytes=1000, max_entry_bytes=600, clock=lambda: now[0])
    for i in range(3):
        assert cache.put(f"k{i}", CachedAnswer("json", body=b"x" * 200), ttl=60)
    cache.get("k0")  # k0 is now the most recently used
    cache.put("k3", CachedAnswer("json", body=b"x" * 200), ttl=60)
    assert cache.bytes <= 1000
    assert cache.get("k1") is None and cache.get("k0") is not None
    assert not cache.put("huge", CachedAnswer("json", body=b"x" * 700), ttl=60)


def test_memory_tier_expires_entries() -> None:
    now = [0.0]
    cache = MemoryCache(max_bytes=10_000, max_entry_bytes=10_000, clock=lambda: now[0])
    cache.put("k", CachedAnswer("json", body=b"{}"), ttl=5)
    now[0] = 5.0
    assert cache.get("k") is None and cache.bytes == 0
