"""The shared tier: Redis, with a timeout in milliseconds and automatic degrade and recovery.

A failure or a timeout marks the tier down for `retry_after_s`; during that time lookups are
misses and writes are dropped, so a dead Redis costs the hot path nothing. The first call after
that window tries again, which is the whole recovery. Writes leave the response path as
background tasks, bounded in number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..config import RedisSettings
from ..observe.metrics import Metrics

MAX_PENDING_WRITES = 1024
TIER = "redis"


class RedisTier:
    def __init__(
        self,
        client: Redis,
        settings: RedisSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        tier: str = TIER,
    ) -> None:
        self._client = client
        self._tier = tier  # the metrics' name for it: the response cache's, or the embedding store's
        self._prefix = settings.prefix
        self._timeout = settings.timeout_ms / 1000
        self._retry_after = settings.retry_after_s
        self._metrics = metrics
        self._clock = clock
        self._down_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def healthy(self) -> bool:
        return self._clock() >= self._down_until

    def _failed(self, op: str) -> None:
        self._metrics.cache_error(self._tier, op)
        self._down_until = self._clock() + self._retry_after

    async def get(self, key: str) -> bytes | None:
        if not self.healthy:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                value = await self._client.get(self._prefix + key)
        except (RedisError, OSError, TimeoutError):
            self._failed("get")
            return None
        return value if isinstance(value, bytes) else None

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """One round trip (MGET) for several keys; all misses when Redis is down."""
        if not self.healthy or not keys:
            return [None] * len(keys)
        try:
            async with asyncio.timeout(self._timeout):
                values = await self._client.mget([self._prefix + key for key in keys])
        except (RedisError, OSError, TimeoutError):
            self._failed("get")
            return [None] * len(keys)
        return [v if isinstance(v, bytes) else None for v in values]

    def set_later(self, key: str, value: bytes, ttl: int) -> None:
        if not self.healthy or ttl <= 0:
            return
        if len(self._pending) >= MAX_PENDING_WRITES:
            self._metrics.cache_error(self._tier, "set_dropped")
            return
        task = asyncio.get_running_loop().create_task(self._set(key, value, ttl))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.set(self._prefix + key, value, ex=ttl)
        except (RedisError, OSError, TimeoutError):
            self._failed("set")

    async def set_many(self, items: list[tuple[str, bytes]], ttl: int) -> bool:
        """Several writes in one pipeline, awaited (bulk loads, not the response path)."""
        if ttl <= 0 or not items:
            return True
        try:
            async with asyncio.timeout(max(self._timeout, 5.0)):
                pipe = self._client.pipeline(transaction=False)
                for key, value in items:
                    pipe.set(self._prefix + key, value, ex=ttl)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self._failed("set")
            return False
        return True

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """Let writes in flight land (for a second at most). The client is its maker's to close."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
