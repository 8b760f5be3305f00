"""The real MiniLM embedder behind `TextEmbedder` (on worker threads), for tests of its callers.

One model per test session: loading it takes about a second. `Slow` is the same embedder made
to answer late, the way a loaded machine or a long queue in front of the model would. (The
gateway embeds through `interlock.embeddings.service.EmbeddingService`; these tests want the
model alone, without its batcher's wait or its store.)"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from interlock.embeddings.minilm import DIM, MiniLmEmbedder


class Threaded:
    """MiniLM's `embed` on a worker thread."""

    def __init__(self, model: MiniLmEmbedder) -> None:
        self._model = model

    @property
    def model(self) -> str:
        return "all-minilm-l6-v2"

    @property
    def dimensions(self) -> int:
        return DIM

    async def embed(self, texts: Sequence[str]) -> NDArray[Any]:
        return await asyncio.to_thread(self._model.embed, list(texts))


@functools.cache
def minilm() -> Threaded:
    model = MiniLmEmbedder()
    model.load()
    return Threaded(model)


class Slow:
    """`minilm()` answering after `delay` seconds more."""

    def __init__(self, delay: float) -> None:
        self._inner = minilm()
        self._delay = delay
        self.calls = 0

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def dimensions(self) -> int:
        return self._inner.dimensions

    async def embed(self, texts: Sequence[str]) -> NDArray[Any]:
        self.calls += 1
        await asyncio.sleep(self._delay)
        return await self._inner.embed(texts)
