"""MiniLM behind the `TextEmbedder` protocol: each call on a worker thread, nothing more.

The semantic cache embeds through this until the embedding service (`service.py`: a
micro-batcher and a store of vectors already computed, shared with /v1/embeddings, drift and
shadow comparison) is wired in its place; both satisfy `TextEmbedder`, so the swap is one line
in app.py.

A call abandoned by its caller's timeout still finishes on its thread (a thread cannot be
cancelled), and the model runs one forward pass at a time: under load, abandoned calls would
queue up and keep a core busy long after their callers gave up. So at most `max_pending` calls
are in flight; one more raises TimeoutError at once, which the semantic cache counts as a
`timeout` and treats as a miss, as the protocol says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from .minilm import DIM, MiniLmEmbedder

MODEL = "all-minilm-l6-v2"


class ThreadedEmbedder:
    def __init__(self, embedder: MiniLmEmbedder, max_pending: int = 4) -> None:
        self._embedder = embedder
        self._max_pending = max_pending
        self._pending = 0

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
        if self._pending >= self._max_pending:
            raise TimeoutError("embedder busy")
        self._pending += 1
        future = asyncio.get_running_loop().run_in_executor(None, self._embedder.embed, list(texts))
        # Counted down when the thread is done, not when the caller stops waiting.
        future.add_done_callback(self._done)
        return await future

    def _done(self, _: object) -> None:
        self._pending -= 1
