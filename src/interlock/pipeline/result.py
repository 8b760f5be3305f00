"""What a pipeline run produces: a whole JSON answer or a stream of SSE event payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Completion:
    body: bytes  # the JSON body, ready to send
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamResult:
    """Event payloads as they arrive. The iterator raises if the stream breaks part way."""

    events: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Result = Completion | StreamResult
