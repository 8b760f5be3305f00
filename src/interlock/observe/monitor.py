"""Drift monitoring in the running gateway: sample exchanges off the hot path, keep live profiles
per model group and version, share them across workers and replicas, compare with a reference.

The request path pays for one call to `offer()`: a random draw, a per-second cap and an append
to a bounded deque (about a microsecond; an exchange over the cap is counted in a plain int,
handed to the metric when the next one is taken); the recorder calls its halves, `admit()` then `put()`,
so that an exchange over the cap costs no more than the cap's test. A worker task takes what was
offered in batches and, on a thread, reads the features (`drift.observe`: lengths, language,
refusal, finish reason, confidence, latency, PII rate) and, for a further sample, embeds the
user's text with all-MiniLM-L6-v2. Nothing here can fail a request: a full queue drops the
observation (counted).

Live profiles are sliding windows: `window_s` is cut into `SLICES` slices, each a `Profile`, and
the live view merges the slices that are still inside the window. With Redis every process
publishes its slices (one hash per slice, one field per process, expiring with the window) and
any process reads the merged view of all of them; without Redis the view is the process's own.

References come from a profile file (`interlock drift baseline --jsonl`) named in the config, or
from Redis, where `interlock drift baseline --live` stores the merged live window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..lifecycle import Background
from .drift import DriftConfig, DriftReport, LanguageIdentifier, Profile, compare, observe, topic_text

log = logging.getLogger("interlock.drift")
T = TypeVar("T")

SLICES = 10  # a window is this many slices; the view slides by one slice at a time
MAX_QUEUE = 4096  # offered exchanges waiting for the worker
BATCH = 256
RESERVOIR = 128  # embeddings kept per slice and process, and in the merged view (the same, to merge)
REFERENCE_KEY = "ref"
ALL = "all"  # the version label of a group-wide report
NO_VERSION = "_none"  # what a cache hit is offered under (no deployment answered it)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> Any: ...


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    sample: float = 1.0  # share of requests observed
    max_per_s: int = 200  # and at most this many a second per process
    embed_sample: float = 0.1  # share of observed requests whose prompt is embedded
    embed_max_per_s: int = 5  # at most this many embeddings a second per process (each 10-40 ms)
    window_s: float = 300.0
    evaluate_s: float = 10.0
    references: Mapping[str, str] = field(default_factory=dict)  # model group -> profile file


@dataclass(slots=True)
class _Offered:
    model: str
    version: str
    request: dict[str, Any]
    response: bytes | None
    latency_ms: float
    pii_count: int | None
    confidence: float | None
    embed: bool
    at: float


class DriftMonitor:
    def __init__(
        self,
        settings: MonitorSettings,
        redis: Redis | None,
        prefix: str,
        embedder: Embedder | None,
        config: DriftConfig | None = None,
        on_report: Callable[[str, str, DriftReport], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._prefix = prefix
        self._embedder = embedder
        self._config = config or DriftConfig()
        self._on_report = on_report
        self._on_dropped = on_dropped
        self._clock = clock
        self._random = (rng or random.Random()).random
        self._slice_s = settings.window_s / SLICES
        self._queue: deque[_Offered] = deque()
        self._wake = asyncio.Event()
        self._second = 0
        self._taken = 0
        self._embedded = 0
        self._dropped = 0  # not observed since on_dropped was last told (`_tell_dropped`)
        self._lock = threading.Lock()  # the worker thread and the publisher share the slices
        self._slices: dict[tuple[str, str, int], Profile] = {}
        self._dirty: set[tuple[str, str, int]] = set()
        self._language: LanguageIdentifier | None = None
        self._references: dict[str, Profile] = {}
        self.reports: dict[tuple[str, str], DriftReport] = {}
        self._tasks = (Background("drift worker", self._work), Background("drift evaluation", self._evaluate_forever))
        self._me = f"{os.getpid()}-{os.urandom(3).hex()}"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="interlock-drift", initializer=_lowest_priority)

    async def _off(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy work (features, embeddings, the tests) on the monitor's own thread, at the
        lowest scheduling priority: on a busy machine it takes what the request path leaves."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    # -- the request path -------------------------------------------------------------------

    def offer(
        self,
        model: str,
        version: str,
        request: dict[str, Any],
        response: bytes | None,
        latency_ms: float,
        pii_count: int | None = None,
        confidence: float | None = None,
    ) -> None:
        """Maybe keep this exchange for the worker. Never blocks, never raises."""
        embed = self.admit()
        if embed is not None:
            self.put(model, version, request, response, latency_ms, pii_count, confidence, embed)

    def admit(self) -> bool | None:
        """`offer`'s first half, for a caller that would have work to do to build the exchange:
        the sample draw and the per-second cap (a drop is counted). None: not taken, build
        nothing; else whether to embed it, to hand to `put` with the exchange at once (no await
        between). At 10,000 requests a second and the default cap of 200, 98 % stop here."""
        settings = self._settings
        if settings.sample < 1.0 and self._random() >= settings.sample:
            return None
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second, self._taken, self._embedded = second, 0, 0
        if self._taken >= settings.max_per_s or len(self._queue) >= MAX_QUEUE:
            self._dropped += 1  # a plain count: a metric's inc here would cost more than the test
            return None
        self._taken += 1
        embed = False
        if self._embedder is not None and self._embedded < settings.embed_max_per_s:
            embed = self._random() < settings.embed_sample
            self._embedded += embed
        return embed

    def put(
        self,
        model: str,
        version: str,
        request: dict[str, Any],
        response: bytes | None,
        latency_ms: float,
        pii_count: int | None,
        confidence: float | None,
        embed: bool,
    ) -> None:
        """Queue an exchange `admit` took."""
        now = self._clock()
        self._queue.append(_Offered(model, version, request, response, latency_ms, pii_count, confidence, embed, now))
        self._wake.set()
        self._tell_dropped()

    def _tell_dropped(self) -> None:
        """Hand the drops counted since the last time to `on_dropped`: at the first exchange
        taken in each second (the one after a second of drops), at each evaluation, at close."""
        if self._dropped:
            if self._on_dropped is not None:
                self._on_dropped(self._dropped)
            self._dropped = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._language = await asyncio.to_thread(LanguageIdentifier)
        for model, path in self._settings.references.items():
            self._references[model] = Profile.from_bytes(await asyncio.to_thread(Path(path).read_bytes))
        for task in self._tasks:
            task.start()

    async def close(self) -> None:
        for task in self._tasks:
            await task.stop()
        self._tell_dropped()  # the last second's drops, not lost with the process
        await self.publish()  # the Redis client is its maker's to close
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.05)  # let a batch gather
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                try:
                    await self._off(self._process, batch)
                except Exception:  # a bad exchange must not stop monitoring
                    log.exception("drift: could not process %d observations", len(batch))

    def _process(self, batch: list[_Offered]) -> None:
        vectors: dict[int, Any] = {}
        wanted = [i for i, item in enumerate(batch) if item.embed]
        if wanted and self._embedder is not None:
            embedded = self._embedder.embed([topic_text(batch[i].request) for i in wanted])
            vectors = dict(zip(wanted, embedded, strict=True))
        observations = []
        for i, item in enumerate(batch):
            response = _json(item.response)
            observations.append(
                observe(
                    item.request,
                    response,
                    latency_ms=item.latency_ms,
                    pii_count=item.pii_count,
                    embedding=vectors.get(i),
                    confidence=item.confidence,
                    language=self._language,
                )
            )
        with self._lock:
            for item, observation in zip(batch, observations, strict=True):
                key = (item.model, item.version, int(item.at // self._slice_s))
                profile = self._slices.get(key)
                if profile is None:
                    profile = self._slices[key] = Profile(reservoir=RESERVOIR)
                profile.observe(observation)
                self._dirty.add(key)

    # -- views ------------------------------------------------------------------------------

    def _current_slices(self) -> range:
        now = int(self._clock() // self._slice_s)
        return range(now - SLICES + 1, now + 1)

    def _local(self) -> dict[tuple[str, str, int], bytes]:
        """This process's slices still in the window, as blobs; older ones are dropped."""
        first = self._current_slices().start
        with self._lock:
            for key in [k for k in self._slices if k[2] < first]:
                del self._slices[key]
            return {k: p.to_bytes() for k, p in self._slices.items()}

    def _key(self, model: str, version: str, index: int) -> str:
        return f"{self._prefix}{model}|{version}|{index}"

    async def publish(self) -> None:
        """Write this process's slices that changed to Redis."""
        if self._redis is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        blobs = {k: v for k, v in (await asyncio.to_thread(self._local)).items() if k in dirty}
        if not blobs:
            return
        ttl_ms = int(self._settings.window_s * 2000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (model, version, index), blob in blobs.items():
                    key = self._key(model, version, index)
                    pipe.hset(key, self._me, blob)
                    pipe.pexpire(key, ttl_ms)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("drift: could not publish live profiles (%s)", type(exc).__name__)
            with self._lock:
                self._dirty |= set(blobs)

    async def live(self, model: str, version: str | None = None) -> Profile:
        """The live window: every process's slices (with Redis) or this one's, merged. `version`
        None merges every version of the group."""
        merged = Profile(reservoir=RESERVOIR)
        blobs: list[bytes] = []
        window = self._current_slices()
        if self._redis is not None:
            try:
                versions = [version] if version is not None else await self._versions(model)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for v in versions:
                        for index in window:
                            pipe.hvals(self._key(model, v, index))
                    for values in await pipe.execute():
                        blobs += values
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "drift: live profiles unavailable from Redis (%s); using this process's", type(exc).__name__
                )
                blobs = []
        if not blobs:
            blobs = [
                b
                for (m, v, _), b in (await asyncio.to_thread(self._local)).items()
                if m == model and (version is None or v == version)
            ]
        for blob in blobs:
            merged.merge(Profile.from_bytes(blob))
        return merged

    async def _versions(self, model: str) -> list[str]:
        assert self._redis is not None
        seen = set(self.versions(model))
        async for key in self._redis.scan_iter(match=f"{self._prefix}{model}|*", count=500):
            parts = key.decode().rsplit("|", 2)
            if len(parts) == 3:
                seen.add(parts[1])
        return sorted(seen)

    def versions(self, model: str) -> list[str]:
        """The versions of a group this process has observed in the window."""
        with self._lock:
            return sorted({v for (m, v, _) in self._slices if m == model})

    async def reference(self, model: str) -> Profile | None:
        """The model group's reference: from Redis when one was stored there, else the file."""
        if self._redis is not None:
            try:
                blob = await self._redis.get(f"{self._prefix}{REFERENCE_KEY}|{model}")
            except (RedisError, OSError, TimeoutError):
                blob = None
            if isinstance(blob, bytes) and blob:  # the client does not decode responses
                return Profile.from_bytes(blob)
        return self._references.get(model)

    async def store_reference(self, model: str, profile: Profile) -> None:
        if self._redis is None:
            raise RuntimeError("no Redis to store the reference in")
        await self._redis.set(f"{self._prefix}{REFERENCE_KEY}|{model}", profile.to_bytes())

    async def report(self, model: str, version: str | None = None) -> DriftReport | None:
        reference = await self.reference(model)
        if reference is None:
            return None
        live = await self.live(model, version)
        return await self._off(compare, reference, live, self._config)

    async def compare_versions(self, model: str, reference_version: str, version: str) -> DriftReport:
        """One version's live window tested against another's (a rollout's candidate against its
        stable version): the same window, so the same traffic, whatever the reference file holds."""
        reference = await self.live(model, reference_version)
        live = await self.live(model, version)
        return await self._off(compare, reference, live, self._config)

    # -- evaluation -------------------------------------------------------------------------

    async def evaluate(self) -> None:
        """Publish, then compare each model group with its reference: the whole group (version
        `ALL`: cache hits have no version) and, while more than one version serves it (a
        rollout), each version on its own."""
        self._tell_dropped()
        await self.publish()
        with self._lock:
            models = {m for (m, _, _) in self._slices} | set(self._references)
        for model in sorted(models):
            versions = await self._versions(model) if self._redis is not None else self.versions(model)
            real = [v for v in versions if v != NO_VERSION]
            for version in [ALL, *(real if len(real) > 1 else [])]:
                report = await self.report(model, None if version == ALL else version)
                if report is None:
                    break  # no reference for this group
                self.reports[(model, version)] = report
                if self._on_report is not None:
                    self._on_report(model, version, report)

    async def _evaluate_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.evaluate_s)
            try:
                await self.evaluate()
            except Exception:  # monitoring must outlive a bad evaluation
                log.exception("drift: evaluation failed")


def _lowest_priority() -> None:
    """Nice 19 for the calling thread (Linux schedules threads on their own: `setpriority` with a
    thread id changes that thread only). Elsewhere, or without the right, it stays as it is."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _json(body: bytes | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
