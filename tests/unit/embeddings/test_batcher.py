"""The micro-batcher's scheduling, over an encoder that records each pass (the model itself is
checked in test_minilm.py and, through the batcher, in test_service.py)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from interlock.embeddings.batcher import MicroBatcher
from interlock.errors import Overloaded, Unavailable


class Recording:
    """Vectors that name their text (its length), and the texts of every pass; `gate` holds a
    pass until the test lets it go."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        self.gate.wait(5)
        self.passes.append(list(texts))
        if self.fail:
            raise RuntimeError("the model failed")
        return np.array([[len(t), 0.0] for t in texts], dtype=np.float32), [len(t) for t in texts]


async def started(encode: Recording, **kw: float) -> MicroBatcher:
    batcher = MicroBatcher(encode, **kw)  # type: ignore[arg-type]
    batcher.start()
    return batcher


async def test_concurrent_callers_share_one_pass_and_each_gets_its_own_rows() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=50)
    texts = [["a" * (i + 1)] for i in range(8)] + [["bb", "ccc"]]
    results = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert len(encode.passes) == 1 and len(encode.passes[0]) == 10
    for asked, (vectors, tokens) in zip(texts, results, strict=True):
        assert [int(v[0]) for v in vectors] == [len(t) for t in asked] == tokens
    await batcher.close()


async def test_a_pass_holds_at_most_max_batch_texts_and_never_splits_a_caller() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=4, max_wait_ms=50)
    sizes = [3, 3, 1, 6, 2]
    await asyncio.gather(*(batcher.embed(["x"] * n) for n in sizes))
    # In arrival order: 3 (3+3 > 4), 3+1, 6 alone (larger than max_batch, not split), 2.
    assert [len(p) for p in encode.passes] == [3, 4, 6, 2]
    await batcher.close()


async def test_callers_arriving_during_a_pass_form_the_next_one() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=0)
    encode.gate.clear()
    first = asyncio.ensure_future(batcher.embed(["first"]))
    await asyncio.sleep(0.05)  # the first pass is running (held at the gate)
    rest = [asyncio.ensure_future(batcher.embed([f"t{i}"])) for i in range(5)]
    await asyncio.sleep(0.01)
    assert batcher.queued == 5
    encode.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(p) for p in encode.passes] == [1, 5]
    await batcher.close()


async def test_one_caller_waits_at_most_max_wait() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=20)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await batcher.embed(["alone"])
    assert loop.time() - began < 1.0  # it did not wait for a batch that never fills
    assert encode.passes == [["alone"]]
    await batcher.close()


async def test_a_caller_cancelled_while_it_waits_leaves_no_text_in_the_pass() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=0)
    encode.gate.clear()
    busy = asyncio.ensure_future(batcher.embed(["busy"]))
    await asyncio.sleep(0.05)
    gone = asyncio.ensure_future(batcher.embed(["gone"]))
    kept = asyncio.ensure_future(batcher.embed(["kept"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    encode.gate.set()
    await asyncio.gather(busy, kept)
    assert encode.passes == [["busy"], ["kept"]]
    assert batcher.queued == 0
    await batcher.close()


async def test_a_failed_pass_fails_its_callers_and_the_next_pass_runs() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=20)
    encode.fail = True
    results = await asyncio.gather(batcher.embed(["a"]), batcher.embed(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    encode.fail = False
    vectors, _ = await batcher.embed(["after"])
    assert vectors.shape == (1, 2)
    await batcher.close()


async def test_a_full_queue_refuses_at_once() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=2, max_wait_ms=0, max_queue=4)
    encode.gate.clear()
    running = asyncio.ensure_future(batcher.embed(["r"]))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(batcher.embed(["w"] * 4))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await batcher.embed(["one too many"])
    encode.gate.set()
    await asyncio.gather(running, waiting)
    await batcher.close()


async def test_close_fails_the_waiting_callers() -> None:
    encode = Recording()
    batcher = await started(encode, max_batch=32, max_wait_ms=0)
    encode.gate.clear()
    running = asyncio.ensure_future(batcher.embed(["r"]))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(batcher.embed(["w"]))
    await asyncio.sleep(0.01)
    encode.gate.set()
    await batcher.close()
    outcomes = await asyncio.gather(running, waiting, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)  # its pass was cut short by the close
    assert isinstance(outcomes[1], Unavailable)
