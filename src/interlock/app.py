"""The composition root: builds every object from Settings. The only place wiring happens."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from .cache import CacheStage, MemoryCache, RedisTier
from .config import (
    AlertRule,
    AzureDeployment,
    Deployment,
    DlpSettings,
    LocalDeployment,
    OpenAIDeployment,
    RedisSettings,
    RolloutSettings,
    SecuritySettings,
    Settings,
    load_settings,
)
from .edge import Gateway
from .edge.admin import AdminHandlers
from .edge.inference import InferenceHandler
from .edge.info import InfoHandlers
from .edge.rollouts import RolloutHandlers
from .errors import ConfigError
from .observe.alerting import AlertEngine, AlertGauges, WindowSignals, make_alerts
from .observe.alerts import Alert, State
from .observe.metrics import Metrics
from .observe.stage import TelemetryStage
from .observe.tracing import Tracing, make_tracing, traced
from .observe.window import RequestStats, replica_id
from .pipeline.runner import Pipeline, Stage
from .providers.aiohttp_transport import AiohttpTransport
from .providers.azure import AzureProvider
from .providers.base import Provider
from .providers.local import LocalProvider
from .providers.openai import OpenAIProvider
from .providers.pool import NativeTransport
from .providers.transport import Transport
from .rollout.controller import Event
from .rollout.driver import RolloutDriver
from .rollout.mirror import ShadowRunner
from .rollout.observations import GatewayObservations, ShadowLog
from .rollout.store import RedisRolloutStore, RolloutStore, SqliteRolloutStore
from .routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from .security.audit import AuditLog, AuditStore, PostgresAuditStore, SQLiteAuditStore
from .security.auth import Authenticator
from .security.dlp import DlpStage, policy_from
from .security.keystore import KeyStore, PostgresKeyStore, SQLiteKeyStore
from .security.limit_stage import LimitStage, Plans, Price, Rate, SpendStage
from .security.limits import Limiter, LocalCounters, RedisCounters
from .security.oidc import OidcConfig, OidcVerifier
from .security.pii.detector import PatternDetector
from .security.pii.ner import NerDetector
from .security.pii.presidio import PresidioDetector
from .security.pii.vault import MemoryVaultStore, RedisVaultStore, TokenVault, VaultStore
from .security.roles import DEFAULT_ROLES, Permission, class_rank
from .stores.redis import redis_client

if TYPE_CHECKING:
    from .observe.drift import DriftReport
    from .observe.monitor import DriftMonitor

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


def build(
    settings: Settings,
    metrics: Metrics | None = None,
    reload: Callable[[], Settings] | None = None,
    tracing: Tracing | None = None,
) -> Gateway:
    """Wire everything. `reload` re-reads the config, secrets included; with it, upstream API
    keys are refreshed every `secrets.refresh_s` seconds. `tracing` replaces the one the
    settings describe (tests pass one exporting to memory)."""
    metrics = metrics or Metrics()
    tracing = tracing or make_tracing(settings.telemetry)
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
            runtimes.append(
                DeploymentRuntime(
                    provider=provider,
                    weight=spec.weight,
                    circuit=breaker,
                    max_class=class_rank(spec.max_class),
                    version=spec.version,
                )
            )
        groups.append(GroupRuntime(group.name, runtimes, group.strategy, list(group.fallbacks)))
    router = Router(groups, settings.router, metrics)

    redis = RedisTier.from_settings(settings.cache.redis, metrics) if settings.cache.redis else None
    memory = MemoryCache(settings.cache.memory_bytes, settings.cache.max_entry_bytes)
    limit_stage, spend_stage = make_limit_stages(settings, metrics)
    stages: list[Stage] = [limit_stage]
    dlp_stage = make_dlp_stage(settings.dlp, metrics) if settings.dlp is not None else None
    if dlp_stage is not None:
        stages.append(dlp_stage)
    # The cache comes after DLP: it keys on, and stores, the protected request and answer.
    stages.append(CacheStage({g.name: g.cache for g in settings.models}, memory, redis, metrics))
    # Budgets and tokens per minute only for what reaches a model: a cache hit spends neither.
    if spend_stage is not None:
        stages.append(spend_stage)
    # Innermost: sees only what a deployment generated, and strips sampled logprobs before the
    # cache stores the answer (observe/stage.py says why that order matters).
    stages.append(TelemetryStage(metrics, settings.telemetry.logprobs_sample, random.Random()))
    # Traced copies of the stages only when tracing is on, run only for sampled requests.
    pipeline = Pipeline(stages, router, traced(stages) if tracing is not None else None)

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

    roles = roles_table(settings.security)
    store = make_key_store(settings.security)
    oidc = make_oidc(settings.security)
    secret = (settings.security.server_secret or "").encode()
    auth = Authenticator(store, secret, roles, oidc, settings.security.key_cache_ttl)

    audit = make_audit_log(settings)
    export = functools.partial(_export_drift, metrics)
    drift = make_drift_monitor(settings, on_report=export, on_dropped=metrics.drift_dropped.inc)
    stats, alerts, alerts_redis = make_alerting(settings, metrics, drift)
    rollouts = make_rollouts(settings, stats, alerts, router, metrics) if stats is not None else None
    if rollouts is not None:
        router.rollouts = rollouts.driver

    refresher: list[asyncio.Task[None]] = []

    async def refresh_secrets() -> None:
        assert reload is not None
        current = {d.id: getattr(d, "api_key", None) for g in settings.models for d in g.deployments}
        by_id = {p.id: p for p in providers}
        while True:
            await asyncio.sleep(settings.secrets.refresh_s)
            try:
                fresh = await asyncio.to_thread(reload)
            except ConfigError as exc:
                log.warning("secret refresh failed, keeping the current credentials: %s", exc)
                continue
            for group in fresh.models:
                for spec in group.deployments:
                    key = getattr(spec, "api_key", None)
                    provider = by_id.get(spec.id)
                    if key and key != current.get(spec.id) and isinstance(provider, OpenAIProvider):
                        provider.rotate_api_key(key)  # Azure's provider is one too
                        current[spec.id] = key
                        log.info("rotated the upstream credential of deployment %s", spec.id)

    async def startup() -> None:
        if reload is not None:
            refresher.append(asyncio.get_running_loop().create_task(refresh_secrets()))
        if audit is not None:
            await audit.start()
        if store is not None:
            await store.start()
        await asyncio.gather(*(p.start() for p in providers))
        if dlp_stage is not None:
            await dlp_stage.start()  # loads the named-entity model before the first request
        if drift is not None:
            await drift.start()
        if alerts is not None:
            await alerts.start()
        if rollouts is not None:
            await rollouts.start()
        tune_gc(settings)
        if auth.open:
            log.warning("no API keys or OIDC configured: every caller is admitted (loopback only)")
        log.info("interlock ready: %d model group(s): %s", len(groups), ", ".join(g.name for g in groups))

    async def shutdown() -> None:
        for task in refresher:
            task.cancel()
        if rollouts is not None:
            await rollouts.close()
        await asyncio.gather(*(p.close() for p in providers), return_exceptions=True)
        await http.close()
        if redis is not None:
            await redis.close()
        await limit_stage.close()
        if dlp_stage is not None:
            await dlp_stage.close()
        if audit is not None:
            await audit.close()
        if store is not None:
            await store.close()
        if alerts is not None:
            await alerts.close()
        if alerts_redis is not None:
            await alerts_redis.aclose()
        if drift is not None:
            await drift.close()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # flushes spans still in the exporter's batch

    inference = InferenceHandler(
        pipeline,
        router,
        metrics,
        settings.server.max_body_bytes,
        audit,
        settings.server.request_log,
        settings.server.max_messages,
        tracing,
        drift,
        stats,
        rollouts.driver if rollouts is not None else None,
        rollouts.shadow if rollouts is not None else None,
    )
    info = InfoHandlers([g.name for g in settings.models], metrics, ready_check, groups_ready)
    admin = AdminHandlers(store, secret, roles, audit, drift)
    versions = {g.name: {d.version for d in g.deployments} for g in settings.models}
    rollout_admin = RolloutHandlers(rollouts.driver if rollouts is not None else None, versions, audit)
    return Gateway(inference, info, admin, auth, startup, shutdown, metrics, rollout_admin)


class Rollouts:
    """The rollout parts of one process: the driver, what it measures, shadow traffic, the store."""

    def __init__(
        self,
        driver: RolloutDriver,
        observations: GatewayObservations,
        shadow: ShadowRunner,
        store: RolloutStore,
        redis: Redis | None,
    ) -> None:
        self.driver = driver
        self.observations = observations
        self.shadow = shadow
        self.store = store
        self.redis = redis

    async def start(self) -> None:
        await self.observations.start()
        await self.driver.start()

    async def close(self) -> None:
        await self.shadow.close()
        await self.driver.close()
        await self.observations.close()
        await self.store.close()
        if self.redis is not None:
            await self.redis.aclose()


def rollout_alert(event: Event, version: str) -> Alert:
    """A rollout's automatic abort as an alert the webhooks understand (Alertmanager or JSON)."""
    rule = AlertRule(
        name="RolloutAborted", signal="rollout_analysis", threshold=0.0, severity=event.severity,
        labels={"reason": event.message[:500]},
    )  # fmt: skip
    return Alert(rule, event.model, version, State.FIRING, active_since=event.at, fired_at=event.at)


