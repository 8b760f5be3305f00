"""What happens once a request is over: its record, handed to each recorder in turn.

The edge builds one `Finished` when the answer has gone out (or failed, or the client left) and
calls every recorder app.py wired with it: the audit trail and the request log, the metrics, the
rolling windows alerts and rollouts read, the trace, drift and shadow traffic. Recording is not a
pipeline stage because a stream's status is only known once the edge has sent it (a stream can
break part way, a client can leave), and because a request refused before it was parsed (bad
JSON, an unknown model) is recorded too, with no context at all. A new capability that watches
requests is a new recorder; it never edits the handler.

A recorder is called on the event loop, once per request, on the hot path: it must not block,
must not raise, and hands anything slow to a queue of its own (the audit log, the drift monitor
and shadow traffic each do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec
import structlog

from ..errors import error_class
from ..pipeline.context import Endpoint, RequestContext
from ..security.roles import Identity
from . import logs
from .metrics import NONE, Metrics
from .window import RequestStats

if TYPE_CHECKING:  # not imported at run time: the drift statistics load scipy
    from ..rollout.mirror import ShadowRunner
    from ..security.audit import AuditLog
    from .monitor import DriftMonitor
    from .tracing import RequestTrace

request_log = structlog.get_logger("interlock.requests")


class Finished(msgspec.Struct):
    """(A msgspec Struct, as the context is: one is built for every request.)"""

    request_id: str
    identity: Identity
    endpoint: Endpoint
    model: str  # the group asked for, once the body named one the caller may call; else UNKNOWN_MODEL
    ctx: RequestContext | None  # None: refused before the request was parsed
    status: int
    outcome: str  # "served", the error's code or type, or "client_closed"
    error: BaseException | None  # what failed (None when served, or when the client left)
    started: float
    ended: float
    answer: bytes | None = None  # the JSON body sent with a 200
    trace: RequestTrace | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def error_class(self) -> str | None:
        return error_class(self.error) if self.error is not None else None

    def labels(self) -> tuple[str, str]:
        """(deployment, version) for metrics, NONE where no deployment was tried."""
        if self.ctx is None:
            return NONE, NONE
        routing = self.ctx.routing
        return routing.deployment or NONE, routing.version or NONE


class Recorder(Protocol):
    def record(self, done: Finished) -> None: ...


def audit_event(done: Finished) -> dict[str, object]:
    """Who, what, where and how it ended. Never the prompt, the answer or a value found in them."""
    identity = done.identity
    ctx = done.ctx
    status = done.status
    event: dict[str, object] = {
        "kind": "request",
        "request_id": done.request_id,
        "subject": identity.subject,
        "auth": identity.kind,
        "tenant": identity.tenant,
        "endpoint": done.endpoint.value,
        "model": done.model,
        "deployment": ctx.routing.deployment if ctx else None,
        "version": ctx.routing.version if ctx else None,
        "data_class": ctx.data_class if ctx else None,
        "findings": ctx.protection.findings if ctx else {},
        "cache": ctx.cache_result if ctx else None,
        "status": status,
        "outcome": done.outcome if status < 500 or done.outcome != "served" else "error",
        "latency_ms": round(done.seconds * 1000, 3),
    }
    if ctx is not None and ctx.semantic is not None:  # a semantic hit: which entry, how close
        event["similarity"] = round(ctx.semantic.similarity, 4)
        event["semantic_entry"] = ctx.semantic.entry_id
    return event


class RequestRecords:
    """The audit trail's event and the request log line (`server.request_log`): the same record.
    `redacted` adds the text as DLP left it, only when DLP screened the request and acted on every
    value it found (or found nothing and its policy has `log_clean_text`): a request in which the
    detectors found nothing is logged as metadata, since whatever they missed would be written
    as it was sent, and so is one holding a value the policy allows (`Protection.loggable`)."""

    def __init__(self, audit: AuditLog | None, request_log_mode: str = "off") -> None:
        self._audit = audit
        self._mode = request_log_mode

    def record(self, done: Finished) -> None:
        event = audit_event(done)
        if self._audit is not None:
            self._audit.record(event)
        if self._mode != "off":
            ctx = done.ctx
            if self._mode == "redacted" and ctx is not None and ctx.protection.loggable:
                event["text"] = logs.request_text(ctx.protected_body)
            request_log.info("request", **event)


class MetricsRecorder:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, done: Finished) -> None:
        metrics = self._metrics
        model = done.model
        deployment, version = done.labels()
        kind = done.error_class
        if kind is not None:
            metrics.error(model, deployment, version, kind)
        ctx = done.ctx
        if ctx is None:
            cache, upstream = "none", 0.0
        else:
            cache, upstream = ctx.cache_result or "none", ctx.routing.upstream_seconds
        metrics.request_done(
            model, done.endpoint.value, done.status, cache, done.seconds, upstream, deployment, version
        )


class WindowRecorder:
    """The rolling windows per (model group, version) that alerts and rollout analyses read."""

    def __init__(self, stats: RequestStats) -> None:
        self._stats = stats

    def record(self, done: Finished) -> None:
        ctx = done.ctx
        if ctx is None:
            return
        telemetry = ctx.telemetry
        confidence = telemetry.confidence.mean_logprob if telemetry.confidence is not None else None
        version = ctx.routing.version or NONE
        self._stats.record(done.model, version, done.seconds, done.error_class, telemetry.ttft_s, confidence)


class TraceRecorder:
    def record(self, done: Finished) -> None:
        if done.trace is not None:
            done.trace.finish(done.ctx, done.model, done.status, done.error)


class DriftRecorder:
    """Offers the exchange to the drift monitor as the stages left it: after DLP, so a profile
    never sees a raw value. Streams are not offered (their text is never assembled here)."""

    def __init__(self, drift: DriftMonitor) -> None:
        self._drift = drift

    def record(self, done: Finished) -> None:
        ctx = done.ctx
        if ctx is None or done.answer is None or done.status != 200 or done.endpoint is Endpoint.EMBEDDINGS:
            return
        drift = self._drift
        embed = drift.admit()  # most requests stop here (the per-second cap): build nothing for them
        if embed is None:
            return
        telemetry, protection, routing = ctx.telemetry, ctx.protection, ctx.routing
        confidence = telemetry.confidence.mean_logprob if telemetry.confidence is not None else None
        pii = sum(protection.findings.values()) if protection.screened else None
        model = routing.served_model or ctx.request.model
        latency_ms = done.seconds * 1000
        version = routing.version or NONE
        drift.put(model, version, ctx.protected_body, done.answer, latency_ms, pii, confidence, embed)


class ShadowRecorder:
    """Maybe copies a stable answer's request to the rollout's candidate (rollout/mirror.py)."""

    def __init__(self, shadow: ShadowRunner) -> None:
        self._shadow = shadow

    def record(self, done: Finished) -> None:
        if done.ctx is not None and done.answer is not None and done.status == 200:
            self._shadow.offer(done.ctx, done.answer)
