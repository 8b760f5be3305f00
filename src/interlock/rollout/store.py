"""Where rollout state lives: Redis for many replicas, a SQLite file for one process.

A model group's rollout is one `Snapshot` (its spec and its state) stored as one JSON blob beside
the state's `revision`. Every write is a compare-and-set on the revision: `save(snapshot,
expected)` succeeds only when the stored revision is still `expected` (0: none stored yet), and
the controller bumps the revision on every change, so a step is applied once even when two
replicas (or a replica and an operator's `pause`) race: the loser re-reads and decides again.

One replica at a time drives the rollouts: the holder of a lease (`SET key owner NX PX`, renewed
by its holder each tick; when the holder stops renewing it expires and the next replica to ask
takes it). The lease only decides who *tries* to advance; correctness rests on the
compare-and-set, so a holder that paused past its lease and wakes up writes nothing stale.

Every replica reads the current state (the driver polls each second), which is how weights
reach every router within one second.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
from redis.asyncio import Redis

from .controller import RolloutState
from .spec import RolloutSpec

_T = TypeVar("_T")


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    spec: RolloutSpec
    state: RolloutState


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Snapshot)


def encode(snapshot: Snapshot) -> bytes:
    return _ENCODER.encode(snapshot)


def decode(blob: bytes | str) -> Snapshot:
    return _DECODER.decode(blob)


class RolloutStore(Protocol):
    async def load(self, model: str) -> Snapshot | None: ...

    async def load_all(self) -> dict[str, Snapshot]: ...

    async def save(self, snapshot: Snapshot, expected_revision: int) -> bool:
        """Write when the stored revision is `expected_revision` (0: nothing stored)."""
        ...

    async def hold_lease(self, owner: str, ttl_s: float) -> bool:
        """Take or renew the driving lease; True when `owner` holds it."""
        ...

    async def release_lease(self, owner: str) -> None: ...

    async def close(self) -> None: ...


# -- Redis -----------------------------------------------------------------------------------------
_CAS = """
local rev = tonumber(redis.call('hget', KEYS[1], 'revision') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('hset', KEYS[1], 'revision', ARGV[2], 'blob', ARGV[3])
redis.call('sadd', KEYS[2], ARGV[4])
return 1
"""
_HOLD = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_LET_GO = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisRolloutStore:
    """Keys: `{prefix}rollout:{model}` (a hash: revision, blob), `{prefix}rollouts` (the set of
    model groups with a rollout), `{prefix}rollout-leader` (the lease). Redis errors propagate:
    the driver skips that tick (weights stay as last read) rather than guess."""

    def __init__(self, redis: Redis, prefix: str = "interlock:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._index = f"{prefix}rollouts"
        self._lease = f"{prefix}rollout-leader"
        self._cas = redis.register_script(_CAS)
        self._hold = redis.register_script(_HOLD)
        self._let_go = redis.register_script(_LET_GO)

    def _key(self, model: str) -> str:
        return f"{self._prefix}rollout:{model}"

    async def load(self, model: str) -> Snapshot | None:
        blob = await self._redis.hget(self._key(model), "blob")
        return decode(blob) if blob is not None else None

    async def load_all(self) -> dict[str, Snapshot]:
        members = await self._redis.smembers(self._index)
        models = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        if not models:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for m in models:
                pipe.hget(self._key(m), "blob")
            blobs = await pipe.execute()
        return {m: decode(b) for m, b in zip(models, blobs, strict=True) if b is not None}

    async def save(self, snapshot: Snapshot, expected_revision: int) -> bool:
        model = snapshot.state.model
        args: list[int | bytes | str] = [expected_revision, snapshot.state.revision, encode(snapshot), model]
        return bool(await self._cas(keys=[self._key(model), self._index], args=args))

    async def hold_lease(self, owner: str, ttl_s: float) -> bool:
        return bool(await self._hold(keys=[self._lease], args=[owner, max(1, int(ttl_s * 1000))]))

    async def release_lease(self, owner: str) -> None:
        await self._let_go(keys=[self._lease], args=[owner])

    async def close(self) -> None:
        """The Redis client belongs to the caller; nothing of ours to close."""


# -- SQLite ----------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (model TEXT PRIMARY KEY, revision INTEGER NOT NULL, blob TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollout_lease (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL,
                                          until REAL NOT NULL);
"""


class SqliteRolloutStore:
    """The same on a local file, for a single process without Redis: a restart resumes from it.
    Calls run on a worker thread (one at a time), never on the event loop. The lease works across
    processes sharing the file too, on the wall clock."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._clock = clock
        self._lock = asyncio.Lock()

    async def _run(self, fn: Callable[[], _T]) -> _T:
        async with self._lock:
            return await asyncio.to_thread(fn)

    async def load(self, model: str) -> Snapshot | None:
        row = await self._run(
            lambda: self._db.execute("SELECT blob FROM rollouts WHERE model = ?", (model,)).fetchone()
        )
        return decode(row[0]) if row is not None else None

    async def load_all(self) -> dict[str, Snapshot]:
        rows = await self._run(lambda: self._db.execute("SELECT model, blob FROM rollouts ORDER BY model").fetchall())
        return {model: decode(blob) for model, blob in rows}

    async def save(self, snapshot: Snapshot, expected_revision: int) -> bool:
        model, revision, blob = snapshot.state.model, snapshot.state.revision, encode(snapshot).decode()

        def write() -> bool:
            if expected_revision == 0:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO rollouts (model, revision, blob) VALUES (?, ?, ?)", (model, revision, blob)
                )
            else:
                cur = self._db.execute(
                    "UPDATE rollouts SET revision = ?, blob = ? WHERE model = ? AND revision = ?",
                    (revision, blob, model, expected_revision),
                )
            return cur.rowcount == 1

        return await self._run(write)

    async def hold_lease(self, owner: str, ttl_s: float) -> bool:
        def hold() -> bool:
            now = self._clock()
            self._db.execute(
                "INSERT INTO rollout_lease (id, owner, until) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
                " SET owner = excluded.owner, until = excluded.until"
                " WHERE rollout_lease.owner = excluded.owner OR rollout_lease.until <= ?",
                (owner, now + ttl_s, now),
            )
            row = self._db.execute("SELECT owner FROM rollout_lease WHERE id = 1").fetchone()
            return row is not None and row[0] == owner

        return await self._run(hold)

    async def release_lease(self, owner: str) -> None:
        await self._run(lambda: self._db.execute("DELETE FROM rollout_lease WHERE id = 1 AND owner = ?", (owner,)))

    async def close(self) -> None:
        await self._run(self._db.close)
