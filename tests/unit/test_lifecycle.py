"""Lifecycle: start in order, close in exactly the reverse; Background: one task per loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from interlock.lifecycle import Background, Lifecycle


async def test_parts_close_in_the_reverse_of_their_start_and_one_failing_close_stops_none() -> None:
    log: list[str] = []

    def step(what: str, fail: bool = False):  # type: ignore[no-untyped-def]
        async def run() -> None:
            log.append(what)
            if fail:
                raise RuntimeError(what)

        return run

    life = Lifecycle()
    for name in ("a", "b", "c"):
        life.add(name, step(f"start {name}"), step(f"close {name}", fail=name == "b"))
    life.add(None, start=step("ready"))
    await life.start()
    with pytest.raises(RuntimeError, match="close b"):
        await life.close()
    assert log == ["start a", "start b", "start c", "ready", "close c", "close b", "close a"]


async def test_a_failing_start_closes_what_had_started() -> None:
    log: list[str] = []

    async def fail() -> None:
        raise RuntimeError("no model")

    async def close_a() -> None:
        log.append("close a")

    life = Lifecycle()
    life.add("a", close=close_a)
    life.add("b", start=fail, close=close_a)  # never started: not closed
    with pytest.raises(RuntimeError):
        await life.start()
    assert log == ["close a"]


async def test_a_loop_that_dies_is_logged_at_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ValueError("a bug in one tick")

    task = Background("broken loop", broken)
    with caplog.at_level(logging.ERROR, logger="interlock"):
        task.start()
        await asyncio.sleep(0.01)
        assert not task.running
        [record] = [r for r in caplog.records if "broken loop" in r.getMessage()]
        assert record.exc_info is not None and record.exc_info[0] is ValueError
    await task.stop()


async def test_a_stop_cancelled_while_it_waits_leaves_the_task_for_the_next_stop() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # cleanup that takes a while
            raise

    task = Background("slow", slow_to_stop)
    task.start()
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(task.stop())
    await asyncio.sleep(0.01)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert task.running  # still ours: not forgotten half way
    release.set()
    await task.stop()
    assert not task.running