def make_rollouts(
    settings: Settings, stats: RequestStats, alerts: AlertEngine | None, router: Router, metrics: Metrics
) -> Rollouts | None:
    """The rollout driver and its parts, when `rollout` or `rollouts` is configured. With
    `rollout.redis` the state, the lease, the windows the analyses read and the shadow
    comparisons are shared by every replica; otherwise the state is in a SQLite file."""
    if not settings.rollouts_enabled:
        return None
    config = settings.rollout or RolloutSettings()
    redis = None
    store: RolloutStore
    if config.redis is not None:
        redis = redis_client(config.redis.url, max(config.redis.timeout_ms, 1000) / 1000)
        store = RedisRolloutStore(redis, config.prefix)
    else:
        assert config.sqlite_path is not None  # placed beside the config by load_settings
        store = SqliteRolloutStore(config.sqlite_path)
    shadows = ShadowLog(redis, config.prefix)
    observations = GatewayObservations(stats, shadows, alerts, redis, config.prefix, config.poll_s)

    async def on_event(event: Event) -> None:
        if event.kind != "alert":
            return  # the driver logs every event itself
        if alerts is None:
            log.warning("rollout of %s: %s", event.model, event.message)
            return
        state = driver.state(event.model)
        alerts.post(rollout_alert(event, state.candidate if state is not None else "_none"))

    driver = RolloutDriver(
        store, observations, specs=settings.rollouts, owner=replica_id(), poll_s=config.poll_s,
        lease_ttl_s=config.lease_ttl_s, status_window_s=config.status_window_s, on_event=on_event,
    )  # fmt: skip
    embed = None
    if config.shadow_embeddings or (settings.drift is not None and settings.drift.embeddings):
        from .embed import MiniLmEmbedder

        embed = MiniLmEmbedder().embed
    shadow = ShadowRunner(driver, router, shadows, metrics, config.shadow_timeout_s, config.shadow_concurrency, embed)
    return Rollouts(driver, observations, shadow, store, redis)


