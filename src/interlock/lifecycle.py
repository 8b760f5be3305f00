"""Lifetimes: the gateway's start and shutdown, and the background tasks of long-lived objects.

`Lifecycle` is the one place start and close are ordered. The composition root (app.py)
registers each part as it builds it, with its start and its close; `start()` runs the starts in
that order and pushes each close on an `AsyncExitStack`, so `close()` runs them in exactly the
reverse order: a part is closed before whatever it was built on (the shadow runner before the
providers it calls, the providers before the HTTP pool, everything before the tracer that
flushes their spans). If a start fails, the parts already started are closed and the error is
raised; one close failing does not keep the others from running.

`Background` is one task that runs for as long as its owner lives: started once, cancelled and
awaited on stop. The loop it runs decides which errors of one tick it survives (each loop knows
its own); a loop that dies of an error anyway is logged, with its traceback, the moment it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("interlock")

T = TypeVar("T")
Step = Callable[[], Awaitable[Any]]


class Lifecycle:
    def __init__(self) -> None:
        self._parts: list[tuple[Step | None, Step | None]] = []
        self._stack: contextlib.AsyncExitStack | None = None

    def add(self, part: T, start: Step | None = None, close: Step | None = None) -> T:
        """Register `part`'s start and close (either may be None); returns `part`."""
        self._parts.append((start, close))
        return part

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            for start, close in self._parts:
                if start is not None:
                    await start()
                if close is not None:
                    stack.push_async_callback(close)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


class Background:
    __slots__ = ("_name", "_run", "_task")

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s died", self._name, exc_info=(type(exc), exc, exc.__traceback__))

    async def stop(self) -> None:
        task = self._task
        if task is None:
            return
        task.cancel()
        # `wait` rather than `await task`: awaiting it would raise the task's CancelledError here,
        # indistinguishable from a cancellation of the caller itself, which must propagate. The
        # task stays ours until it has ended: a stop cancelled while it waits leaves the next
        # stop something to wait for.
        await asyncio.wait((task,))
        self._task = None
