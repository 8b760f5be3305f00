"""Readiness: each deployment's own probe, and whether every model group can answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .router import Router


class Readiness:
    def __init__(self, router: Router) -> None:
        self._groups = list(router.groups.values())
        self._providers = [d.provider for d in router.deployments()]

    async def check(self) -> dict[str, bool]:
        """Each deployment's probe, by id, run side by side."""
        results = await asyncio.gather(*(self._probe(p.ready) for p in self._providers))
        return {p.id: ok for p, ok in zip(self._providers, results, strict=True)}

    @staticmethod
    async def _probe(ready: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await ready()
        except Exception:  # a readiness probe reports, it does not fail
            return False

    def ready(self, status: dict[str, bool]) -> bool:
        """Every group has at least one deployment that answered its probe."""
        return all(any(status.get(d.id) for d in g.deployments) for g in self._groups)
