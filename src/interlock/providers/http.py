"""The one pooled upstream HTTP client of a process, and the mapping of upstream failures.

All OpenAI-compatible and Azure deployments share one aiohttp ClientSession, so keep-alive
connections are reused across requests and per-host limits apply to the process as a whole.
Cancelling a request (the client went away) cancels the aiohttp call, which closes that
upstream connection instead of returning it to the pool: the upstream sees the disconnect and
can stop generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from ..config import UpstreamPool
from ..errors import (
    InterlockError,
    RateLimited,
    StreamBroken,
    Unavailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from .base import UpstreamAnswer

DONE = b"[DONE]"


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; rare from model servers, treated as no hint


def status_error(status: int, body: bytes, headers: Mapping[str, str], where: str) -> InterlockError:
    """Turn a non-2xx upstream answer into the error the caller should see."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 429:
        return RateLimited(f"deployment {where} is rate limited", retry_after=retry_after)
    if status == 503:
        return Unavailable(f"deployment {where} is unavailable", retry_after=retry_after)
    if status == 504:
        return UpstreamTimeout(f"deployment {where} timed out")
    if status >= 500:
        return UpstreamError(f"deployment {where} failed with status {status}")
    return UpstreamRejected(status, body)


class HttpUpstream:
    """Owns the process's aiohttp session: explicit limits, keep-alive, read buffer."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._pool.limit,
                limit_per_host=self._pool.limit_per_host,
                keepalive_timeout=self._pool.keepalive_timeout,
                ttl_dns_cache=300,
            )
            # Created lazily, inside the running loop (aiohttp binds the session to it).
            self._session = aiohttp.ClientSession(
                connector=connector,
                read_bufsize=1 << 20,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout, where: str
    ) -> UpstreamAnswer:
        try:
            async with self.session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                data = await resp.read()
                if resp.status >= 300:
                    raise status_error(resp.status, data, resp.headers, where)
                return UpstreamAnswer(data, resp.status)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"deployment {where} timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"deployment {where} is unreachable ({type(exc).__name__})") from None

    async def get_ok(self, url: str, headers: Mapping[str, str], timeout: float) -> bool:
        try:
            async with self.session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                await resp.read()
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def open_stream(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout, where: str
    ) -> AsyncIterator[bytes]:
        try:
            resp = await self.session.post(url, data=body, headers=headers, timeout=timeout)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"deployment {where} timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"deployment {where} is unreachable ({type(exc).__name__})") from None
        if resp.status >= 300:
            try:
                data = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                data = b""
            finally:
                resp.release()
            raise status_error(resp.status, data, resp.headers, where)
        return SseStream(resp, where)


class SseStream:
    """The `data:` payloads of an upstream SSE response, without the final `[DONE]`.

    Multi-line data fields are joined with newlines. Reaching `[DONE]` releases the connection to
    the pool; stopping early (`aclose`, the caller went away) or a failure closes it, so the
    upstream sees the disconnect and can stop generating.
    """

    __slots__ = ("_finished", "_lines", "_resp", "_where")

    def __init__(self, resp: aiohttp.ClientResponse, where: str) -> None:
        self._resp = resp
        self._where = where
        self._lines = resp.content.__aiter__()
        self._finished = False

    def __aiter__(self) -> SseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._finished:
            raise StopAsyncIteration
        data: list[bytes] = []
        try:
            while True:
                try:
                    raw = await self._lines.__anext__()
                except StopAsyncIteration:
                    break
                line = raw.rstrip(b"\r\n")
                if not line:
                    if data:
                        break
                    continue
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                # "event:", "id:", "retry:" and ":" comments carry nothing we forward.
        except (TimeoutError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            self._close()
            raise StreamBroken(
                f"stream from deployment {self._where} failed ({type(exc).__name__})"
            ) from None
        except BaseException:
            self._close()
            raise
        if not data:
            self._close()
            raise StreamBroken(f"stream from deployment {self._where} ended before it was complete")
        payload = b"\n".join(data)
        if payload == DONE:
            self._finished = True
            self._resp.release()
            raise StopAsyncIteration
        return payload

    def _close(self) -> None:
        if not self._finished:
            self._finished = True
            self._resp.close()

    async def aclose(self) -> None:
        self._close()


def json_headers(extra: Mapping[str, str]) -> dict[str, Any]:
    return {"Content-Type": "application/json", "Accept": "application/json", **extra}
