"""The composition root: builds every object from Settings. The only place wiring happens.

`build` reads top to bottom in the order things depend on each other, and registers each part
with the `Lifecycle` as it is built: start runs in this order, shutdown in exactly the reverse.
Every Redis client is made here and closed here; no object makes its own. The `make_*` helpers
below build one area each and return what the rest needs of it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from redis.asyncio import Redis

from .cache import CachedAnswer, CacheStage, MemoryCache, RedisTier
from .config import (
    AlertRule,
    AzureDeployment,
    Deployment,
    DlpSettings,
    EmbeddingsSettings,
    LocalDeployment,
    MiniLmDeployment,
    OpenAIDeployment,
    RedisSettings,
    RetrievalSettings,
    RolloutSettings,
    SecuritySettings,
    Settings,
    load_settings,
)
from .edge import Gateway
from .edge.admin import AdminHandlers
from .edge.inference import InferenceHandler
from .edge.info import InfoHandlers
from .edge.parse import RequestParser
from .edge.retrieval_routes import RetrievalRoutes
from .edge.rollouts import RolloutHandlers
from .edge.ui import UiHandlers
from .embeddings.types import TextEmbedder
from .errors import ConfigError
from .lifecycle import Lifecycle
from .observe.alerting import AlertEngine, AlertGauges, AlertMetrics, Lease, WindowSignals
from .observe.alerts import Alert, SignalProvider, State
from .observe.dashboard import Traffic
from .observe.metrics import Metrics
from .observe.notify import HttpPoster, Notifier
from .observe.record import (
    DriftRecorder,
    MetricsRecorder,
    Recorder,
    RequestRecords,
    ShadowRecorder,
    TraceRecorder,
    WindowRecorder,
)
from .observe.retrain import LocalCooldown, RedisCooldown, RetrainTrigger
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
from .providers.rotation import KeyRotation
from .providers.transport import Transport
from .rollout.controller import Event
from .rollout.driver import RolloutDriver
from .rollout.mirror import ShadowRunner
from .rollout.observations import GatewayObservations, ShadowLog
from .rollout.store import RedisRolloutStore, RolloutStore, SqliteRolloutStore
from .routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from .routing.readiness import Readiness
from .security.audit import AuditLog, AuditStore, ChainCheck, PostgresAuditStore, SQLiteAuditStore
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
from .security.sessions import MemorySessionStore, RedisSessionStore, Sessions, SessionStore
from .stores.redis import redis_client

if TYPE_CHECKING:
    from .cache.semantic_stage import SemanticCacheStage
    from .embeddings.service import EmbeddingService
    from .observe.drift import DriftReport
    from .observe.monitor import DriftMonitor, Embedder
    from .prompts.templates import TemplateBook
    from .retrieval.service import VectorStores
    from .retrieval.stage import RetrievalStage
    from .retrieval.types import Catalog, FileCounts

CONFIG_ENV = "INTERLOCK_CONFIG"
BLOB_TIMEOUT_MS = 1000  # Redis clients that move blobs (drift windows, rollout state), not counters
MAX_SHARED_SEMANTIC = 100_000  # semantic cache entries the Redis stream retains, at most
log = logging.getLogger("interlock")


def build(
    settings: Settings,
    metrics: Metrics | None = None,
    reload: Callable[[], Settings] | None = None,
    tracing: Tracing | None = None,
    embedder: TextEmbedder | None = None,
) -> Gateway:
    """Wire everything. `reload` re-reads the config, secrets included; with it, upstream API
    keys are refreshed every `secrets.refresh_s` seconds. `tracing` replaces the one the
    settings describe (tests pass one exporting to memory). `embedder` replaces the embedding
    service for the semantic cache."""
    life = Lifecycle()
    metrics = metrics or Metrics()
    tracing = tracing or make_tracing(settings.telemetry)
    if tracing is not None:  # closed last: flushes the spans of everything else
        life.add(tracing, close=functools.partial(asyncio.to_thread, tracing.shutdown))
    embeddings = make_embeddings(settings, metrics, life)
    providers = make_providers(settings, metrics, life, embeddings)
    groups = make_groups(settings, providers)
    drift = make_drift_monitor(settings, life, metrics, embeddings)
    stats = make_request_stats(settings)
    alerts = make_alert_engine(settings, metrics, stats, drift, life) if stats is not None else None
    driver, shadows = make_rollout_driver(settings, stats, alerts, life, drift) if stats is not None else (None, None)
    router = Router(groups, settings.router, metrics, rollouts=driver)
    shadow = make_shadow_runner(settings, driver, router, shadows, metrics, life, embeddings)
    audit = make_audit_log(settings, life)
    dlp = make_dlp_stage(settings.dlp, metrics, life) if settings.dlp is not None else None
    vector_stores = make_vector_stores(settings, life, embeddings, dlp, audit, metrics)
    retrieval = make_retrieval_stage(settings, vector_stores) if vector_stores is not None else None
    pipeline, semantic, limit_stage = make_pipeline(
        settings, router, metrics, tracing, life, embedder or embeddings, dlp, retrieval
    )
    limiter = limit_stage.limiter
    roles = roles_table(settings.security)
    store, auth = make_access(settings.security, roles, life)
    recorders = make_recorders(settings, metrics, audit, stats, tracing, drift, shadow)
    traffic = Traffic(prices_of(settings)) if ui_served(settings) else None
    if traffic is not None:
        recorders.append(traffic)
    if reload is not None:
        rotation = KeyRotation(settings, reload, providers, settings.secrets.refresh_s)
        life.add(rotation, rotation.start, rotation.close)
    life.add(None, start=functools.partial(_started, settings, auth))

    parser = RequestParser(
        router,
        settings.server.max_body_bytes,
        settings.server.max_messages,
        driver,
        make_templates(settings),
        retrieval=retrieval is not None,
    )
    inference = InferenceHandler(parser, pipeline, recorders, tracing)
    readiness = Readiness(router)
    info = InfoHandlers([g.name for g in settings.models], metrics, readiness.check, readiness.ready)
    secret = (settings.security.server_secret or "").encode()
    admin = AdminHandlers(store, secret, roles, audit, drift, semantic=semantic)
    rollout_admin = RolloutHandlers(driver, settings.versions(), audit)
    ui = None
    if traffic is not None:
        ui = make_ui(settings, auth, info, admin, traffic, router, driver, store, audit, limiter, life)
    routes = retrieval_routes(settings, vector_stores, limit_stage)
    return Gateway(inference, info, admin, auth, life.start, life.close, metrics, rollout_admin, ui, routes)


async def _started(settings: Settings, auth: Authenticator) -> None:
    tune_gc(settings)
    if settings.ui.enabled and not ui_served(settings):
        log.warning("the dashboard is off: with more than one worker its sessions need `ui.redis`")
    if auth.open:
        log.warning("no API keys or OIDC configured: every caller is admitted (loopback only)")
    names = [g.name for g in settings.models]
    log.info("interlock ready: %d model group(s): %s", len(names), ", ".join(names))


def create_app() -> Gateway:
    """Uvicorn's factory: each worker process builds its own gateway from the same config."""
    path = os.environ.get(CONFIG_ENV) or None
    settings = load_settings(path)
    reload = None
    if path is not None and any(s in Path(path).read_text() for s in ("vault://", "azure-keyvault://", "file:")):
        reload = functools.partial(load_settings, path)  # references that can change while we run
    return build(settings, reload=reload)


