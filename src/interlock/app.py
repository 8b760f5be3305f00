"""The composition root: builds every object from Settings. The only place wiring happens."""

from __future__ import annotations

import asyncio
import gc
import logging
import os

from .cache import CacheStage, MemoryCache, RedisTier
from .config import (
    AzureDeployment,
    Deployment,
    LocalDeployment,
    OpenAIDeployment,
    Settings,
    load_settings,
)
from .edge import Gateway
from .edge.inference import InferenceHandler
from .edge.info import InfoHandlers
from .observe.metrics import Metrics
from .pipeline.runner import Pipeline, Stage
from .providers.aiohttp_transport import AiohttpTransport
from .providers.azure import AzureProvider
from .providers.base import Provider
from .providers.local import LocalProvider
from .providers.openai import OpenAIProvider
from .providers.pool import NativeTransport
from .providers.transport import Transport
from .routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router

CONFIG_ENV = "INTERLOCK_CONFIG"
log = logging.getLogger("interlock")


def make_transport(settings: Settings) -> Transport:
    if settings.upstream.client == "aiohttp":
        return AiohttpTransport(settings.upstream)
    return NativeTransport(settings.upstream)


def make_provider(spec: Deployment, http: Transport, metrics: Metrics) -> Provider:
    if isinstance(spec, OpenAIDeployment):
        return OpenAIProvider(spec, http)
    if isinstance(spec, AzureDeployment):
        return AzureProvider(spec, http)
    if isinstance(spec, LocalDeployment):
        return LocalProvider(spec, metrics)
    raise TypeError(f"unknown deployment kind {type(spec).__name__}")  # unreachable: config is validated


def tune_gc(settings: Settings) -> None:
    server = settings.server
    if server.gc_freeze:
        gc.collect()
        gc.freeze()  # start-up objects (config, models, compiled patterns) are never scanned again
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(server.gc_gen0_threshold, gen1, gen2)


def build(settings: Settings, metrics: Metrics | None = None) -> Gateway:
    metrics = metrics or Metrics()
    http = make_transport(settings)
    circuit = settings.router.circuit
    providers: list[Provider] = []
    groups: list[GroupRuntime] = []
    for group in settings.models:
        runtimes = []
        for spec in group.deployments:
            provider = make_provider(spec, http, metrics)
            providers.append(provider)
            breaker = CircuitBreaker(circuit.failures, circuit.window, circuit.cooldown)
            runtimes.append(DeploymentRuntime(provider=provider, weight=spec.weight, circuit=breaker))
        groups.append(GroupRuntime(group.name, runtimes, group.strategy, list(group.fallbacks)))
    router = Router(groups, settings.router, metrics)

    redis = RedisTier.from_settings(settings.cache.redis, metrics) if settings.cache.redis else None
    memory = MemoryCache(settings.cache.memory_bytes, settings.cache.max_entry_bytes)
    stages: list[Stage] = [CacheStage({g.name: g.cache for g in settings.models}, memory, redis, metrics)]
    pipeline = Pipeline(stages, router)

    async def check(provider: Provider) -> bool:
        try:
            return await provider.ready()
        except Exception:  # a readiness probe reports, it does not fail
            return False

    async def ready_check() -> dict[str, bool]:
        results = await asyncio.gather(*(check(p) for p in providers))
        return {p.id: ok for p, ok in zip(providers, results, strict=True)}

    def groups_ready(status: dict[str, bool]) -> bool:
        return all(any(status.get(d.id) for d in g.deployments) for g in groups)

    async def startup() -> None:
        await asyncio.gather(*(p.start() for p in providers))
        tune_gc(settings)
        log.info("interlock ready: %d model group(s): %s", len(groups), ", ".join(g.name for g in groups))

    async def shutdown() -> None:
        await asyncio.gather(*(p.close() for p in providers), return_exceptions=True)
        await http.close()
        if redis is not None:
            await redis.close()

    inference = InferenceHandler(pipeline, router, metrics, settings.server.max_body_bytes)
    info = InfoHandlers([g.name for g in settings.models], metrics, ready_check, groups_ready)
    return Gateway(inference, info, startup, shutdown)


def create_app() -> Gateway:
    """Uvicorn's factory: each worker process builds its own gateway from the same config."""
    return build(load_settings(os.environ.get(CONFIG_ENV) or None))
