"""Fake providers for router and shadow tests: they answer from a script."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from interlock.pipeline.context import Endpoint
from interlock.providers.base import UpstreamAnswer


class Scripted:
    """Answers from a script: each item is an exception to raise or a body to return."""

    kind = "scripted"

    def __init__(self, id_: str, script: list[Any] | None = None) -> None:
        self.id = id_
        self.script = list(script or [])
        self.calls = 0

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ready(self) -> bool:
        return True

    def queue_depth(self) -> int:
        return 0

    def _next(self) -> Any:
        self.calls += 1
        item = self.script.pop(0) if self.script else b'{"ok":true,"usage":{"prompt_tokens":3,"completion_tokens":2}}'
        if isinstance(item, BaseException):
            raise item
        return item

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        return UpstreamAnswer(self._next())

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        events = self._next()

        async def gen() -> AsyncIterator[bytes]:
            for e in events:
                if isinstance(e, BaseException):
                    raise e
                yield e

        return gen()


class Recording(Scripted):
    """A Scripted provider that keeps every body it was sent."""

    def __init__(self, id_: str, script: list[Any] | None = None) -> None:
        super().__init__(id_, script)
        self.bodies: list[dict[str, Any]] = []

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        return await super().complete(endpoint, body)
