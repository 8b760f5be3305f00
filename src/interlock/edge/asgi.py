"""The ASGI application: route table, authentication, lifespan, and the one place broad
exceptions are caught.

Every route names the permission it needs (None: open, for health probes). The caller is
identified here, before any body is read, so an unauthenticated flood costs a header lookup and
a hash; inference handlers then check the model group against the identity.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable

from ..errors import Forbidden, InterlockError, MethodNotAllowed, NotFound, error_class
from ..observe.metrics import NONE, UNKNOWN_MODEL, Metrics
from ..pipeline.context import Endpoint
from ..security.auth import Authenticator
from ..security.roles import Permission
from .admin import AdminHandlers
from .exchange import Exchange
from .http import ClientGone, Direct, Receive, RequestIds, Scope, Send, header_map, valid_request_id
from .inference import InferenceHandler
from .info import InfoHandlers
from .retrieval_routes import RetrievalRoutes
from .rollouts import ACTIONS, RolloutHandlers
from .ui import UiHandlers, secured

log = logging.getLogger("interlock.edge")

Handler = Callable[[Exchange], Awaitable[None]]
Route = tuple[str, Handler, Permission | None]
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
_MODEL = re.compile(r"^/(?:v1/)?models/([^/]+)$")
_ADMIN_KEY = re.compile(r"^/admin/keys/([A-Za-z0-9_-]+)$")
_ROLLOUT = re.compile(r"^/admin/rollouts/([^/]+)(?:/([a-z]+))?$")
_SEMANTIC = re.compile(r"^/admin/cache/semantic/([^/]+)$")
_UI_ROLLOUT = re.compile(r"^/ui/api/rollouts/([^/]+)/([a-z]+)$")
_UI_REVOKE = re.compile(r"^/ui/api/keys/([A-Za-z0-9_-]+)/revoke$")


class Gateway:
    def __init__(
        self,
        inference: InferenceHandler,
        info: InfoHandlers,
        admin: AdminHandlers,
        auth: Authenticator,
        on_startup: Callable[[], Awaitable[None]],
        on_shutdown: Callable[[], Awaitable[None]],
        metrics: Metrics | None = None,
        rollouts: RolloutHandlers | None = None,
        ui: UiHandlers | None = None,
        retrieval: RetrievalRoutes | None = None,
    ) -> None:
        self._ui = ui
        self._metrics = metrics
        self._rollouts = rollouts or RolloutHandlers(None, {})
        self._inference = inference
        self._info = info
        self._admin = admin
        self._auth = auth
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._ids = RequestIds()
        self._loop: asyncio.AbstractEventLoop | None = None
        invoke, read_metrics, keys = Permission.INVOKE, Permission.READ_METRICS, Permission.ADMIN_KEYS
        routes: dict[tuple[str, str], tuple[Handler, Permission | None]] = {}
        for endpoint in Endpoint:
            for prefix in ("/v1/", "/"):
                routes[("POST", prefix + endpoint.value)] = (self._inference_route(endpoint), invoke)
        for path in ("/v1/models", "/models"):
            routes[("GET", path)] = (info.models, invoke)
        routes[("GET", "/healthz")] = (info.healthz, None)
        routes[("GET", "/readyz")] = (info.readyz, None)
        routes[("GET", "/metrics")] = (info.metrics, read_metrics)
        routes[("POST", "/admin/keys")] = (admin.create_key, keys)
        routes[("GET", "/admin/keys")] = (admin.list_keys, keys)
        routes[("GET", "/admin/drift")] = (admin.drift_reports, read_metrics)
        routes[("POST", "/admin/rollouts")] = (self._rollouts.start, Permission.ADMIN_ROLLOUTS)
        if ui is not None:
            self._ui_routes(routes, ui, admin)
        self._retrieval = retrieval or RetrievalRoutes(None, None)
        routes.update(self._retrieval.fixed())
        self._routes = routes
        self._paths = {path for _, path in routes}

    @staticmethod
    def _ui_routes(
        routes: dict[tuple[str, str], tuple[Handler, Permission | None]], ui: UiHandlers, admin: AdminHandlers
    ) -> None:
        """The dashboard: pages and login check the session themselves; the panels and actions
        name their permission as the API's routes do (see edge/ui.py)."""
        read_metrics = Permission.READ_METRICS
        routes[("GET", "/ui")] = routes[("GET", "/ui/")] = (ui.page, None)
        routes[("POST", "/ui/login")] = (ui.login, None)
        routes[("POST", "/ui/logout")] = (ui.logout, None)
        for name in ui.assets:
            if name.endswith(".html"):
                continue

            async def asset(ex: Exchange, name: str = name) -> None:
                await ui.asset(ex, name)

            routes[("GET", "/ui/static/" + name)] = (asset, None)
        routes[("GET", "/ui/api/session")] = (ui.session_info, None)
        routes[("GET", "/ui/api/overview")] = (ui.overview, read_metrics)
        routes[("GET", "/ui/api/rollouts")] = (ui.rollouts, read_metrics)
        routes[("GET", "/ui/api/drift")] = (ui.drift, read_metrics)
        routes[("GET", "/ui/api/limits")] = (ui.limits, read_metrics)
        routes[("GET", "/ui/api/audit")] = (ui.audit, Permission.READ_AUDIT)
        routes[("GET", "/ui/api/keys")] = (ui.keys, Permission.ADMIN_KEYS)
        routes[("POST", "/ui/api/keys")] = (admin.create_key, Permission.ADMIN_KEYS)

    def _inference_route(self, endpoint: Endpoint) -> Handler:
        # A partial, not a closure: the handler's own coroutine is the route's, one fewer a request.
        return functools.partial(self._inference, endpoint=endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send, None)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def direct(self, scope: Scope, receive: Receive, send: Send, native: Direct) -> None:
        """An `http` scope from the native server (edge/server.py), which also hands over the
        body and takes the answer without ASGI messages: the same handling otherwise."""
        await self._http(scope, receive, send, native)

    def _resolve(self, method: str, path: str) -> tuple[Handler, Permission | None]:
        found = self._routes.get((method, path))
        if found is not None:
            return found
        if path in self._paths:
            raise MethodNotAllowed(f"Method {method} is not allowed on {path}")
        routed = self._retrieval.match(method, path)
        if routed is not None:
            return routed
        match = _AZURE.match(path)
        if match is not None:
            if method != "POST":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            deployment, endpoint = match.group(1), Endpoint(match.group(2))

            async def azure(ex: Exchange) -> None:
                await self._inference(ex, endpoint, deployment)

            return azure, Permission.INVOKE
        match = _MODEL.match(path)
        if match is not None:
            if method != "GET":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            name = match.group(1)

            async def model(ex: Exchange) -> None:
                await self._info.model(ex, name)

            return model, Permission.INVOKE
        match = _ADMIN_KEY.match(path)
        if match is not None:
            if method != "DELETE":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            key_id = match.group(1)

            async def revoke(ex: Exchange) -> None:
                await self._admin.revoke_key(ex, key_id)

            return revoke, Permission.ADMIN_KEYS
        match = _SEMANTIC.match(path)
        if match is not None:
            if method != "DELETE":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            group = match.group(1)

            async def drop_semantic(ex: Exchange) -> None:
                await self._admin.drop_semantic(ex, group)

            return drop_semantic, Permission.ADMIN_CONFIG
        match = _ROLLOUT.match(path)
        if match is not None:
            return self._rollout_route(method, path, match.group(1), match.group(2)), Permission.ADMIN_ROLLOUTS
        if self._ui is not None:
            return self._ui_resolve(method, path)
        raise NotFound(f"Unknown path {path}")

    def _ui_resolve(self, method: str, path: str) -> tuple[Handler, Permission | None]:
        """The dashboard's actions on one target: the admin API's handlers behind a session."""
        match = _UI_ROLLOUT.match(path)
        if match is not None:
            return self._rollout_route(method, path, match.group(1), match.group(2)), Permission.ADMIN_ROLLOUTS
        match = _UI_REVOKE.match(path)
        if match is not None:
            if method != "POST":
                raise MethodNotAllowed(f"Method {method} is not allowed on this path")
            key_id = match.group(1)

            async def revoke(ex: Exchange) -> None:
                await self._admin.revoke_key(ex, key_id)

            return revoke, Permission.ADMIN_KEYS
        raise NotFound(f"Unknown path {path}")

    def _rollout_route(self, method: str, path: str, model: str, action: str | None) -> Handler:
        rollouts = self._rollouts
        if action is None:
            if method != "GET":
                raise MethodNotAllowed(f"Method {method} is not allowed on {path}")

            async def status(ex: Exchange) -> None:
                await rollouts.status(ex, model)

            return status
        if action not in ACTIONS:
            raise NotFound(f"Unknown path {path}")
        if method != "POST":
            raise MethodNotAllowed(f"Method {method} is not allowed on {path}")

        async def act(ex: Exchange) -> None:
            await rollouts.act(ex, model, action)

        return act

    async def _http(self, scope: Scope, receive: Receive, send: Send, native: Direct | None) -> None:
        headers = header_map(scope)
        request_id = valid_request_id(headers.get(b"x-request-id")) or self._ids.new()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        path = scope["path"]
        ui = self._ui if path.startswith("/ui") else None
        if ui is not None:
            send = secured(send, cache=path.startswith("/ui/static/"))
            native = None  # its headers are added in `send`
        ex = Exchange(scope, receive, send, headers, request_id, loop, native)
        try:
            handler, permission = self._resolve(scope["method"], path)
            if permission is not None or (ui is not None and path == "/ui/api/session"):
                # The dashboard's callers are known by their session (or the API's credentials).
                ex.identity = await (ui.identify(ex) if ui is not None else self._auth.identify(headers))
                if permission is not None and not ex.identity.may(permission):
                    raise Forbidden(f"This identity lacks the `{permission}` permission")
            await handler(ex)
        except InterlockError as exc:
            # Inference handlers count their own errors; these are the route's and the caller's
            # (unknown path, bad credentials, a missing permission), before any model is known.
            if self._metrics is not None:
                self._metrics.error(UNKNOWN_MODEL, NONE, NONE, error_class(exc))
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
