"""The retraining trigger: when a rule with the `retrain` action fires, post the drift report.

The body is JSON: the model group, version, the rule that fired (name, signal, value, threshold)
and `drift_report`, the dict the signal provider hands over (`DriftReport.to_dict()`), posted to
`alerts.retrain.url` (an Azure ML pipeline endpoint, a CI job's webhook) with the optional bearer
`token` (which the config may write as `env:NAME`, `file:...` or `vault://...`).

At most one post per `cooldown_s` per model group: the cool-down is claimed before posting with
`SET key token NX PX` in Redis, so replicas share it; without Redis (or while Redis fails) it is
held in process. A post that fails after its retries gives the cool-down back (only if it is still
ours), so the next firing can try again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..config import RetrainSettings
from .notify import HttpPoster

log = logging.getLogger("interlock.alerts")

# Delete the key only if it still holds our token (a later claim by another replica stays).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Cooldown(Protocol):
    async def acquire(self, key: str, ttl_s: float) -> str | None:
        """A token if the cool-down was free (and is now ours for `ttl_s`), else None."""

    async def release(self, key: str, token: str) -> None: ...


class LocalCooldown:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, key: str, ttl_s: float) -> str | None:
        now = self._clock()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._held[key] = (token, now + ttl_s)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._held.get(key)
        if held is not None and held[0] == token:
            del self._held[key]


class RedisCooldown:
    """Shared by replicas; falls back to `fallback` (in process) while Redis fails."""

    def __init__(self, redis: Redis, prefix: str, fallback: LocalCooldown | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._fallback = fallback or LocalCooldown()

    async def acquire(self, key: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        try:
            ok = await self._redis.set(self._prefix + key, token, nx=True, px=max(1, int(ttl_s * 1000)))
        except RedisError as exc:
            log.warning("retrain cool-down: Redis failed (%s); holding it in this process", type(exc).__name__)
            return await self._fallback.acquire(key, ttl_s)
        return token if ok else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self._prefix + key, token)
        except RedisError as exc:
            log.warning("retrain cool-down: Redis failed on release (%s)", type(exc).__name__)
        await self._fallback.release(key, token)


class RetrainTrigger:
    def __init__(self, settings: RetrainSettings, poster: HttpPoster, cooldown: Cooldown) -> None:
        self._settings = settings
        self._poster = poster
        self._cooldown = cooldown
        headers = dict(settings.headers)
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._headers = headers

    async def trigger(self, model: str, payload: Mapping[str, Any]) -> bool:
        """Post `payload` for `model` unless its cool-down is running; True when posted."""
        s = self._settings
        key = f"retrain:{model}"
        token = await self._cooldown.acquire(key, s.cooldown_s)
        if token is None:
            log.info("retraining for model group %s is cooling down; not posted", model)
            return False
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        ok = await self._poster.post(
            "retrain endpoint", s.url, body, self._headers, s.timeout_ms / 1000, s.max_attempts, s.backoff_s, 60.0
        )
        if ok:
            log.info("retraining requested for model group %s", model)
        else:
            await self._cooldown.release(key, token)
        return ok
