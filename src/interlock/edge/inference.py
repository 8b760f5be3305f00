"""POST /v1/chat/completions, /v1/completions, /v1/embeddings and their Azure-style twins.

The body is decoded once with orjson into plain data; that data is what gets forwarded, so fields
we do not model pass through. msgspec checks the fields the gateway relies on.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
import structlog

from ..errors import BadRequest, Forbidden, InterlockError, ModelNotFound, error_class
from ..observe import logs
from ..observe.metrics import NONE, UNKNOWN_MODEL, Metrics
from ..observe.tracing import Tracing
from ..observe.window import RequestStats
from ..pipeline.context import CacheControl, Endpoint, RequestContext
from ..pipeline.result import Completion
from ..pipeline.runner import Pipeline
from ..pipeline.streams import aclose_quietly
from ..protocol import ChatRequest, CompletionRequest, EmbeddingRequest
from ..routing.router import RolloutView, Router
from ..security.audit import AuditLog
from ..security.roles import DATA_CLASSES
from .exchange import Exchange
from .http import read_body
from .sse import first_event

if TYPE_CHECKING:  # not imported at run time: the drift statistics load scipy
    from ..observe.monitor import DriftMonitor
    from ..rollout.mirror import ShadowRunner

SCHEMAS: dict[Endpoint, type[msgspec.Struct]] = {
    Endpoint.CHAT: ChatRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
    Endpoint.EMBEDDINGS: EmbeddingRequest,
}
_QUOTED = re.compile(r"'[^']*'")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
request_log = structlog.get_logger("interlock.requests")
CLIENT_CLOSED = 499  # nginx's code for "client closed the request", used in metrics only


def parse_body(raw: bytes, endpoint: Endpoint, deployment: str | None) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The body must be valid UTF-8 JSON."
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    if deployment is not None:
        data["model"] = deployment  # Azure style: the deployment in the path names the model
    try:
        msgspec.convert(data, SCHEMAS[endpoint])
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = match.group(1) if match and match.group(1) else None
        # msgspec quotes a bad value ("Invalid enum value 'x'"): never echo what a client sent.
        raise BadRequest(f"Invalid request: {_QUOTED.sub('<value>', text)}", param=param) from None
    return data


def cache_control(headers: dict[bytes, bytes], data: dict[str, Any]) -> CacheControl:
    """Per-request cache control: the `Cache-Control` header or a `cache` object in the body
    (`{"no-cache": true, "no-store": true, "ttl": 60}`, as LiteLLM clients send it). The body
    field is removed before the request is forwarded."""
    control = CacheControl()
    header = headers.get(b"cache-control")
    if header:
        for part in header.decode("latin-1").lower().split(","):
            token = part.strip()
            if token == "no-cache":
                control.no_cache = True
            elif token == "no-store":
                control.no_store = True
            elif token.startswith("max-age="):
                control.ttl = _ttl(token[8:])
    field = data.pop("cache", None)
    if field is None:
        return control
    if not isinstance(field, dict):
        raise BadRequest("`cache` must be an object", param="cache")
    control.no_cache = control.no_cache or bool(field.get("no-cache"))
    control.no_store = control.no_store or bool(field.get("no-store"))
    if field.get("ttl") is not None:
        control.ttl = _ttl(field["ttl"])
    return control


def _ttl(value: object) -> int:
    try:
        ttl = int(str(value))
    except (TypeError, ValueError):
        raise BadRequest("cache ttl must be a whole number of seconds", param="cache.ttl") from None
    if ttl < 0:
        raise BadRequest("cache ttl must not be negative", param="cache.ttl")
    return ttl


class InferenceHandler:
    def __init__(
        self,
        pipeline: Pipeline,
        router: Router,
        metrics: Metrics,
        max_body: int,
        audit: AuditLog | None = None,
        request_log: str = "off",
        max_messages: int = 2048,
        tracing: Tracing | None = None,
        drift: DriftMonitor | None = None,
        stats: RequestStats | None = None,
        rollouts: RolloutView | None = None,
        shadow: ShadowRunner | None = None,
    ) -> None:
        self._rollouts = rollouts
        self._shadow = shadow
        self._tracing = tracing
        self._drift = drift
        self._stats = stats
        self._span_names = {e: f"POST /v1/{e.value}" for e in Endpoint}
        self._max_messages = max_messages
        self._request_log = request_log
        self._pipeline = pipeline
        self._router = router
        self._metrics = metrics
        self._max_body = max_body
        self._audit = audit

    def _observe(self, ctx: RequestContext, body: bytes) -> None:
        """Offer the exchange to the drift monitor, as the stages left it: after DLP, so a profile
        never sees a raw value. Streams are not offered (their text is never assembled here)."""
        assert self._drift is not None
        confidence = ctx.confidence.mean_logprob if ctx.confidence is not None else None
        pii = sum(ctx.findings.values()) if ctx.protected else None
        latency_ms = (time.perf_counter() - ctx.started) * 1000
        model = ctx.served_model or ctx.model
        self._drift.offer(model, ctx.version or NONE, ctx.body, body, latency_ms, pii, confidence)

    def _check_sizes(self, data: dict[str, Any], cap: int | None) -> None:
        """The message count limit, and the key's cap on tokens to generate (applied when the
        request names none, refused when it asks for more)."""
        messages = data.get("messages")
        if isinstance(messages, list) and len(messages) > self._max_messages:
            raise BadRequest(f"Too many messages: at most {self._max_messages}", param="messages")
        if cap is None or "input" in data:
            return
        asked = data.get("max_completion_tokens") or data.get("max_tokens")
        if asked is None:
            data["max_tokens"] = cap
        elif asked > cap:
            raise BadRequest(f"max_tokens exceeds this key's cap of {cap}", param="max_tokens")

    async def __call__(self, ex: Exchange, endpoint: Endpoint, deployment: str | None = None) -> None:
        started = time.perf_counter()
        model = UNKNOWN_MODEL
        status = 500
        outcome = "served"
        ctx: RequestContext | None = None
        error: BaseException | None = None
        trace = None if self._tracing is None else self._tracing.start_request(self._span_names[endpoint], ex.headers)
        try:
            raw = await read_body(ex.receive, ex.headers, self._max_body)
            data = parse_body(raw, endpoint, deployment)
            control = cache_control(ex.headers, data)
            name = data["model"]
            if not self._router.has(name):
                raise ModelNotFound(f"The model `{name}` does not exist", param="model")
            if not ex.identity.may_call(name):
                raise Forbidden(f"This identity may not call the model `{name}`", param="model")
            self._check_sizes(data, ex.identity.max_tokens)
            model = name
            requested_class, conversation = _protection_headers(ex.headers)
            ctx = RequestContext(
                request_id=ex.request_id,
                endpoint=endpoint,
                model=name,
                body=data,
                raw_body=raw,
                stream=bool(data.get("stream")) and endpoint is not Endpoint.EMBEDDINGS,
                cache_control=control,
                identity=ex.identity,
                requested_class=requested_class,
                conversation=conversation,
                started=started,
                arm_disconnect_watch=ex.arm_disconnect_watch,
                trace=trace,
            )
            if self._rollouts is not None:
                sticky = self._rollouts.sticky(name)
                if sticky is not None and sticky.startswith("header:"):
                    value = ex.headers.get(sticky[7:].lower().encode("latin-1"))
                    ctx.sticky_header = value.decode("latin-1") if value else None
            result = await self._pipeline.run(ctx)
            extra = _answer_headers(ctx)
            if isinstance(result, Completion):
                status = result.status
                if self._drift is not None and status == 200 and endpoint is not Endpoint.EMBEDDINGS:
                    self._observe(ctx, result.body)
                await ex.json(result.status, result.body, extra)
                if self._shadow is not None and status == 200:
                    self._shadow.offer(ctx, result.body)  # after the answer went out; never raises
            else:
                try:
                    first = await first_event(result.events)
                    broken = await ex.stream(first, result.events, extra)
                    if broken is not None:  # the stream failed after it started: told in-band
                        status, error = broken.status, broken
                    else:
                        status = 200
                finally:
                    await aclose_quietly(result.events)
        except InterlockError as exc:
            status = exc.status
            outcome = exc.code or exc.type
            error = exc
            if not ex.started:
                await ex.error(exc)
        except Exception as exc:  # counted as ours, then the edge answers 500 with the request id
            error = exc
            raise
        finally:
            if ex.client_gone:
                status, outcome, error = CLIENT_CLOSED, "client_closed", None
            if self._audit is not None or self._request_log != "off":
                event = _audit_event(ex, endpoint, model, ctx, status, outcome, started)
                if self._audit is not None:
                    self._audit.record(event)
                if self._request_log != "off":
                    if self._request_log == "redacted" and ctx is not None and ctx.protected:
                        event["text"] = logs.request_text(ctx.body)  # as DLP left it: never raw
                    request_log.info("request", **event)
            deployment, version = ((ctx.deployment or NONE), (ctx.version or NONE)) if ctx else (NONE, NONE)
            kind = error_class(error) if error is not None else None
            if kind is not None:
                self._metrics.error(model, deployment, version, kind)
            if self._stats is not None and ctx is not None:  # the windows alerts and rollouts read
                confidence = ctx.confidence.mean_logprob if ctx.confidence is not None else None
                self._stats.record(model, version, time.perf_counter() - started, kind, ctx.ttft_s, confidence)
            self._metrics.request_done(
                model,
                endpoint.value,
                status,
                (ctx.cache_status if ctx else None) or "none",
                time.perf_counter() - started,
                ctx.upstream_seconds if ctx else 0.0,
                deployment,
                version,
            )
            if trace is not None:
                trace.finish(ctx, model, status, error)
            error = None  # no cycle: exception -> traceback -> this frame -> exception


def _audit_event(
    ex: Exchange,
    endpoint: Endpoint,
    model: str,
    ctx: RequestContext | None,
    status: int,
    outcome: str,
    started: float,
) -> dict[str, object]:
    """Who, what, where and how it ended. Never the prompt, the answer or a value found in them."""
    identity = ex.identity
    return {
        "kind": "request",
        "request_id": ex.request_id,
        "subject": identity.subject,
        "auth": identity.kind,
        "tenant": identity.tenant,
        "endpoint": endpoint.value,
        "model": model,
        "deployment": ctx.deployment if ctx else None,
        "version": ctx.version if ctx else None,
        "data_class": ctx.data_class if ctx else None,
        "findings": ctx.findings if ctx else {},
        "cache": ctx.cache_status if ctx else None,
        "status": status,
        "outcome": outcome if status < 500 or outcome != "served" else "error",
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


_CONVERSATION = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _protection_headers(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """`x-interlock-data-class` (at least this sensitive) and `x-interlock-conversation` (the
    scope in which tokenized values keep the same token)."""
    raw_class = headers.get(b"x-interlock-data-class")
    requested = raw_class.decode("latin-1").strip().lower() if raw_class else None
    if requested is not None and requested not in DATA_CLASSES:
        raise BadRequest(f"x-interlock-data-class must be one of {', '.join(DATA_CLASSES)}")
    raw_conversation = headers.get(b"x-interlock-conversation")
    conversation = raw_conversation.decode("latin-1") if raw_conversation else None
    if conversation is not None and not _CONVERSATION.fullmatch(conversation):
        raise BadRequest("x-interlock-conversation must be 1-128 letters, digits or . _ : -")
    return requested, conversation


def _answer_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    extra = ctx.response_headers
    if ctx.cache_status is not None:
        extra.append((b"x-interlock-cache", ctx.cache_status.encode()))
    if ctx.deployment is not None:
        extra.append((b"x-interlock-deployment", ctx.deployment.encode()))
    if ctx.data_class is not None:
        extra.append((b"x-interlock-data-class", ctx.data_class.encode()))
    if ctx.served_model is not None and ctx.served_model != ctx.model:
        extra.append((b"x-interlock-fallback", ctx.served_model.encode()))
    return extra
