"""The provider protocol and what every HTTP-speaking provider shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..pipeline.context import Endpoint


@dataclass(slots=True)
class UpstreamAnswer:
    body: bytes  # the JSON answer as the upstream sent it
    status: int = 200


class Provider(Protocol):
    id: str
    kind: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool: ...

    def queue_depth(self) -> int: ...

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        """One whole answer. Raises an InterlockError (retryable or not) on failure."""
        ...

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """Connect and check the status, raising (retryably) before anything is sent on.

        Returns an iterator of SSE event payloads without `[DONE]`; it raises StreamBroken if
        the stream fails or ends without `[DONE]`.
        """
        ...