def make_limit_stages(settings: Settings, metrics: Metrics) -> tuple[LimitStage, SpendStage | None]:
    """Requests per minute before the cache; budgets and tokens per minute after it, when any can
    apply (API keys carry their own). One limiter and one cache of plans serve both."""
    limits = settings.limits
    local = LocalCounters()
    counters: LocalCounters | RedisCounters = local
    fallback: LocalCounters | None = None
    if limits.redis is not None:
        timeout = limits.redis.timeout_ms / 1000
        counters = RedisCounters(redis_client(limits.redis.url, timeout), "interlock:limits:", timeout)
        fallback = local if limits.on_redis_error == "allow" else None
    limiter = Limiter(counters, fallback, metrics.limit_error)
    tenants = {k: Rate(v.rpm, v.tpm, v.budget) for k, v in limits.tenants.items()}
    models = {k: Rate(v.rpm, v.tpm, v.budget) for k, v in limits.models.items()}
    prices = {
        d.id: Price(d.price.input, d.price.output)
        for g in settings.models
        for d in g.deployments
        if d.price is not None
    }
    plans = Plans(tenants, models)
    rates = [*tenants.values(), *models.values()]
    spend = None
    if settings.security.keys is not None or any(r.tpm or r.budget is not None for r in rates):
        spend = SpendStage(limiter, plans, limits.default_max_tokens, metrics, prices, limits.budget_period)
    return LimitStage(limiter, plans, metrics), spend


def make_audit_store(settings: Settings) -> AuditStore | None:
    audit = settings.audit
    if audit is None:
        return None
    if audit.postgres_dsn:
        return PostgresAuditStore(audit.postgres_dsn)
    assert audit.sqlite_path is not None  # placed beside the config by load_settings
    return SQLiteAuditStore(audit.sqlite_path)


def make_audit_log(settings: Settings) -> AuditLog | None:
    store = make_audit_store(settings)
    if store is None or settings.audit is None or settings.audit.spool_path is None:
        return None
    return AuditLog(store, Path(settings.audit.spool_path))


def make_dlp_stage(dlp: DlpSettings, metrics: Metrics) -> DlpStage:
    vault = None
    if dlp.tokenization_key:
        if dlp.vault.redis is not None:
            store: VaultStore = RedisVaultStore(redis_client(dlp.vault.redis.url, dlp.vault.redis.timeout_ms / 1000))
        else:
            store = MemoryVaultStore()
        vault = TokenVault(dlp.tokenization_key.encode(), store, dlp.vault.ttl)
    policies = {name: policy_from(name, p) for name, p in dlp.policies.items()}
    ner = NerDetector(dlp.ner_model) if any(p.ner for p in dlp.policies.values()) else None
    presidio = (
        PresidioDetector(dlp.ner_model, dlp.threshold) if any(p.presidio for p in dlp.policies.values()) else None
    )
    return DlpStage(PatternDetector(threshold=dlp.threshold), policies, dlp.models, vault, metrics, ner, presidio)


