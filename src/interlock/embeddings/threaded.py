"""MiniLM behind the `TextEmbedder` protocol: each call on a worker thread, nothing more.

The semantic cache embeds through this until the embedding service (`service.py`: a
micro-batcher and a store of vectors already computed, shared with /v1/embeddings, drift and
shadow comparison) is wired in its place; both satisfy `TextEmbedder`, so the swap is one line
in app.py. A call abandoned by its caller's timeout still finishes on its thread: the model's
own semaphore bounds how many forward passes run at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from .minilm import DIM, MiniLmEmbedder

MODEL = "all-minilm-l6-v2"


class ThreadedEmbedder:
    def __init__(self, embedder: MiniLmEmbedder) -> None:
        self._embedder = embedder

    @property
    def model(self) -> str:
        return MODEL

    @property
    def dimensions(self) -> int:
        return DIM

    async def start(self) -> None:
        """Load the weights before the first request (about a second), off the event loop."""
        await asyncio.to_thread(self._embedder.load)

    async def embed(self, texts: Sequence[str]) -> NDArray[Any]:
        return await asyncio.to_thread(self._embedder.embed, list(texts))
