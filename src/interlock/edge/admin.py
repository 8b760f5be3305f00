"""/admin/keys: create, list and revoke API keys (permission `admin_keys`); /admin/drift: the
drift reports of the live window against each reference (permission `read_metrics`);
/admin/cache/semantic/{group}: drop a group's semantic cache entries (permission `admin_config`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec
import orjson

from ..errors import BadRequest, NotFound
from ..security.audit import AuditLog
from ..security.keyadmin import NewKey, UnknownRole, create_key
from ..security.keystore import KeyStore
from ..security.roles import Permission
from .exchange import Exchange

if TYPE_CHECKING:  # the drift statistics load scipy: imported only where drift is configured
    from ..observe.monitor import DriftMonitor

MAX_ADMIN_BODY = 64 * 1024


def record_admin(audit: AuditLog | None, ex: Exchange, action: str, target: str) -> None:
    """An admin action in the audit trail: who did what to which target (the API's and the
    dashboard's actions alike)."""
    if audit is not None:
        who = ex.identity
        event = {"kind": "admin", "action": action, "target": target, "subject": who.subject}
        audit.record({**event, "tenant": who.tenant, "request_id": ex.request_id})


class SemanticInvalidation(Protocol):
    def invalidate(self, model: str) -> int | None: ...


class AdminHandlers:
    def __init__(
        self,
        store: KeyStore | None,
        secret: bytes,
        roles: Mapping[str, frozenset[Permission]],
        audit: AuditLog | None = None,
        drift: DriftMonitor | None = None,
        clock: Callable[[], float] = time.time,
        semantic: SemanticInvalidation | None = None,
    ) -> None:
        self._semantic = semantic
        self._audit = audit
        self._drift = drift
        self._store = store
        self._secret = secret
        self._roles = roles
        self._clock = clock

    def _record(self, ex: Exchange, action: str, target: str) -> None:
        record_admin(self._audit, ex, action, target)

    def _keys(self) -> KeyStore:
        if self._store is None:
            raise BadRequest("API keys are not enabled: configure security.keys")
        return self._store

    async def create_key(self, ex: Exchange) -> None:
        store = self._keys()
        raw = await ex.body(MAX_ADMIN_BODY)
        try:
            spec = msgspec.json.decode(raw, type=NewKey)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise BadRequest(f"Invalid key request: {exc}") from None
        try:
            key, record = await create_key(store, self._secret, spec, self._roles, self._clock)
        except UnknownRole as exc:
            raise BadRequest(str(exc), param="roles") from None
        self._record(ex, "key.create", record.id)
        await ex.json(201, orjson.dumps({"key": key, **record.public()}))

    async def list_keys(self, ex: Exchange) -> None:
        records = await self._keys().list()
        await ex.json(200, orjson.dumps({"object": "list", "data": [r.public() for r in records]}))

    async def revoke_key(self, ex: Exchange, key_id: str) -> None:
        if not await self._keys().revoke(key_id, self._clock()):
            raise NotFound(f"No active key with id {key_id}")
        self._record(ex, "key.revoke", key_id)
        await ex.json(200, orjson.dumps({"id": key_id, "revoked": True}))

    async def drift_reports(self, ex: Exchange) -> None:
        """The latest evaluation's reports, or a fresh one when none ran yet (the same JSON as
        `interlock drift report --json`, per model group and version)."""
        data = await self.drift_data()
        if data is None:
            raise BadRequest("Drift monitoring is not enabled: configure a `drift` section")
        await ex.json(200, orjson.dumps({"object": "list", "data": data}))

    async def drift_data(self) -> list[dict[str, object]] | None:
        """The reports per model group and version (None: drift monitoring is not configured)."""
        if self._drift is None:
            return None
        if not self._drift.reports:
            await self._drift.evaluate()
        return [
            {"model": model, "version": version, "report": report.to_dict()}
            for (model, version), report in sorted(self._drift.reports.items())
        ]

    async def drop_semantic(self, ex: Exchange, model: str) -> None:
        """Every entry of the group's semantic cache, in this process now and in the others as
        soon as they read the drop from Redis."""
        dropped = self._semantic.invalidate(model) if self._semantic is not None else None
        if dropped is None:
            raise NotFound(f"The model group `{model}` has no semantic cache")
        self._record(ex, "cache.semantic.drop", model)
        await ex.json(200, orjson.dumps({"model": model, "dropped": dropped}))
