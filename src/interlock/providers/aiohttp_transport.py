"""The aiohttp transport: one ClientSession per process, for when a proxy is needed
(`upstream.client: aiohttp` honours HTTP_PROXY / HTTPS_PROXY / NO_PROXY).

Cancelling a call (the client went away) cancels the aiohttp request, which closes that
upstream connection instead of returning it to the pool.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp

from ..config import UpstreamPool
from .base import UpstreamAnswer
from .sse import SseStream
from .transport import RequestHeaders, Timeouts, status_error, timed_out, unreachable

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def proxy_configured() -> bool:
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


class AiohttpTransport:
    def __init__(self, settings: UpstreamPool) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._settings.limit,
                limit_per_host=self._settings.limit_per_host,
                keepalive_timeout=self._settings.keepalive_timeout,
                ttl_dns_cache=300,
            )
            # Created lazily, inside the running loop (aiohttp binds the session to it).
            # trust_env only when a proxy is configured: with it aiohttp also reads ~/.netrc on a
            # worker thread for every request, measured at a 3x slowdown.
            self._session = aiohttp.ClientSession(
                connector=connector,
                read_bufsize=1 << 20,
                trust_env=proxy_configured(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> UpstreamAnswer:
        timeout = aiohttp.ClientTimeout(total=timeouts.read, sock_connect=timeouts.connect)
        try:
            async with self.session.post(url, data=body, headers=headers.mapping, timeout=timeout) as resp:
                data = await resp.read()
                if resp.status >= 300:
                    raise status_error(resp.status, data, resp.headers.get("retry-after"), where)
                return UpstreamAnswer(data, resp.status)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise timed_out(where) from None
        except aiohttp.ClientError as exc:
            raise unreachable(where, exc) from None

    async def open_stream(
        self, url: str, body: bytes, headers: RequestHeaders, timeouts: Timeouts, where: str
    ) -> SseStream:
        # A stream may run for minutes: bound the wait between chunks, not the whole stream.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.read)
        try:
            resp = await self.session.post(url, data=body, headers=headers.mapping, timeout=timeout)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise timed_out(where) from None
        except aiohttp.ClientError as exc:
            raise unreachable(where, exc) from None
        if resp.status >= 300:
            try:
                data = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                data = b""
            finally:
                resp.release()
            raise status_error(resp.status, data, resp.headers.get("retry-after"), where)

        async def read_chunk() -> bytes:
            try:
                return await resp.content.readany()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise timed_out(where) from None
            except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
                raise unreachable(where, exc) from None

        def release(complete: bool) -> None:
            if complete:
                resp.release()  # the connection goes back to the pool
            else:
                resp.close()  # cut short: drop it so the upstream sees the disconnect

        return SseStream(read_chunk, release, where)

    async def get_ok(self, url: str, headers: RequestHeaders, timeout_s: float) -> bool:
        try:
            async with self.session.get(
                url, headers=headers.mapping, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                await resp.read()
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False
