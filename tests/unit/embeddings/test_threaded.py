"""MiniLM on worker threads behind `TextEmbedder`, bounded in calls pending."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from interlock.embeddings.minilm import MiniLmEmbedder
from interlock.embeddings.threaded import ThreadedEmbedder
from tests.support.embedder import minilm


async def test_rows_come_back_in_order_of_unit_length() -> None:
    rows = await minilm().embed(["a cat", "a dog"])
    assert rows.shape == (2, 384) and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


async def test_past_max_pending_a_call_is_refused_at_once_and_abandoned_ones_still_count() -> None:
    model = MiniLmEmbedder()
    model.load()
    embedder = ThreadedEmbedder(model, max_pending=1)
    first = asyncio.ensure_future(embedder.embed(["a long question " * 40]))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await embedder.embed(["another"])
    first.cancel()  # its caller gives up; the thread does not
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(TimeoutError):
        await embedder.embed(["another"])  # still pending on its thread
    for _ in range(200):
        await asyncio.sleep(0.01)
        if embedder._pending == 0:
            break
    assert (await embedder.embed(["another"])).shape == (1, 384)
