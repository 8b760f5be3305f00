"""The gateway's one embedder: the precomputed store first, then the micro-batched model.

Everything that embeds goes through here: `/v1/embeddings` on a MiniLM deployment
(`providers/minilm.py`), the semantic cache, drift's topic feature and shadow comparison. So a
text embedded for one of them is a store hit for the others, and all of their texts share the
batches of one model, loaded once.

Callers on the event loop await `embed`; callers on worker threads (the drift monitor's thread,
shadow comparison's) call `embed_blocking`, which hands the call to the loop and waits, so their
texts join the same batches rather than running a second model beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import numpy as np

from .batcher import MicroBatcher
from .minilm import DIM, F32, MiniLmEmbedder
from .store import EmbeddingStore

MODEL = "all-minilm-l6-v2"


class EmbeddingService:
    def __init__(
        self,
        embedder: MiniLmEmbedder,
        batcher: MicroBatcher,
        store: EmbeddingStore | None,
        *,
        model: str = MODEL,
        timeout_s: float = 30.0,
    ) -> None:
        self._embedder = embedder
        self._batcher = batcher
        self._store = store
        self._model = model
        self._timeout = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def model(self) -> str:
        return self._model

    @property
    def dimensions(self) -> int:
        return DIM

    @property
    def queued(self) -> int:
        return self._batcher.queued

    @property
    def ready(self) -> bool:
        return self._loop is not None

    async def start(self) -> None:
        await asyncio.to_thread(self._embedder.load)
        self._batcher.start()
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._loop = None
        await self._batcher.close()

    async def embed(self, texts: Sequence[str]) -> F32:
        return (await self.embed_counted(texts))[0]

    async def embed_counted(self, texts: Sequence[str]) -> tuple[F32, list[int]]:
        """Unit rows (len(texts), 384) and each text's word pieces. TimeoutError past `timeout_s`."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        tokens = [0] * len(texts)
        found = await self._store.get(self._model, texts) if self._store is not None else [None] * len(texts)
        wanted: dict[str, list[int]] = {}  # each missing text once, however often it is asked for
        for i, entry in enumerate(found):
            if entry is None:
                wanted.setdefault(texts[i], []).append(i)
            else:
                out[i] = entry.vector
                tokens[i] = entry.tokens
        if wanted:
            missing = list(wanted)
            async with asyncio.timeout(self._timeout):
                vectors, counts = await self._batcher.embed(missing)
            if self._store is not None:
                self._store.put(self._model, missing, vectors, counts)
            for text, vector, count in zip(missing, vectors, counts, strict=True):
                for i in wanted[text]:
                    out[i] = vector
                    tokens[i] = count
        return out, tokens

    def embed_blocking(self, texts: Sequence[str]) -> F32:
        """`embed` for a worker thread (never the loop's own: it would wait for itself)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the embedding service is not started")
        return asyncio.run_coroutine_threadsafe(self.embed(texts), loop).result(self._timeout + 1)

    def blocking(self) -> Blocking:
        """This service for a caller that wants `embed(texts)` without awaiting (drift's monitor)."""
        return Blocking(self)

    async def warm(self, texts: Iterable[str], batch: int = 256) -> tuple[int, int]:
        """Embed and store `texts` (the warm command, `embeddings.warm_file`): (distinct texts per
        chunk now stored, of them the ones Redis did not take). Texts stored already are skipped."""
        if self._store is None:
            raise RuntimeError("warming needs the precomputed store (embeddings.store)")
        stored = failed = 0
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) >= batch:
                n, bad = await self._warm(chunk)
                stored, failed, chunk = stored + n, failed + bad, []
        if chunk:
            n, bad = await self._warm(chunk)
            stored, failed = stored + n, failed + bad
        return stored, failed

    async def _warm(self, chunk: list[str]) -> tuple[int, int]:
        """One chunk: the texts not stored yet are embedded and stored, awaited."""
        assert self._store is not None
        unique = list(dict.fromkeys(chunk))
        found = await self._store.get(self._model, unique)
        missing = [text for text, entry in zip(unique, found, strict=True) if entry is None]
        if not missing:
            return len(unique), 0
        vectors, counts = await self._batcher.embed(missing)
        taken = await self._store.put_now(self._model, missing, vectors, counts)
        return len(unique), 0 if taken else len(missing)


class Blocking:
    """`embed` as a plain call, from a worker thread."""

    __slots__ = ("_service",)

    def __init__(self, service: EmbeddingService) -> None:
        self._service = service

    def embed(self, texts: Sequence[str]) -> F32:
        return self._service.embed_blocking(texts)
