"""Any OpenAI-compatible server: OpenAI, vLLM, TGI, llama.cpp server, Ollama."""

from __future__ import annotations

from typing import Any

import orjson

from ..config import OpenAIDeployment
from ..pipeline.context import Endpoint
from .base import UpstreamAnswer
from .transport import EventSource, RequestHeaders, Timeouts, Transport

READY_TIMEOUT = 2.0


def json_headers(extra: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json", **extra}


class OpenAIProvider:
    kind = "openai"

    def __init__(self, spec: OpenAIDeployment, transport: Transport) -> None:
        self.id = spec.id
        self._transport = transport
        self._model = spec.model
        base = spec.api_base.rstrip("/")
        extra = dict(spec.headers)
        if spec.api_key:
            extra["Authorization"] = f"Bearer {spec.api_key}"
        self._headers = RequestHeaders(json_headers(extra))
        self._timeouts = Timeouts(connect=spec.connect_timeout, read=spec.timeout)
        self._urls = {e: f"{base}/{e.value}" for e in Endpoint}
        self._ready_url = f"{base}/models"

    def rotate_api_key(self, api_key: str) -> None:
        """A new credential from the secret store, used from the next call on."""
        self._headers = self._headers.with_({"Authorization": f"Bearer {api_key}"})

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def queue_depth(self) -> int:
        return 0

    async def headers(self) -> RequestHeaders:
        return self._headers

    def encode(self, body: dict[str, Any]) -> bytes:
        if self._model is not None:
            body = {**body, "model": self._model}
        return orjson.dumps(body)

    async def ready(self) -> bool:
        return await self._transport.get_ok(self._ready_url, await self.headers(), READY_TIMEOUT)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        return await self._transport.post(
            self._urls[endpoint], self.encode(body), await self.headers(), self._timeouts, self.id
        )

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> EventSource:
        return await self._transport.open_stream(
            self._urls[endpoint], self.encode(body), await self.headers(), self._timeouts, self.id
        )
