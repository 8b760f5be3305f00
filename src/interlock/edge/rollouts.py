"""/admin/rollouts (permission `admin_rollouts`): start a rollout, read its status, pause, resume,
promote or abort it. Every change is recorded in the audit log as the key admin actions are.

    POST /admin/rollouts                         a rollout spec as JSON -> 201 and its status
    GET  /admin/rollouts/{model}                 status (what `interlock rollout status` prints)
    POST /admin/rollouts/{model}/{action}        pause | resume | promote | abort -> its status

400 names the key path of a bad spec; 404: no rollout of that model group; 409: the action does
not apply to the rollout's phase (or a rollout of the group is already running); 503: the
rollout store could not be reached.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import orjson

from ..errors import BadRequest, ConfigError, Conflict, NotFound, Unavailable
from ..rollout.controller import RolloutConflict
from ..rollout.driver import STORE_ERRORS, RolloutDriver, RolloutNotFound
from ..rollout.spec import RolloutSpec, parse_spec
from ..security.audit import AuditLog
from .admin import record_admin
from .exchange import Exchange

MAX_SPEC_BODY = 64 * 1024
ACTIONS = ("pause", "resume", "promote", "abort")


class RolloutHandlers:
    def __init__(
        self, driver: RolloutDriver | None, versions: Mapping[str, set[str]], audit: AuditLog | None = None
    ) -> None:
        self._driver = driver
        self._versions = versions
        self._audit = audit

    def _rollouts(self) -> RolloutDriver:
        if self._driver is None:
            raise BadRequest("Rollouts are not enabled: configure a `rollout` section or `rollouts`")
        return self._driver

    def _record(self, ex: Exchange, action: str, target: str) -> None:
        record_admin(self._audit, ex, action, target)

    def _check_versions(self, spec: RolloutSpec) -> None:
        known = self._versions.get(spec.model)
        if known is None:
            raise BadRequest(f"$.model: unknown model group {spec.model!r}", param="model")
        for name in ("stable", "candidate"):
            version = getattr(spec, name)
            if version not in known:
                raise BadRequest(f"$.{name}: no deployment of {spec.model!r} has version {version!r}", param=name)

    async def start(self, ex: Exchange) -> None:
        driver = self._rollouts()
        raw = await ex.body(MAX_SPEC_BODY)
        try:
            spec = parse_spec(orjson.loads(raw))
        except orjson.JSONDecodeError:
            raise BadRequest("The body must be a JSON rollout spec") from None
        except ConfigError as exc:
            raise BadRequest(str(exc)) from None
        self._check_versions(spec)
        try:
            await driver.start_rollout(spec)
            status = await driver.status(spec.model)
        except RolloutConflict as exc:
            raise Conflict(str(exc)) from None
        except STORE_ERRORS as exc:
            raise Unavailable(f"The rollout store failed ({type(exc).__name__})", retry_after=1) from None
        self._record(ex, "rollout.start", spec.model)
        await ex.json(201, msgspec.json.encode(status))

    async def status(self, ex: Exchange, model: str) -> None:
        driver = self._rollouts()
        try:
            status = await driver.status(model)
        except RolloutNotFound:
            raise NotFound(f"No rollout of model group {model}") from None
        except STORE_ERRORS as exc:
            raise Unavailable(f"The rollout store failed ({type(exc).__name__})", retry_after=1) from None
        await ex.json(200, msgspec.json.encode(status))

    async def act(self, ex: Exchange, model: str, action: str) -> None:
        driver = self._rollouts()
        try:
            if action == "pause":
                await driver.pause(model)
            elif action == "resume":
                await driver.resume(model)
            elif action == "promote":
                await driver.promote(model)
            else:
                await driver.abort(model)
            status = await driver.status(model)
        except RolloutNotFound:
            raise NotFound(f"No rollout of model group {model}") from None
        except RolloutConflict as exc:
            raise Conflict(str(exc)) from None
        except STORE_ERRORS as exc:
            raise Unavailable(f"The rollout store failed ({type(exc).__name__})", retry_after=1) from None
        self._record(ex, f"rollout.{action}", model)
        await ex.json(200, msgspec.json.encode(status))
