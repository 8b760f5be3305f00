"""What the stages know about one request: the request as parsed, frozen, and the outcomes the
stages fill in, each part written by one owner.

- `Request` is what the edge parsed (`edge/parse.py`). Nothing changes it afterwards.
- `Protection` is the DLP stage's (`security/dlp.py`): the data class, the entity counts, and the
  body as it leaves the gateway when DLP rewrote it. `RequestContext.body` is that body (or the
  parsed one): it is what the cache keys on, what the router forwards, what the logs may show.
- `Routing` is the router's (`routing/router.py`): the deployment that answered, its version,
  time upstream, retries, token usage.
- `Telemetry` is the telemetry stage's (`observe/stage.py`): finish reason, time to first token,
  confidence, whether logprobs were sampled.
- `retrieval` is the retrieval stage's (`retrieval/stage.py`): the body with the retrieved chunks
  in its prompt, the least data class the stores it read impose, the citations.
- `cache_status` is the exact cache stage's, `semantic` the semantic cache stage's (the entry
  that answered); `cache_result` reads the two. `response_headers` are the limit stages' (they
  only append).

A field with two writers is a bug to fix, not a convention to follow.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..observe.confidence import Confidence
from ..security.roles import OPEN, Identity, class_rank

if TYPE_CHECKING:
    from ..observe.tracing import RequestTrace


class Endpoint(enum.Enum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class CacheControl(msgspec.Struct, frozen=True):
    no_cache: bool = False  # do not answer from cache (still store the fresh answer)
    no_store: bool = False  # do not store this answer
    ttl: int | None = None
    # `x-interlock-semantic-threshold`: a stricter similarity for the semantic cache (a lower
    # value than the group's is ignored: a caller may tighten, never loosen).
    semantic_threshold: float | None = None


NO_CACHE_CONTROL = CacheControl()


class Request(msgspec.Struct, frozen=True):
    """The request as the edge parsed it. (msgspec Structs rather than dataclasses: a context is
    built for every request, and four Structs cost a quarter of four slotted dataclasses.)"""

    request_id: str
    endpoint: Endpoint
    model: str  # the public model group the caller asked for
    # The body as the caller sent it, unknown fields included (and the edge's own adjustments:
    # the Azure path's model, the key's token cap, the `cache` field removed, a `template` rendered
    # into `messages` or `prompt` and removed). Never forwarded
    # as it is: what leaves the gateway is `RequestContext.body`, after DLP.
    body: dict[str, Any]
    raw_body: bytes = b""  # the bytes as they arrived (DLP remembers digests of clean ones)
    stream: bool = False
    identity: Identity = OPEN
    cache_control: CacheControl = NO_CACHE_CONTROL
    started: float = msgspec.field(default_factory=time.perf_counter)
    # Data protection headers: the class asked for, and the conversation that scopes tokens.
    requested_class: str | None = None
    conversation: str | None = None
    # The value of the header a rollout's `sticky: header:<name>` names.
    sticky_header: str | None = None

    @property
    def tenant(self) -> str:
        return self.identity.tenant


class Protection(msgspec.Struct):
    """Written by the DLP stage only."""

    body: dict[str, Any] | None = None  # the rewritten body; None: the parsed one leaves as it is
    data_class: str | None = None
    findings: dict[str, int] = {}  # entity type -> count (msgspec gives each its own)
    screened: bool = False  # DLP ran to its end: the body's text is what its policy lets out
    # The `redacted` request log may write the text: DLP found something and acted on every value
    # it found, or found nothing and the policy says to log such text (`log_clean_text`).
    loggable: bool = False


class Routing(msgspec.Struct):
    """Written by the router only."""

    deployment: str | None = None  # the deployment that answered (or the last one tried)
    version: str | None = None  # its configured version
    served_model: str | None = None  # the group that answered (differs after a fallback)
    upstream_seconds: float = 0.0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs_refused: bool = False  # the backend refused sampled logprobs: asked again without


class Telemetry(msgspec.Struct):
    """Written by the telemetry stage only (set once the answer is complete: for a stream, when it
    ends)."""

    logprobs_sampled: bool = False  # the backend is asked for logprobs the caller did not ask for
    finish_reason: str | None = None
    ttft_s: float | None = None  # streams: from arrival to the first token
    confidence: Confidence | None = None


class Retrieval(msgspec.Struct):
    """Written by the retrieval stage only."""

    body: dict[str, Any] | None = None  # the body with the retrieved chunks in its prompt
    data_class: str | None = None  # the most sensitive class of the stores searched
    citations: list[dict[str, Any]] = []  # file_id, filename, chunk_index, score (never text)


class SemanticMatch(msgspec.Struct, frozen=True):
    """Written by the semantic cache stage only: the entry that answered, and how close it was."""

    entry_id: str
    similarity: float


def _unwatched() -> None:
    pass


class RequestContext(msgspec.Struct):
    request: Request
    trace: RequestTrace | None = None  # spans of this request; None when tracing is off or not sampled
    # Set by the edge: arms a watch that cancels the request when the client goes away. The
    # router calls it right before the first upstream call, so cache hits never pay for it.
    arm_disconnect_watch: Callable[[], None] = _unwatched
    protection: Protection = msgspec.field(default_factory=Protection)
    routing: Routing = msgspec.field(default_factory=Routing)
    telemetry: Telemetry = msgspec.field(default_factory=Telemetry)
    cache_status: str | None = None  # "hit" or "miss"; None when the cache was not consulted
    semantic: SemanticMatch | None = None  # a semantic cache hit
    retrieval: Retrieval | None = None  # chunks from vector stores went into the prompt
    # Headers for the answer (x-ratelimit-*), as bytes ready for the wire.
    response_headers: list[tuple[bytes, bytes]] = []

    @property
    def body(self) -> dict[str, Any]:
        """The body as it leaves the gateway: with retrieved chunks when retrieval added them (to
        DLP's rewrite, or the parsed body), else DLP's rewrite, or the parsed body when it had
        nothing to change."""
        retrieval = self.retrieval
        if retrieval is not None and retrieval.body is not None:
            return retrieval.body
        return self.protected_body

    @property
    def protected_body(self) -> dict[str, Any]:
        """The caller's request as DLP left it, without what retrieval added: what the request
        log and drift read (the chunks were screened under the retrieval policy, which may allow
        what the request's policy would not log)."""
        protected = self.protection.body
        return self.request.body if protected is None else protected

    @property
    def data_class(self) -> str | None:
        """The class the request is routed by: the higher of DLP's and that of the stores it
        retrieved from."""
        protected = self.protection.data_class
        retrieved = self.retrieval.data_class if self.retrieval is not None else None
        if retrieved is None or (protected is not None and class_rank(protected) >= class_rank(retrieved)):
            return protected
        return retrieved

    @property
    def cache_result(self) -> str | None:
        """What the caches made of the request: "semantic" for a semantic hit, else the exact
        cache's status ("hit", "miss"), None when no cache was consulted."""
        return "semantic" if self.semantic is not None else self.cache_status

    @property
    def logprobs_sampled(self) -> bool:
        """Sampled logprobs are asked for, and were not refused by the backend."""
        return self.telemetry.logprobs_sampled and not self.routing.logprobs_refused
