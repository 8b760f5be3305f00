"""The semantic cache's Redis stream, in process against a redis-server of the test's own: a
late starter rebuilds from it, a running process follows it, drops travel the same way, and
Redis going away is counted, never raised, and recovered from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from interlock.cache.entry import CachedAnswer
from interlock.cache.semantic_entry import Added, SemanticEntry, vector_bytes
from interlock.cache.semantic_memory import SemanticMemory
from interlock.cache.semantic_share import SemanticShare
from interlock.config import RedisSettings
from interlock.observe.metrics import Metrics
from interlock.stores.redis import redis_client
from tests.support.procs import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[RedisServer]:
    redis = RedisServer()
    yield redis
    redis.stop()


class Process:
    """What one gateway process holds: its memory of group `m`, its share, its metrics."""

    def __init__(self, url: str) -> None:
        self.client: Redis = redis_client(url, 1.0)
        self.memory = SemanticMemory(4, 100, 100)
        self.metrics = Metrics(CollectorRegistry())
        settings = RedisSettings(url=url, timeout_ms=200, retry_after_s=0.1)
        self.share = SemanticShare(self.client, settings, {"m": self.memory}, self.metrics, maxlen=1000)

    def errors(self, op: str) -> float:
        labels = {"tier": "semantic", "op": op}
        return self.metrics.registry.get_sample_value("interlock_cache_errors_total", labels) or 0.0

    async def close(self) -> None:
        await self.share.close()
        await self.client.aclose()


@pytest.fixture
async def processes(server: RedisServer) -> AsyncIterator[Callable[[], Process]]:
    made: list[Process] = []

    def make() -> Process:
        made.append(Process(server.url))
        return made[-1]

    yield make
    for p in made:
        await p.close()


def entry(entry_id: str) -> SemanticEntry:
    vector = vector_bytes(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    return SemanticEntry(entry_id, "m", "p", "q", vector, CachedAnswer("json", b"{}"), time.time() + 60)


def known(p: Process) -> set[str]:
    return {e.id for e, _ in p.memory.search("p", np.array([1.0, 0, 0, 0], dtype=np.float32), 10, time.time())}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_a_late_starter_rebuilds_and_a_running_process_follows(processes: Callable[[], Process]) -> None:
    first = processes()
    await first.share.start()
    first.share.publish_later(Added(entry("a")))
    await until(lambda: first.share.read >= 1)  # written: it read its own entry back
    late = processes()
    await late.share.start()
    assert known(late) == {"a"}  # rebuilt before start returned
    first.share.publish_later(Added(entry("b")))
    await until(lambda: known(late) == {"a", "b"})
    first.memory.add(entry("c"), time.time())
    first.memory.clear()  # as an invalidation does locally, then:
    first.share.drop_later("m")
    await until(lambda: known(late) == set())
    first.memory.add(entry("d"), time.time())  # after its own drop: reading that drop back keeps it
    await until(lambda: first.share.read >= 3)
    assert known(first) == {"d"}


async def test_redis_going_away_is_counted_not_raised_and_recovered(
    server: RedisServer, processes: Callable[[], Process]
) -> None:
    writer, reader = processes(), processes()
    await writer.share.start()
    await reader.share.start()
    server.stop()
    writer.share.publish_later(Added(entry("lost")))
    await until(lambda: writer.errors("publish") >= 1 and reader.errors("follow") >= 1)
    down = processes()
    await down.share.start()  # no Redis at start: it starts anyway, and follows once Redis is back
    assert down.errors("rebuild") == 1
    server.start()
    await asyncio.sleep(0.3)  # past retry_after_s: the followers read again
    writer.share.publish_later(Added(entry("after")))
    await until(lambda: known(reader) == {"after"} and known(down) == {"after"})
