"""The seam between providers and the HTTP client that carries their calls.

Providers build URLs, bodies and headers; a Transport moves the bytes. Two implement it: the
native pool (`pool.py`, the default: measured faster) and aiohttp (`aiohttp_transport.py`, which
also honours HTTP(S)_PROXY). Both map failures the same way, through `status_error` here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import (
    InterlockError,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from .base import UpstreamAnswer


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float  # the whole answer for a JSON call; the gap between chunks for a stream


class RequestHeaders:
    """Request headers, encoded once for the wire when the provider is built, not per call."""

    __slots__ = ("encoded", "mapping")

    def __init__(self, mapping: Mapping[str, str]) -> None:
        for name, value in mapping.items():
            if any(c in name or c in value for c in "\r\n"):
                raise ValueError(f"header {name!r} contains a line break")
        self.mapping = dict(mapping)
        self.encoded = "".join(f"{k}: {v}\r\n" for k, v in self.mapping.items()).encode("latin-1")

    def with_(self, extra: Mapping[str, str]) -> RequestHeaders:
        return RequestHeaders({**self.mapping, **extra})


class EventSource(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> UpstreamAnswer: ...

    async def open_stream(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> EventSource: ...

    async def get_ok(self, url: str, headers: RequestHeaders, timeout_s: float) -> bool: ...

    async def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; rare from model servers, treated as no hint


def status_error(status: int, body: bytes, retry_after: str | None, where: str) -> InterlockError:
    """Turn a non-2xx upstream answer into the error the caller should see."""
    wait = parse_retry_after(retry_after)
    if status == 429:
        return UpstreamRateLimited(f"deployment {where} is rate limited", retry_after=wait)
    if status == 503:
        return Unavailable(f"deployment {where} is unavailable", retry_after=wait)
    if status == 504:
        return UpstreamTimeout(f"deployment {where} timed out")
    if status >= 500:
        return UpstreamError(f"deployment {where} failed with status {status}")
    return UpstreamRejected(status, body)


def unreachable(where: str, exc: BaseException) -> UpstreamError:
    return UpstreamError(f"deployment {where} is unreachable ({type(exc).__name__})")


def timed_out(where: str) -> UpstreamTimeout:
    return UpstreamTimeout(f"deployment {where} timed out")
