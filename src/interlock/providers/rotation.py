"""Upstream API keys that rotate without a restart.

Every `secrets.refresh_s` seconds the config is read again, secret references (`vault://`,
`azure-keyvault://`, `file:`) resolved anew, and each deployment whose key changed gets the new
one (`OpenAIProvider.rotate_api_key`; Azure's provider is one too). A failed read keeps the
current keys and says so; it never stops the loop or the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ..config import Settings
from ..errors import ConfigError
from ..lifecycle import Background
from .base import Provider
from .openai import OpenAIProvider

log = logging.getLogger("interlock")


def _keys(settings: Settings) -> dict[str, str | None]:
    return {d.id: getattr(d, "api_key", None) for g in settings.models for d in g.deployments}


class KeyRotation:
    def __init__(
        self, settings: Settings, reload: Callable[[], Settings], providers: Sequence[Provider], interval_s: float
    ) -> None:
        self._current = _keys(settings)
        self._reload = reload
        self._providers = {p.id: p for p in providers if isinstance(p, OpenAIProvider)}
        self._interval_s = interval_s
        self._loop = Background("secret refresh", self._run)

    async def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()

    async def refresh(self) -> list[str]:
        """Read the config again and rotate what changed; the ids of the deployments rotated."""
        try:
            fresh = await asyncio.to_thread(self._reload)
        except ConfigError as exc:
            log.warning("secret refresh failed, keeping the current credentials: %s", exc)
            return []
        rotated = []
        for deployment, key in _keys(fresh).items():
            provider = self._providers.get(deployment)
            if key and key != self._current.get(deployment) and provider is not None:
                provider.rotate_api_key(key)
                self._current[deployment] = key
                rotated.append(deployment)
                log.info("rotated the upstream credential of deployment %s", deployment)
        return rotated
