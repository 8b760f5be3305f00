"""GET /v1/models, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson

from ..errors import ModelNotFound
from ..observe.metrics import Metrics
from .exchange import Exchange

READY_CACHE_SECONDS = 2.0
READY_TIMEOUT = 3.0

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


class InfoHandlers:
    def __init__(
        self,
        models: list[str],
        metrics: Metrics,
        ready_check: ReadyCheck,
        groups_ready: Callable[[dict[str, bool]], bool],
    ) -> None:
        created = int(time.time())
        self._models = {
            name: {"id": name, "object": "model", "created": created, "owned_by": "interlock"} for name in models
        }
        self._list_body = orjson.dumps({"object": "list", "data": list(self._models.values())})
        self._metrics = metrics
        self._ready_check = ready_check
        self._groups_ready = groups_ready
        self._ready_at = 0.0
        self._ready: tuple[bool, dict[str, bool], bytes] = (False, {}, b"")

    async def models(self, ex: Exchange) -> None:
        allowed = ex.identity.models
        if allowed is None:
            await ex.json(200, self._list_body)
            return
        data = [m for name, m in self._models.items() if name in allowed]
        await ex.json(200, orjson.dumps({"object": "list", "data": data}))

    async def model(self, ex: Exchange, name: str) -> None:
        found = self._models.get(name)
        if found is None:
            raise ModelNotFound(f"The model `{name}` does not exist", param="model")
        await ex.json(200, orjson.dumps(found))

    async def healthz(self, ex: Exchange) -> None:
        await ex.json(200, b'{"status":"ok"}')

    async def deployments_ready(self) -> tuple[bool, dict[str, bool], bytes]:
        """(every group ready, each deployment's probe by id, the /readyz body), probed at most
        every READY_CACHE_SECONDS (the dashboard's overview reads the same answer)."""
        now = time.monotonic()
        if now - self._ready_at > READY_CACHE_SECONDS:
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    deployments = await self._ready_check()
            except TimeoutError:
                deployments = {}
            ok = self._groups_ready(deployments)
            body = orjson.dumps({"status": "ready" if ok else "not ready", "deployments": deployments})
            self._ready, self._ready_at = (ok, deployments, body), now
        return self._ready

    async def readyz(self, ex: Exchange) -> None:
        ok, _, body = await self.deployments_ready()
        await ex.json(200 if ok else 503, body)

    async def metrics(self, ex: Exchange) -> None:
        body = self._metrics.render()
        ex.started = ex.done = True
        await ex.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"x-request-id", ex.request_id.encode()),
                    (b"content-type", self._metrics.content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await ex.send({"type": "http.response.body", "body": body, "more_body": False})
