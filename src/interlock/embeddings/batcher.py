"""Micro-batching: the texts of concurrent callers embedded in one forward pass, off the event loop.

One text through MiniLM costs 13-40 ms here, and most of that is the fixed cost of a pass that
keeps the matrix units half idle; sixteen short texts padded together cost two to three times
one, not sixteen (`bench/embeddings.py`). So callers do not run the model themselves: each adds
its texts to a queue and awaits a future, and one task on the event loop takes from the queue
whatever has gathered and runs it as one pass on a worker thread.

When a pass starts. As soon as the worker is free and there is work. While a pass runs,
newcomers gather for the next one, so under load batches form without anyone waiting on
purpose. `max_wait_ms` (0 by default) makes an idle worker wait that long from the oldest job's
arrival for `max_batch` texts: it pays only for a burst arriving at an idle model, and every
lone caller pays it (`bench/embeddings/run.py` measures both).

Threads. One by default: on 2 cores the other is the event loop's. With `threads` N, a pass of
at least 8 texts a thread is split across N worker threads (the model must allow N passes at
once: `MiniLmEmbedder(concurrency=N)`, and one BLAS thread each, OPENBLAS_NUM_THREADS=1).

A job is never split across passes: a caller's texts stay in one pass, so a job larger than `max_batch` runs
alone (the model pads by length inside it). Jobs are taken in arrival order.

Bounds. `max_queue` texts may wait; beyond that `embed` raises Unavailable at once rather than
let latency grow without bound. A caller cancelled while it waits leaves the queue (its future
is cancelled, and the worker skips it); a caller cancelled while its pass runs just does not get
the answer: the pass itself is not interruptible, and the other callers in it still need it.
An error in a pass fails every job in it, not the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..errors import Overloaded, Unavailable

Encode = Callable[[list[str]], tuple[NDArray[np.float32], list[int]]]  # texts -> (vectors, tokens per text)
OnBatch = Callable[[int, float], None]  # texts in the pass, seconds it took
MIN_PART = 8  # texts per thread at least when a pass is split: below that, one thread is as fast


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[tuple[NDArray[np.float32], list[int]]]
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    def __init__(
        self,
        encode: Encode,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 0.0,
        max_queue: int = 4096,
        threads: int = 1,
        on_batch: OnBatch | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0 or threads < 1:
            raise ValueError("max_batch, max_queue and threads must be at least 1, max_wait_ms at least 0")
        self._encode = encode
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # texts in self._jobs
        self._work = asyncio.Event()  # set when a job arrives
        self._full = asyncio.Event()  # set when max_batch texts wait
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="interlock-embed")
        self._worker: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for a pass (not the ones in the pass running now)."""
        return self._queued

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="interlock-embed-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(Unavailable("the embedding model is shutting down", retry_after=1))
        self._jobs.clear()
        self._queued = 0
        await asyncio.to_thread(self._pool.shutdown, wait=True)  # a pass may still run: wait off the loop

    async def embed(self, texts: Sequence[str]) -> tuple[NDArray[np.float32], list[int]]:
        """Vectors (len(texts), d) and the word pieces each text took."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self._queued + len(texts) > self._max_queue and self._queued:
            raise Overloaded("the embedding model has too much waiting", retry_after=1)
        job = _Job(texts, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued += len(texts)
        self._work.set()
        if self._queued >= self._max_batch:
            self._full.set()
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._work.wait()
            self._work.clear()
            while self._jobs:
                await self._gather()
                batch = self._take()
                if not batch:
                    continue
                texts = [t for job in batch for t in job.texts]
                started = time.perf_counter()
                try:
                    vectors, tokens = await self._pass(loop, texts)
                except asyncio.CancelledError:
                    for job in batch:
                        job.future.cancel()
                    raise
                except Exception as exc:  # the model's failure is each caller's, not the worker's
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                if self._on_batch is not None:
                    self._on_batch(len(texts), time.perf_counter() - started)
                at = 0
                for job in batch:
                    n = len(job.texts)
                    if not job.future.done():
                        job.future.set_result((vectors[at : at + n], tokens[at : at + n]))
                    at += n

    async def _pass(self, loop: asyncio.AbstractEventLoop, texts: list[str]) -> tuple[NDArray[np.float32], list[int]]:
        """One forward pass; with `threads` > 1 and enough texts, split across the threads (numpy
        lets go of the GIL in its kernels, so the parts run on separate cores)."""
        parts = min(self._threads, len(texts) // MIN_PART)
        if parts <= 1:
            return await loop.run_in_executor(self._pool, self._encode, texts)
        size = -(-len(texts) // parts)
        slices = [texts[i : i + size] for i in range(0, len(texts), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self._pool, self._encode, part) for part in slices))
        return np.concatenate([v for v, _ in done]), [n for _, counts in done for n in counts]

    async def _gather(self) -> None:
        """Wait, at most max_wait from the oldest job's arrival, for a full batch."""
        if self._queued >= self._max_batch or self._max_wait <= 0:
            return
        delay = self._jobs[0].arrived + self._max_wait - time.monotonic()
        if delay <= 0:
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), delay)

    def _take(self) -> list[_Job]:
        """Whole jobs in arrival order up to max_batch texts (at least one job); cancelled ones dropped."""
        batch: list[_Job] = []
        size = 0
        jobs = self._jobs
        while jobs:
            job = jobs[0]
            n = len(job.texts)
            if job.future.done():  # its caller went away while it waited
                jobs.popleft()
                self._queued -= n
                continue
            if batch and size + n > self._max_batch:
                break
            jobs.popleft()
            self._queued -= n
            batch.append(job)
            size += n
        if self._queued < self._max_batch:
            self._full.clear()
        return batch
