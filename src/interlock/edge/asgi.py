"""The ASGI application: route table, lifespan, and the one place broad exceptions are caught."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from ..errors import InterlockError, MethodNotAllowed, NotFound
from ..pipeline.context import Endpoint
from .exchange import Exchange
from .http import ClientGone, Receive, RequestIds, Scope, Send, header_map, valid_request_id
from .inference import InferenceHandler
from .info import InfoHandlers

log = logging.getLogger("interlock.edge")

Route = Callable[[Exchange], Awaitable[None]]
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
_MODEL = re.compile(r"^/(?:v1/)?models/([^/]+)$")


class Gateway:
    def __init__(
        self,
        inference: InferenceHandler,
        info: InfoHandlers,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self._inference = inference
        self._info = info
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._ids = RequestIds()
        self._loop: asyncio.AbstractEventLoop | None = None
        routes: dict[str, tuple[str, Route]] = {}
        for endpoint in Endpoint:
            for prefix in ("/v1/", "/"):
                routes[prefix + endpoint.value] = ("POST", self._inference_route(endpoint))
        for path in ("/v1/models", "/models"):
            routes[path] = ("GET", info.models)
        routes["/healthz"] = ("GET", info.healthz)
        routes["/readyz"] = ("GET", info.readyz)
        routes["/metrics"] = ("GET", info.metrics)
        self._routes = routes

    def _inference_route(self, endpoint: Endpoint) -> Route:
        async def route(ex: Exchange) -> None:
            await self._inference(ex, endpoint)

        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _resolve(self, method: str, path: str) -> Route:
        found = self._routes.get(path)
        if found is not None:
            if method != found[0]:
                raise MethodNotAllowed(f"Method {method} is not allowed on {path}")
            return found[1]
        match = _AZURE.match(path)
        if match is not None:
            if method != "POST":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            deployment, endpoint = match.group(1), Endpoint(match.group(2))

            async def azure(ex: Exchange) -> None:
                await self._inference(ex, endpoint, deployment)

            return azure
        match = _MODEL.match(path)
        if match is not None and method == "GET":
            name = match.group(1)

            async def model(ex: Exchange) -> None:
                await self._info.model(ex, name)

            return model
        raise NotFound(f"Unknown path {path}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        request_id = valid_request_id(headers.get(b"x-request-id")) or self._ids.new()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        ex = Exchange(scope, receive, send, headers, request_id, loop)
        try:
            await self._resolve(scope["method"], scope["path"])(ex)
        except InterlockError as exc:
            if not ex.started:
                await ex.error(exc)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            if not ex.client_gone:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # our own watch cancelled us: the client went away, nothing to send
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not ex.started:
                err = InterlockError(f"Internal error; request id {request_id}", code="internal_error")
                await ex.error(err)
        finally:
            ex.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._on_startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._on_shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return
