"""Everything the stages know about one request, parsed once at the edge."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..observe.confidence import Confidence
from ..security.roles import OPEN, Identity

if TYPE_CHECKING:
    from ..observe.tracing import RequestTrace


class Endpoint(enum.Enum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class CacheControl:
    no_cache: bool = False  # do not answer from cache (still store the fresh answer)
    no_store: bool = False  # do not store this answer
    ttl: int | None = None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    model: str  # the public model group the caller asked for
    body: dict[str, Any]  # the request as it will be forwarded (unknown fields included)
    raw_body: bytes = b""  # the body as it arrived (DLP remembers digests of clean ones)
    stream: bool = False
    identity: Identity = OPEN
    cache_control: CacheControl = field(default_factory=CacheControl)
    started: float = field(default_factory=time.perf_counter)
    # Filled in along the way.
    deployment: str | None = None  # the deployment that answered
    version: str | None = None  # its configured version
    served_model: str | None = None  # the group that answered (differs after a fallback)
    cache_status: str | None = None  # "hit" or "miss"; None when the cache was not consulted
    cache_key: str | None = None
    coalesce_leader: bool = False  # this request leads identical requests in flight
    upstream_seconds: float = 0.0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Telemetry: how the answer ended, and the token logprob summary when the backend returned
    # logprobs (set once the answer is complete: for a stream, when it ends).
    finish_reason: str | None = None
    ttft_s: float | None = None  # streams: from arrival to the first token
    confidence: Confidence | None = None
    logprobs_sampled: bool = False  # the backend is asked for logprobs the caller did not ask for
    trace: RequestTrace | None = None  # spans of this request; None when tracing is off or not sampled
    # Data protection: the class asked for in a header, the conversation that scopes tokens,
    # and what the DLP stage concluded (the class, and entity types found with their counts).
    requested_class: str | None = None
    conversation: str | None = None
    data_class: str | None = None
    findings: dict[str, int] = field(default_factory=dict)
    protected: bool = False  # the DLP stage rewrote the body: its text may be logged
    # Rollouts: the value of the header a rollout's `sticky: header:<name>` names (the edge copies it).
    sticky_header: str | None = None
    # Headers for the answer, set by stages (x-ratelimit-*), as bytes ready for the wire.
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Set by the edge: arms a watch that cancels the request when the client goes away. The
    # router calls it right before the first upstream call, so cache hits never pay for it.
    arm_disconnect_watch: Callable[[], None] = field(default=lambda: None)

    @property
    def tenant(self) -> str:
        return self.identity.tenant