def make_templates(settings: Settings) -> TemplateBook | None:
    """The configured prompt templates, compiled once (None without any: a gateway that has none
    does not import Jinja2)."""
    if not settings.templates:
        return None
    from .prompts.templates import TemplateBook

    return TemplateBook(settings.templates)


def tune_gc(settings: Settings) -> None:
    server = settings.server
    if server.gc_freeze:
        gc.collect()
        gc.freeze()  # start-up objects (config, models, compiled patterns) are never scanned again
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(server.gc_gen0_threshold, gen1, gen2)


def section_redis(settings: RedisSettings, min_timeout_ms: int = 0) -> Redis:
    """A Redis client for one section; the caller closes it. `min_timeout_ms`: sections that
    move blobs rather than counters (BLOB_TIMEOUT_MS) wait at least this long."""
    return redis_client(settings.url, max(settings.timeout_ms, min_timeout_ms) / 1000)


def make_redis(settings: RedisSettings, life: Lifecycle, min_timeout_ms: int = 0) -> Redis:
    """`section_redis`, closed with the gateway (after everything built on it)."""
    client = section_redis(settings, min_timeout_ms)
    return life.add(client, close=client.aclose)


# -- embeddings --------------------------------------------------------------------------------------
def uses_embeddings(settings: Settings) -> bool:
    """Whether anything configured embeds: a MiniLM deployment, drift topics, shadow similarity,
    a semantic cache."""
    serves = any(isinstance(d, MiniLmDeployment) for g in settings.models for d in g.deployments)
    drift = settings.drift is not None and settings.drift.embeddings
    shadow = settings.rollout is not None and settings.rollout.shadow_embeddings
    semantic = any(g.cache.semantic is not None for g in settings.models)
    return serves or drift or shadow or semantic or settings.retrieval is not None


def make_embeddings(settings: Settings, metrics: Metrics, life: Lifecycle) -> EmbeddingService | None:
    """The one embedding service (model, batcher, precomputed store), when anything embeds;
    started before the providers that serve it and closed after them."""
    if not uses_embeddings(settings):
        return None
    return life.add(*embedding_service(settings.embeddings, metrics, life))


