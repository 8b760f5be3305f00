"""The semantic cache shared by workers and replicas: one Redis stream of entries and drops.

Each process keeps its own indexes (cache/semantic_memory.py); Redis carries what they learn.
An answered question is appended to the stream `<prefix>semantic` (XADD, trimmed to `maxlen`,
so Redis holds a bounded log); every process reads the stream from its start when it starts (the
rebuild) and then follows it with a blocking XREAD, adding each entry to its own index. A stream
rather than pub/sub because it is both: a late starter reads what was written before it, and a
follower that lost Redis for a while resumes from the last id it read, missing nothing that is
still retained. An invalidation is a `Drop` in the same stream, so a rebuild applies adds and
drops in the order they happened, and trimming (oldest first) can never keep an entry while
losing the drop that came after it.

A process reads its own messages back: entries it knows already are skipped by id, and its own
drops (applied when they were made) by its origin id.

Redis failing is never an error for a request: a write that fails or times out is dropped and
counted (`interlock_cache_errors_total{tier="semantic"}`), the follower retries after
`retry_after_s`, and in the meantime each process answers from its own index. Writes leave the
response path as background tasks, bounded in number, like the exact cache's Redis tier.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..config import RedisSettings
from ..lifecycle import Background
from ..observe.metrics import Metrics
from .semantic_entry import Added, Drop, Message, decode, encode
from .semantic_memory import SemanticMemory

TIER = "semantic"
MAX_PENDING_WRITES = 1024
BLOCK_MS = 500  # one XREAD waits this long for news; the client's socket timeout must exceed it
READ_COUNT = 500
START_BUDGET_S = 5.0  # the rebuild at start gives up after this long and goes on following
FIELD = b"m"
log = logging.getLogger("interlock.cache")


class SemanticShare:
    def __init__(
        self,
        client: Redis,
        settings: RedisSettings,
        memories: Mapping[str, SemanticMemory],
        metrics: Metrics,
        maxlen: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._key = settings.prefix + "semantic"
        self._timeout = settings.timeout_ms / 1000
        self._retry_after = settings.retry_after_s
        self._memories = memories
        self._metrics = metrics
        self._maxlen = maxlen
        self._clock = clock
        self._origin = secrets.token_hex(8)
        self._last = b"0-0"  # the id of the last message read
        self._pending: set[asyncio.Task[None]] = set()
        self._follower = Background("semantic-cache-follow", self._follow)
        self.read = 0  # messages applied, for tests and the log

    # -- writing ----------------------------------------------------------------------------------
    def publish_later(self, message: Message) -> None:
        if len(self._pending) >= MAX_PENDING_WRITES:
            self._metrics.cache_error(TIER, "publish_dropped")
            return
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def drop_later(self, group: str) -> None:
        self.publish_later(Drop(group, self._origin))

    async def _publish(self, message: Message) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.xadd(self._key, {FIELD: encode(message)}, maxlen=self._maxlen, approximate=True)
        except (RedisError, OSError, TimeoutError):
            self._metrics.cache_error(TIER, "publish")

    # -- reading ----------------------------------------------------------------------------------
    def _apply(self, raw: bytes | None) -> None:
        message = decode(raw) if raw is not None else None
        if message is None:
            return
        if isinstance(message, Added):
            memory = self._memories.get(message.entry.group)
            if memory is not None:
                memory.add(message.entry, self._clock())
        elif message.origin != self._origin:
            memory = self._memories.get(message.group)
            if memory is not None:
                memory.clear()
        self.read += 1

    async def _read(self, block_ms: int | None) -> int:
        """Apply the messages after the last one read; how many there were."""
        reply: Any = await self._client.xread({self._key: self._last}, count=READ_COUNT, block=block_ms)
        n = 0
        for _stream, messages in reply or ():  # [[key, [(id, {field: value}), ...]]]
            for message_id, fields in messages:
                self._last = message_id
                self._apply(fields.get(FIELD))
                n += 1
        return n

    async def start(self) -> None:
        """Rebuild from what the stream holds (within START_BUDGET_S), then follow it."""
        try:
            async with asyncio.timeout(START_BUDGET_S):
                while await self._read(None) == READ_COUNT:
                    pass
        except (RedisError, OSError, TimeoutError):
            self._metrics.cache_error(TIER, "rebuild")
            log.warning("semantic cache: rebuild from Redis incomplete; following from where it stopped")
        self._follower.start()

    async def _follow(self) -> None:
        while True:
            try:
                await self._read(BLOCK_MS)
            except (RedisError, OSError, TimeoutError):  # one bad read: Redis is down or slow
                self._metrics.cache_error(TIER, "follow")
                await asyncio.sleep(self._retry_after)

    async def close(self) -> None:
        """Stop following; let writes in flight land (for a second at most)."""
        await self._follower.stop()
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
