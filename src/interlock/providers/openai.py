"""Any OpenAI-compatible server: OpenAI, vLLM, TGI, llama.cpp server, Ollama."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..config import OpenAIDeployment
from ..pipeline.context import Endpoint
from .base import UpstreamAnswer
from .http import HttpUpstream, json_headers


class OpenAIProvider:
    kind = "openai"

    def __init__(self, spec: OpenAIDeployment, http: HttpUpstream) -> None:
        self.id = spec.id
        self._http = http
        self._model = spec.model
        self._base = spec.api_base.rstrip("/")
        extra = dict(spec.headers)
        if spec.api_key:
            extra["Authorization"] = f"Bearer {spec.api_key}"
        self._headers = json_headers(extra)
        self._timeout = aiohttp.ClientTimeout(total=spec.timeout, sock_connect=spec.connect_timeout)
        # A stream may run for minutes: bound the wait between chunks, not the whole stream.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout, sock_read=spec.timeout
        )
        self._urls = {e: f"{self._base}/{e.value}" for e in Endpoint}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def queue_depth(self) -> int:
        return 0

    async def headers(self) -> dict[str, Any]:
        return self._headers

    def url(self, endpoint: Endpoint) -> str:
        return self._urls[endpoint]

    def encode(self, body: dict[str, Any]) -> bytes:
        if self._model is not None:
            body = {**body, "model": self._model}
        return orjson.dumps(body)

    async def ready(self) -> bool:
        return await self._http.get_ok(f"{self._base}/models", await self.headers(), timeout=2.0)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        return await self._http.post(
            self.url(endpoint), self.encode(body), await self.headers(), self._timeout, self.id
        )

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        return await self._http.open_stream(
            self.url(endpoint), self.encode(body), await self.headers(), self._stream_timeout, self.id
        )