def embedding_service(
    config: EmbeddingsSettings, metrics: Metrics, life: Lifecycle
) -> tuple[EmbeddingService, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """The service and its start and close (the CLI's warm command runs it outside a gateway).
    Imported here: numpy and the tokenizer are not loaded by a gateway that never embeds."""
    from .embeddings.batcher import MicroBatcher
    from .embeddings.minilm import DIM, MiniLmEmbedder
    from .embeddings.service import EmbeddingService
    from .embeddings.store import Embedded, EmbeddingStore
    from .embeddings.warm import read_queries

    model_dir = Path(config.model_dir) if config.model_dir else None
    embedder = MiniLmEmbedder(model_dir, batch_size=config.max_batch, concurrency=config.threads)
    batcher = MicroBatcher(
        embedder.embed_counted,
        max_batch=config.max_batch,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        threads=config.threads,
        on_batch=metrics.embedding_pass,
    )
    store = None
    if config.store is not None:
        tier = None
        if config.store.redis is not None:
            redis = RedisTier(
                make_redis(config.store.redis, life), config.store.redis, metrics, tier="embeddings-redis"
            )
            tier = life.add(redis, close=redis.close)
        memory = MemoryCache[Embedded](config.store.memory_bytes, config.store.memory_bytes)
        store = EmbeddingStore(DIM, memory, tier, metrics, config.store.ttl)
    service = EmbeddingService(embedder, batcher, store, timeout_s=config.timeout_s)

    async def start() -> None:
        await service.start()
        if config.warm_file is not None:
            stored, failed = await service.warm(read_queries(Path(config.warm_file)))
            log.info("embeddings: %d common queries warmed (%d not stored in Redis)", stored, failed)

    return service, start, service.close


# -- models: providers, groups, the request path ---------------------------------------------------
def make_transport(settings: Settings) -> Transport:
    if settings.upstream.client == "aiohttp":
        return AiohttpTransport(settings.upstream)
    return NativeTransport(settings.upstream)


def make_provider(
    spec: Deployment, http: Transport, metrics: Metrics, embeddings: EmbeddingService | None = None
) -> Provider:
    if isinstance(spec, MiniLmDeployment):
        from .providers.minilm import MiniLmProvider  # numpy: only for a gateway that embeds

        assert embeddings is not None  # make_embeddings builds it when a MiniLM deployment is configured
        return MiniLmProvider(spec, embeddings)
    if isinstance(spec, OpenAIDeployment):
        return OpenAIProvider(spec, http)
    if isinstance(spec, AzureDeployment):
        return AzureProvider(spec, http)
    if isinstance(spec, LocalDeployment):
        return LocalProvider(spec, metrics)
    raise TypeError(f"unknown deployment kind {type(spec).__name__}")  # unreachable: config is validated


def make_providers(
    settings: Settings, metrics: Metrics, life: Lifecycle, embeddings: EmbeddingService | None = None
) -> list[Provider]:
    """One provider per deployment, over one pooled HTTP client for the process."""
    http = make_transport(settings)
    life.add(http, close=http.close)
    providers = [
        make_provider(spec, http, metrics, embeddings) for group in settings.models for spec in group.deployments
    ]

    async def start() -> None:  # side by side: loading several local models one after another is slow
        await asyncio.gather(*(p.start() for p in providers))

    async def close() -> None:
        await asyncio.gather(*(p.close() for p in providers), return_exceptions=True)

    return life.add(providers, start, close)


def make_groups(settings: Settings, providers: list[Provider]) -> list[GroupRuntime]:
    by_id = {p.id: p for p in providers}
    circuit = settings.router.circuit
    return [
        GroupRuntime(
            group.name,
            [
                DeploymentRuntime(
                    provider=by_id[spec.id],
                    weight=spec.weight,
                    circuit=CircuitBreaker(circuit.failures, circuit.window, circuit.cooldown),
                    max_class=class_rank(spec.max_class),
                    version=spec.version,
                )
                for spec in group.deployments
            ],
            group.strategy,
            list(group.fallbacks),
        )
        for group in settings.models
    ]


def make_pipeline(
    settings: Settings,
    router: Router,
    metrics: Metrics,
    tracing: Tracing | None,
    life: Lifecycle,
    embedder: TextEmbedder | None = None,
    dlp: DlpStage | None = None,
    retrieval: RetrievalStage | None = None,
) -> tuple[Pipeline, SemanticCacheStage | None, LimitStage]:
    """The stages, outermost first, around the router; the semantic cache stage, when a group
    has one (the admin route invalidates through it); and the limit stage (the dashboard reads
    its limiter, the Files and Vector Stores routes count requests through it)."""
    limit_stage, spend_stage = make_limit_stages(settings, metrics, life)
    stages: list[Stage] = [limit_stage]
    if dlp is not None:
        stages.append(dlp)
    # After DLP, before the caches: the turn it searches with is the one DLP left, the chunks it
    # adds were screened at ingestion, and the caches key on the body with the chunks in it
    # (retrieval/stage.py says more).
    if retrieval is not None:
        stages.append(retrieval)
    # The cache comes after DLP: it keys on, and stores, the protected request and answer.
    redis = None
    if settings.cache.redis is not None:
        tier = RedisTier(make_redis(settings.cache.redis, life), settings.cache.redis, metrics)
        redis = life.add(tier, close=tier.close)
    memory = MemoryCache[CachedAnswer](settings.cache.memory_bytes, settings.cache.max_entry_bytes)
    stages.append(CacheStage({g.name: g.cache for g in settings.models}, memory, redis, metrics))
    # After the exact cache: an identical request is answered there, for less than an embedding.
    semantic = make_semantic_stage(settings, embedder, metrics, life) if embedder is not None else None
    if semantic is not None:
        stages.append(semantic)
    # Budgets and tokens per minute only for what reaches a model: a cache hit spends neither.
    if spend_stage is not None:
        stages.append(spend_stage)
    # Innermost: sees only what a deployment generated, and strips sampled logprobs before the
    # cache stores the answer (observe/stage.py says why that order matters).
    stages.append(TelemetryStage(metrics, settings.telemetry.logprobs_sample, random.Random()))
    # Traced copies of the stages only when tracing is on, run only for sampled requests.
    traced_stages = traced(stages, settings.telemetry.stage_spans) if tracing is not None else None
    pipeline = Pipeline(stages, router, traced_stages)
    return pipeline, semantic, limit_stage


def make_semantic_stage(
    settings: Settings, embedder: TextEmbedder, metrics: Metrics, life: Lifecycle
) -> SemanticCacheStage | None:
    """The semantic cache of the groups that configure one, shared through the cache's Redis
    (its own client: the follower blocks on a read longer than the cache's timeout). Imported
    here: numpy and the index are for gateways that configure a semantic cache."""
    from .cache.semantic_memory import SemanticMemory
    from .cache.semantic_share import SemanticShare
    from .cache.semantic_stage import SemanticCacheStage

    policies = {g.name: g.cache for g in settings.models if g.cache.semantic is not None}
    if not policies:
        return None
    memories = {
        name: SemanticMemory(
            embedder.dimensions, p.semantic.max_entries, p.semantic.max_partitions, p.semantic.max_bytes
        )
        for name, p in policies.items()
        if p.semantic is not None
    }
    share = None
    redis = settings.cache.redis
    if redis is not None:
        retained = sum(p.semantic.max_entries * p.semantic.max_partitions for p in policies.values() if p.semantic)
        client = make_redis(redis, life, BLOB_TIMEOUT_MS)
        share = SemanticShare(client, redis, memories, metrics, min(retained, MAX_SHARED_SEMANTIC))
        life.add(share, share.start, share.close)
    max_entry = settings.cache.max_entry_bytes
    return SemanticCacheStage(policies, memories, embedder, metrics, share, max_entry)


def make_limit_stages(settings: Settings, metrics: Metrics, life: Lifecycle) -> tuple[LimitStage, SpendStage | None]:
    """Requests per minute before the cache; budgets and tokens per minute after it, when any can
    apply (API keys carry their own). One limiter and one cache of plans serve both."""
    limits = settings.limits
    local = LocalCounters()
    counters: LocalCounters | RedisCounters = local
    fallback: LocalCounters | None = None
    if limits.redis is not None:
        client = make_redis(limits.redis, life)
        counters = RedisCounters(client, "interlock:limits:", limits.redis.timeout_ms / 1000)
        fallback = local if limits.on_redis_error == "allow" else None
    limiter = Limiter(counters, fallback, metrics.limit_error)
    life.add(limiter, close=limiter.close)  # gives unused leased units back to Redis
    tenants, models = limit_rates(settings)
    prices = prices_of(settings)
    plans = Plans(tenants, models)
    rates = [*tenants.values(), *models.values()]
    spend = None
    if settings.security.keys is not None or any(r.tpm or r.budget is not None for r in rates):
        spend = SpendStage(limiter, plans, limits.default_max_tokens, metrics, prices, limits.budget_period)
    return LimitStage(limiter, plans, metrics), spend


def limit_rates(settings: Settings) -> tuple[dict[str, Rate], dict[str, Rate]]:
    """The configured limits of tenants and of model groups."""
    limits = settings.limits
    tenants = {k: Rate(v.rpm, v.tpm, v.budget) for k, v in limits.tenants.items()}
    return tenants, {k: Rate(v.rpm, v.tpm, v.budget) for k, v in limits.models.items()}


def prices_of(settings: Settings) -> dict[str, Price]:
    """Each priced deployment's price, by id."""
    return {
        d.id: Price(d.price.input, d.price.output)
        for g in settings.models
        for d in g.deployments
        if d.price is not None
    }


def make_dlp_stage(dlp: DlpSettings, metrics: Metrics, life: Lifecycle) -> DlpStage:
    vault = None
    if dlp.tokenization_key:
        if dlp.vault.redis is not None:
            store: VaultStore = RedisVaultStore(make_redis(dlp.vault.redis, life))
        else:
            store = MemoryVaultStore()
        vault = TokenVault(dlp.tokenization_key.encode(), store, dlp.vault.ttl)
        life.add(vault, close=vault.close)
    policies = {name: policy_from(name, p) for name, p in dlp.policies.items()}
    ner = NerDetector(dlp.ner_model) if any(p.ner for p in dlp.policies.values()) else None
    presidio = (
        PresidioDetector(dlp.ner_model, dlp.threshold) if any(p.presidio for p in dlp.policies.values()) else None
    )
    stage = DlpStage(PatternDetector(threshold=dlp.threshold), policies, dlp.models, vault, metrics, ner, presidio)
    return life.add(stage, start=stage.start)  # loads the named-entity model before the first request


# -- files, vector stores, retrieval --------------------------------------------------------------------
def make_catalog(config: RetrievalSettings) -> Catalog:
    """SQLite beside the config (its ANN index beside it), or PostgreSQL with pgvector. Imported
    here: a gateway without a `retrieval` section loads neither."""
    if config.catalog == "postgres":
        from .retrieval.pg_catalog import PgCatalog

        assert config.postgres_dsn is not None  # checked by RetrievalSettings
        return PgCatalog(config.postgres_dsn, schema=config.postgres_schema)
    from .retrieval.sqlite_catalog import SqliteCatalog

    assert config.directory is not None  # placed beside the config by load_settings
    return SqliteCatalog(Path(config.directory), max_index_bytes=config.index_memory_mb << 20)


def make_vector_stores(
    settings: Settings,
    life: Lifecycle,
    embeddings: EmbeddingService | None,
    dlp: DlpStage | None,
    audit: AuditLog | None,
    metrics: Metrics | None = None,
) -> VectorStores | None:
    """The catalog, the ingestion queue and the service over them, when `retrieval` is configured.
    The catalog starts before the queue (which resumes the files an earlier process left
    in_progress) and closes after it."""
    config = settings.retrieval
    if config is None:
        return None
    assert embeddings is not None  # make_embeddings builds it when retrieval is configured
    from .retrieval.chunking import AUTO, Chunker, static
    from .retrieval.extract import extract_text
    from .retrieval.ingest import Ingestor
    from .retrieval.sealed import Plain, Seal, Sealed
    from .retrieval.service import VectorStores

    catalog = make_catalog(config)
    life.add(catalog, catalog.start, catalog.close)
    key = settings.dlp.tokenization_key if settings.dlp is not None else None
    seal: Seal = Sealed(key.encode()) if key else Plain()
    screen = None
    if dlp is not None:
        screen = functools.partial(dlp.screen_texts, config.dlp_policy or "default", ttl=config.token_ttl_s)
    chunker = Chunker(Path(settings.embeddings.model_dir) if settings.embeddings.model_dir else None)
    ingestor = Ingestor(
        catalog, seal, extract_text, chunker.split, embeddings, screen,
        workers=config.workers, queue_size=config.queue_size, batch=config.embed_batch, metrics=metrics,
    )  # fmt: skip
    chunking = config.chunking
    default = AUTO if chunking is None else static(chunking.max_chunk_size_tokens, chunking.chunk_overlap_tokens)
    service = VectorStores(
        catalog, ingestor, embeddings, seal, default, vault=dlp.vault if dlp is not None else None, screen=screen,
        audit=audit,
        default_class=config.default_data_class, metrics=metrics,
    )  # fmt: skip

    async def start() -> None:
        await ingestor.start(await service.pending())

    return life.add(service, start, ingestor.close)


def make_retrieval_stage(settings: Settings, service: VectorStores) -> RetrievalStage:
    """The stage, with the retrieval template: the one `retrieval.template` names, else a
    `retrieval` template of the config's, else the built-in one."""
    from .config import TemplateSettings
    from .prompts.templates import TemplateBook
    from .retrieval.stage import DEFAULT_SYSTEM, DEFAULT_TEMPLATE, RetrievalStage

    config = settings.retrieval
    assert config is not None
    templates = {DEFAULT_TEMPLATE: TemplateSettings(system=DEFAULT_SYSTEM), **settings.templates}
    groups = {g.name: g.retrieval for g in settings.models if g.retrieval is not None}
    return RetrievalStage(
        service, groups, TemplateBook(templates), config.template or DEFAULT_TEMPLATE, config.max_results
    )


async def ingest_directory(
    settings: Settings, directory: Path, store: str, tenant: str, progress: TextIO
) -> tuple[str, FileCounts]:
    """`interlock ingest`: the retrieval parts of a gateway (catalog, embeddings, DLP, audit)
    without the gateway, every file under `directory` into the store named `store` of `tenant`;
    (the store's id, its file counts)."""
    from .retrieval.directory import ingest_directory as ingest
    from .security.roles import ALL, Identity

    life = Lifecycle()
    metrics = Metrics()
    embeddings = life.add(*embedding_service(settings.embeddings, metrics, life))
    audit = make_audit_log(settings, life)
    dlp = make_dlp_stage(settings.dlp, metrics, life) if settings.dlp is not None else None
    service = make_vector_stores(settings, life, embeddings, dlp, audit)
    if service is None:
        raise ConfigError("$.retrieval: `interlock ingest` needs a `retrieval` section")
    who = Identity(subject="cli", kind="cli", tenant=tenant, roles=("admin",), permissions=ALL, max_class="restricted")
    await life.start()
    try:
        record, counts = await ingest(service, who, directory, store, progress)
    finally:
        await life.close()
    return record.id, counts


def retrieval_routes(settings: Settings, service: VectorStores | None, limits: LimitStage) -> RetrievalRoutes:
    if service is None or settings.retrieval is None:
        return RetrievalRoutes(None, None)
    from .edge.files import FileHandlers
    from .edge.vector_stores import VectorStoreHandlers

    files = FileHandlers(service, settings.retrieval.max_file_bytes)
    return RetrievalRoutes(files, VectorStoreHandlers(service), limits)


# -- access: keys, tokens, roles, the audit trail -------------------------------------------------------
def roles_table(security: SecuritySettings) -> dict[str, frozenset[Permission]]:
    table = dict(DEFAULT_ROLES)
    for name, permissions in security.roles.items():
        table[name] = frozenset(Permission(p) for p in permissions)
    return table


class _Placed(Protocol):
    @property
    def postgres_dsn(self) -> str | None: ...

    @property
    def sqlite_path(self) -> str | None: ...


def _placed(section: _Placed) -> tuple[str | None, str]:
    """(the PostgreSQL DSN or None, the SQLite file load_settings placed beside the config)."""
    assert section.postgres_dsn or section.sqlite_path  # placed beside the config by load_settings
    return section.postgres_dsn, section.sqlite_path or ""


def make_key_store(security: SecuritySettings) -> KeyStore | None:
    if security.keys is None:
        return None
    dsn, path = _placed(security.keys)
    return PostgresKeyStore(dsn) if dsn else SQLiteKeyStore(path)


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


def make_access(
    security: SecuritySettings, roles: dict[str, frozenset[Permission]], life: Lifecycle
) -> tuple[KeyStore | None, Authenticator]:
    store = make_key_store(security)
    if store is not None:
        life.add(store, store.start, store.close)
    secret = (security.server_secret or "").encode()
    return store, Authenticator(store, secret, roles, make_oidc(security), security.key_cache_ttl)


def make_audit_store(settings: Settings) -> AuditStore | None:
    if settings.audit is None:
        return None
    dsn, path = _placed(settings.audit)
    return PostgresAuditStore(dsn) if dsn else SQLiteAuditStore(path)


def make_audit_log(settings: Settings, life: Lifecycle) -> AuditLog | None:
    store = make_audit_store(settings)
    if store is None or settings.audit is None or settings.audit.spool_path is None:
        return None
    audit = AuditLog(store, Path(settings.audit.spool_path))
    return life.add(audit, audit.start, audit.close)  # drains what is queued into the store or the spool


# -- the dashboard -------------------------------------------------------------------------------------
def ui_served(settings: Settings) -> bool:
    """The dashboard is served when enabled, and with more than one worker only when its sessions
    are in Redis (a session one worker opened must be known to the others)."""
    ui = settings.ui
    return ui.enabled and (settings.server.workers == 1 or ui.redis is not None)


def make_ui(
    settings: Settings,
    auth: Authenticator,
    info: InfoHandlers,
    admin: AdminHandlers,
    traffic: Traffic,
    router: Router,
    driver: RolloutDriver | None,
    keys: KeyStore | None,
    audit: AuditLog | None,
    limiter: Limiter,
    life: Lifecycle,
) -> UiHandlers:
    """The dashboard's handlers over what the gateway already keeps, its sessions (in Redis when
    `ui.redis` is set) and the background check of the audit chain."""
    config = settings.ui
    store: SessionStore = MemorySessionStore()
    if config.redis is not None:
        store = RedisSessionStore(make_redis(config.redis, life, BLOB_TIMEOUT_MS), config.prefix)
    sessions = Sessions(store, config.session_ttl_s, config.idle_s, auth.recheck, settings.security.key_cache_ttl)
    chain = None
    if audit is not None:
        chain = ChainCheck(audit.store, config.audit_verify_s)
        life.add(chain, chain.start, chain.close)  # closed before the audit log closes its store
    tenants, models = limit_rates(settings)
    return UiHandlers(
        sessions, auth, info, admin, traffic, router.groups.values(), secure_cookie=config.secure_cookie, driver=driver,
        keys=keys, audit_store=audit.store if audit is not None else None, chain=chain, audit=audit,
        limiter=limiter, tenants=tenants, models=models, budget_period=settings.limits.budget_period,
    )  # fmt: skip


# -- recording: what happens once a request is over ---------------------------------------------------
def make_recorders(
    settings: Settings,
    metrics: Metrics,
    audit: AuditLog | None,
    stats: RequestStats | None,
    tracing: Tracing | None,
    drift: DriftMonitor | None,
    shadow: ShadowRunner | None,
) -> list[Recorder]:
    recorders: list[Recorder] = []
    if audit is not None or settings.server.request_log != "off":
        recorders.append(RequestRecords(audit, settings.server.request_log))
    recorders.append(MetricsRecorder(metrics))
    if stats is not None:  # the windows alerts and rollouts read
        recorders.append(WindowRecorder(stats))
    if tracing is not None:
        recorders.append(TraceRecorder())
    if drift is not None:
        recorders.append(DriftRecorder(drift))
    if shadow is not None:  # after the answer went out; never raises
        recorders.append(ShadowRecorder(shadow))
    return recorders


# -- drift, alerts, rollouts ---------------------------------------------------------------------------
def _export_drift(metrics: Metrics, model: str, version: str, report: DriftReport) -> None:
    tested = {f.name: f.drifted for f in report.features if f.status != "insufficient"}
    metrics.drift(model, version, report.drifted_share, tested)


def make_drift_monitor(
    settings: Settings, life: Lifecycle, metrics: Metrics | None = None, embeddings: EmbeddingService | None = None
) -> DriftMonitor | None:
    """The drift monitor, when configured, started and closed with the gateway. Its topic
    embeddings go through the gateway's embedding service (from the monitor's own thread)."""
    drift = settings.drift
    if drift is None:
        return None
    redis = make_redis(drift.redis, life, BLOB_TIMEOUT_MS) if drift.redis is not None else None
    embedder = embeddings.blocking() if embeddings is not None else None
    monitor = drift_monitor(settings, redis, metrics, embedder)
    return life.add(monitor, monitor.start, monitor.close)


def drift_monitor(
    settings: Settings, redis: Redis | None, metrics: Metrics | None = None, embedder: Embedder | None = None
) -> DriftMonitor:
    """The drift monitor of `settings.drift` over `redis` (the caller's to close). The topic
    feature only when `drift.embeddings` asks for it: through `embedder` (the gateway's embedding
    service, which a MiniLM deployment or a semantic cache may have made), else (the CLI) with a
    model of its own. Imported
    here: the statistics pull in scipy (about 1.7 s at start), which a gateway without drift
    monitoring should not pay for."""
    from .observe.monitor import DriftMonitor, MonitorSettings

    drift = settings.drift
    assert drift is not None
    monitor_settings = MonitorSettings(
        sample=drift.sample,
        max_per_s=drift.max_per_s,
        embed_sample=drift.embed_sample,
        embed_max_per_s=drift.embed_max_per_s,
        window_s=drift.window_s,
        evaluate_s=drift.evaluate_s,
        references=dict(drift.references),
    )
    prefix = "interlock:drift:"
    if drift.redis is not None and drift.redis.prefix != RedisSettings().prefix:
        prefix = drift.redis.prefix
    if not drift.embeddings:
        embedder = None
    elif embedder is None:
        from .embeddings.minilm import MiniLmEmbedder

        embedder = MiniLmEmbedder()
    on_report = functools.partial(_export_drift, metrics) if metrics is not None else None
    on_dropped = metrics.drift_dropped.inc if metrics is not None else None
    return DriftMonitor(monitor_settings, redis, prefix, embedder, on_report=on_report, on_dropped=on_dropped)


def make_request_stats(settings: Settings) -> RequestStats | None:
    """The rolling request windows alerts and rollouts read: None when neither is configured."""
    if settings.alerts is not None:
        return RequestStats(settings.alerts.retention_s, settings.alerts.bucket_s)
    if settings.rollouts_enabled:
        rollout = settings.rollout or RolloutSettings()
        return RequestStats(rollout.retention_s, rollout.bucket_s)
    return None


def make_alert_engine(
    settings: Settings, metrics: Metrics, stats: RequestStats, drift: DriftMonitor | None, life: Lifecycle
) -> AlertEngine | None:
    """The alert engine over the request windows and the drift reports (None without `alerts`)."""
    config = settings.alerts
    if config is None:
        return None
    redis = make_redis(config.redis, life) if config.redis is not None else None
    reports = (lambda: drift.reports) if drift is not None else None
    signals = WindowSignals(stats, reports, redis, config.prefix, ttl_s=3 * config.evaluate_s)
    engine = make_alerts(settings, signals, AlertGauges(metrics.registry), redis)
    if engine is not None:
        life.add(engine, engine.start, engine.close)
    return engine


def make_alerts(
    settings: Settings,
    provider: SignalProvider,
    metrics: AlertMetrics | None = None,
    redis: Redis | None = None,
    replica: str | None = None,
    clock: Callable[[], float] = time.time,
) -> AlertEngine | None:
    """The alert engine for `settings.alerts` (None without that section), its notifier, retrain
    trigger and lease. With `redis` the retrain cool-down is shared and one replica notifies;
    the client is the caller's to close. `replica` names this process for the lease."""
    alerts = settings.alerts
    if alerts is None:
        return None
    poster = HttpPoster()
    on_result = metrics.alert_notification if metrics is not None else None
    notifier = Notifier(alerts.webhooks, poster, alerts.external_url, on_result)
    retrain = None
    if alerts.retrain is not None:
        cooldown = RedisCooldown(redis, alerts.prefix) if redis is not None else LocalCooldown()
        retrain = RetrainTrigger(alerts.retrain, poster, cooldown)
    lease = None
    if redis is not None:
        lease = Lease(redis, alerts.prefix + "notifier", replica or replica_id(), 3 * alerts.evaluate_s)
    return AlertEngine(alerts, provider, notifier, poster, retrain, lease=lease, metrics=metrics, clock=clock)


def rollout_alert(event: Event) -> Alert:
    """A rollout's automatic abort as an alert the webhooks understand (Alertmanager or JSON)."""
    rule = AlertRule(
        name="RolloutAborted", signal="rollout_analysis", threshold=0.0, severity=event.severity,
        labels={"reason": event.message[:500]},
    )  # fmt: skip
    version = event.candidate or "_none"
    return Alert(rule, event.model, version, State.FIRING, active_since=event.at, fired_at=event.at)


class RolloutAlerts:
    """The driver's events: an `alert` (an automatic abort) goes to the webhooks, or to the log
    without an alert engine; the driver logs every event itself."""

    def __init__(self, alerts: AlertEngine | None) -> None:
        self._alerts = alerts

    def __call__(self, event: Event) -> None:
        if event.kind != "alert":
            return
        if self._alerts is None:
            log.warning("rollout of %s: %s", event.model, event.message)
        else:
            self._alerts.post(rollout_alert(event))


def make_rollout_driver(
    settings: Settings,
    stats: RequestStats,
    alerts: AlertEngine | None,
    life: Lifecycle,
    drift: DriftMonitor | None = None,
) -> tuple[RolloutDriver | None, ShadowLog | None]:
    """The rollout driver and the shadow comparisons it reads, when `rollout` or `rollouts` is
    configured. With `rollout.redis` the state, the lease, the windows the analyses read and the
    shadow comparisons are shared by every replica; otherwise the state is in a SQLite file."""
    if not settings.rollouts_enabled:
        return None, None
    config = settings.rollout or RolloutSettings()
    redis = None
    store: RolloutStore
    if config.redis is not None:
        redis = make_redis(config.redis, life, BLOB_TIMEOUT_MS)
        store = RedisRolloutStore(redis, config.prefix)
    else:
        assert config.sqlite_path is not None  # placed beside the config by load_settings
        store = SqliteRolloutStore(config.sqlite_path)
    life.add(store, close=store.close)
    shadows = ShadowLog(redis, config.prefix)
    observations = GatewayObservations(stats, shadows, alerts, redis, config.prefix, config.poll_s, drift)
    life.add(observations, observations.start, observations.close)
    driver = RolloutDriver(
        store, observations, specs=settings.rollouts, owner=replica_id(), poll_s=config.poll_s,
        lease_ttl_s=config.lease_ttl_s, status_window_s=config.status_window_s, on_event=RolloutAlerts(alerts),
    )  # fmt: skip
    return life.add(driver, driver.start, driver.close), shadows


def make_shadow_runner(
    settings: Settings,
    driver: RolloutDriver | None,
    router: Router,
    shadows: ShadowLog | None,
    metrics: Metrics,
    life: Lifecycle,
    embeddings: EmbeddingService | None = None,
) -> ShadowRunner | None:
    if driver is None or shadows is None:
        return None
    config = settings.rollout or RolloutSettings()
    # Shadow answers are compared by meaning (through the embedding service) when asked, or when
    # drift embeds anyway; else by word overlap.
    by_meaning = config.shadow_embeddings or (settings.drift is not None and settings.drift.embeddings)
    embed = embeddings.embed_blocking if embeddings is not None and by_meaning else None
    shadow = ShadowRunner(driver, router, shadows, metrics, config.shadow_timeout_s, config.shadow_concurrency, embed)
    return life.add(shadow, close=shadow.close)  # closed first: its calls use the providers