def roles_table(security: SecuritySettings) -> dict[str, frozenset[Permission]]:
    table = dict(DEFAULT_ROLES)
    for name, permissions in security.roles.items():
        table[name] = frozenset(Permission(p) for p in permissions)
    return table


def make_key_store(security: SecuritySettings) -> KeyStore | None:
    keys = security.keys
    if keys is None:
        return None
    if keys.postgres_dsn:
        return PostgresKeyStore(keys.postgres_dsn)
    assert keys.sqlite_path is not None  # placed beside the config by load_settings
    return SQLiteKeyStore(keys.sqlite_path)


def make_oidc(security: SecuritySettings) -> OidcVerifier | None:
    o = security.oidc
    if o is None:
        return None
    audience = (o.audience,) if isinstance(o.audience, str) else tuple(o.audience)
    return OidcVerifier(
        OidcConfig(
            issuer=o.issuer, audience=audience, jwks_url=o.jwks_url, algorithms=tuple(o.algorithms),
            roles_claim=o.roles_claim, role_map=dict(o.role_map), default_roles=tuple(o.default_roles),
            tenant_claim=o.tenant_claim, default_tenant=o.default_tenant, leeway=o.leeway,
            min_refresh_s=o.jwks_min_refresh_s,
        )
    )  # fmt: skip


def create_app() -> Gateway:
    """Uvicorn's factory: each worker process builds its own gateway from the same config."""
    path = os.environ.get(CONFIG_ENV) or None
    settings = load_settings(path)
    reload = None
    if path is not None and any(s in Path(path).read_text() for s in ("vault://", "azure-keyvault://", "file:")):
        reload = functools.partial(load_settings, path)  # references that can change while we run
    return build(settings, reload=reload)


def make_alerting(
    settings: Settings, metrics: Metrics, drift: DriftMonitor | None
) -> tuple[RequestStats | None, AlertEngine | None, Redis | None]:
    """The rolling request windows every request records into, and the alert engine that reads
    them and the drift reports (all None without an `alerts` section; the windows alone when
    rollouts are configured without alerts)."""
    config = settings.alerts
    if config is None:
        if settings.rollouts_enabled:  # the windows rollouts measure, without alerts
            rollout = settings.rollout or RolloutSettings()
            return RequestStats(rollout.retention_s, rollout.bucket_s), None, None
        return None, None, None
    stats = RequestStats(config.retention_s, config.bucket_s)
    redis = redis_client(config.redis.url, config.redis.timeout_ms / 1000) if config.redis is not None else None
    reports = (lambda: drift.reports) if drift is not None else None
    signals = WindowSignals(stats, reports, redis, config.prefix, ttl_s=3 * config.evaluate_s)
    return stats, make_alerts(settings, signals, AlertGauges(metrics.registry), redis), redis


def _export_drift(metrics: Metrics, model: str, version: str, report: DriftReport) -> None:
    tested = {f.name: f.drifted for f in report.features if f.status != "insufficient"}
    metrics.drift(model, version, report.drifted_share, tested)


def make_drift_monitor(
    settings: Settings,
    on_report: Callable[[str, str, DriftReport], None] | None = None,
    on_dropped: Callable[[], None] | None = None,
) -> DriftMonitor | None:
    """The drift monitor, when configured. Imported here: the statistics pull in scipy (about
    1.7 s at start), which a gateway without drift monitoring should not pay for."""
    drift = settings.drift
    if drift is None:
        return None
    from .embed import MiniLmEmbedder
    from .observe.monitor import DriftMonitor, MonitorSettings

    monitor_settings = MonitorSettings(
        sample=drift.sample,
        max_per_s=drift.max_per_s,
        embed_sample=drift.embed_sample,
        embed_max_per_s=drift.embed_max_per_s,
        window_s=drift.window_s,
        evaluate_s=drift.evaluate_s,
        references=dict(drift.references),
    )
    redis = None
    prefix = "interlock:drift:"
    if drift.redis is not None:
        redis = redis_client(drift.redis.url, max(drift.redis.timeout_ms, 1000) / 1000)  # blobs, not counters
        prefix = drift.redis.prefix if drift.redis.prefix != RedisSettings().prefix else prefix
    embedder = MiniLmEmbedder() if drift.embeddings else None
    return DriftMonitor(monitor_settings, redis, prefix, embedder, on_report=on_report, on_dropped=on_dropped)
