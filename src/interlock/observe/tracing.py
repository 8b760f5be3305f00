"""OpenTelemetry traces: a span per request and a child per upstream attempt; what each pipeline
stage took is on the request's span (`interlock.stage.cache.before_ms`, ...), or, with
`telemetry.stage_spans`, a child span per stage phase (`cache.before`, `cache.after`, ...).

Stage spans are off by default because of what a span costs: the SDK makes one in about 30 µs
and its OTLP encoding takes 20-40 more (observe/otlp.py; bench/RESULTS.md, the Gateway section).
A cache hit with stage spans is seven spans; without them it is one, and its stage timings cost
a clock read each.

Built only when `telemetry` names an exporter. Without one, nothing here is constructed: the
request handler and the router hold `None`, the pipeline has no traced stages, and a request pays
one `is None` test, not a span (not even OpenTelemetry's no-op one, which costs more: see
bench/telemetry_cost.py). With tracing on, the sampling decision for a request without a
`traceparent` is ours, one random draw, made before OpenTelemetry is called: a request not
sampled gets no span and no `RequestTrace`, and runs the pipeline's plain stages. A caller's
`traceparent` is followed instead (its sampled flag decides).

Spans carry configured names and small fixed sets only (model group, deployment, version,
status, cache status, data class, error class, token counts): never prompt or answer text, never
a key, never an error message.

OpenTelemetry is imported here only, inside functions: it is an optional extra (`otel`).
"""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import ConfigError, error_class
from ..pipeline.streams import StreamClosed

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

    from ..config import TelemetrySettings
    from ..pipeline.context import RequestContext
    from ..pipeline.result import Result
    from ..pipeline.runner import Next, Stage

Attributes = dict[str, str | bool | int | float]
P = TypeVar("P")  # what a phased stage keeps of the phase under way
AzureConfigure = Callable[..., None]


class Tracing:
    """Starts spans from an OpenTelemetry tracer, with explicit parents (no context variables:
    a stream outlives the task that opened it)."""

    def __init__(
        self, tracer: Any, shutdown: Callable[[], None], ratio: float = 1.0, rng: random.Random | None = None
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._shutdown = shutdown
        self._ratio = ratio
        self._random = (rng or random.Random()).random  # bound once: drawn for every request
        self._in_context = trace.set_span_in_context
        self._propagator = TraceContextTextMapPropagator()
        self._server, self._client, self._internal = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
        self._status, self._error = Status, StatusCode.ERROR

    def start_request(self, name: str, headers: dict[bytes, bytes]) -> RequestTrace | None:
        """The request's span, a child of the caller's `traceparent` when it sent one. None when
        the sampler drops the request: then no other span of it is made either."""
        parent = None
        traceparent = headers.get(b"traceparent")
        if traceparent is None:
            ratio = self._ratio
            if ratio < 1.0 and self._random() >= ratio:
                return None
        else:
            carrier = {"traceparent": traceparent.decode("latin-1")}
            tracestate = headers.get(b"tracestate")
            if tracestate is not None:
                carrier["tracestate"] = tracestate.decode("latin-1")
            parent = self._propagator.extract(carrier)
        span = self._tracer.start_span(name, context=parent, kind=self._server)
        if not span.is_recording():
            return None
        return RequestTrace(self, span)

    def fail(self, span: Span, exc: BaseException) -> None:
        if isinstance(exc, StreamClosed) or not isinstance(exc, Exception):
            span.set_attribute("interlock.cancelled", True)  # the caller went away: no error of ours
            return
        kind = error_class(exc)
        span.set_attribute("error.type", type(exc).__name__)
        span.set_attribute("interlock.error_class", kind)
        span.set_status(self._status(self._error, kind))

    def shutdown(self) -> None:
        self._shutdown()


class RequestTrace:
    """The spans of one sampled request."""

    __slots__ = ("_context", "_tracing", "span", "stages")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self._tracing = tracing
        self.span = span
        self._context = tracing._in_context(span)
        self.stages: Attributes = {}  # what TimedStage measured, set on the span at finish

    def child(self, name: str, attributes: Attributes, client: bool = False) -> Span:
        t = self._tracing
        kind = t._client if client else t._internal
        span: Span = t._tracer.start_span(name, context=self._context, kind=kind, attributes=attributes)
        return span

    def fail(self, span: Span, exc: BaseException) -> None:
        self._tracing.fail(span, exc)

    def finish(self, ctx: RequestContext | None, model: str, status: int, error: BaseException | None) -> None:
        span = self.span
        attributes: Attributes = {"interlock.model": model, "http.response.status_code": status}
        if ctx is not None:
            request, routing, telemetry = ctx.request, ctx.routing, ctx.telemetry
            attributes["interlock.request_id"] = request.request_id
            attributes["interlock.endpoint"] = request.endpoint.value
            attributes["interlock.stream"] = request.stream
            attributes["interlock.cache"] = ctx.cache_result or "none"
            for key, value in (
                ("interlock.served_model", routing.served_model),
                ("interlock.deployment", routing.deployment),
                ("interlock.version", routing.version),
                ("interlock.data_class", ctx.data_class),
                ("gen_ai.response.finish_reasons", telemetry.finish_reason),
            ):
                if value is not None:
                    attributes[key] = value
            if routing.prompt_tokens or routing.completion_tokens:
                attributes["gen_ai.usage.input_tokens"] = routing.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = routing.completion_tokens
            if routing.retries:
                attributes["interlock.retries"] = routing.retries
            confidence = telemetry.confidence
            if confidence is not None:
                attributes["interlock.logprob_mean"] = confidence.mean_logprob
                attributes["interlock.logprob_min"] = confidence.min_logprob
                attributes["interlock.perplexity"] = confidence.perplexity
                attributes["interlock.logprobs_sampled"] = confidence.sampled
        if self.stages:
            attributes.update(self.stages)
        span.set_attributes(attributes)
        if error is not None:
            self.fail(span, error)
        elif status >= 500:
            span.set_status(self._tracing._status(self._tracing._error, f"status {status}"))
        span.end()


class _PhasedStage(Generic[P]):
    """A stage run for a request that has a trace, with its two phases told apart: `before`,
    from the stage's start until it calls the rest of the pipeline (or answers itself, as the
    cache does on a hit), and `after`, from the rest's return to the stage's. What is recorded of
    each phase is the subclass's (`P` is what it keeps of the phase under way). A phase in which
    the stage itself raised is its failure; an error from further in that it only lets through
    is not."""

    __slots__ = ("_inner", "_name")

    def __init__(self, inner: Stage, name: str) -> None:
        self._inner = inner
        self._name = name

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        trace = ctx.trace
        if trace is None:
            return await self._inner(ctx, call_next)
        phase = self._begin(trace)
        passed: BaseException | None = None  # an error from further in, on its way out
        called = False

        async def rest(c: RequestContext) -> Result:
            nonlocal phase, passed, called
            called = True
            self._passing_on(trace, phase)
            try:
                return await call_next(c)
            except BaseException as exc:
                passed = exc
                raise
            finally:
                phase = self._coming_back(trace)

        try:
            result = await self._inner(ctx, rest)
            if not called:
                phase = self._answered(trace, phase)
            return result
        except BaseException as exc:
            if exc is not passed:
                self._failed(trace, phase, exc)
            raise
        finally:
            passed = None
            self._end(trace, phase)

    def _begin(self, trace: RequestTrace) -> P:
        raise NotImplementedError

    def _passing_on(self, trace: RequestTrace, phase: P) -> None:
        raise NotImplementedError

    def _coming_back(self, trace: RequestTrace) -> P:
        raise NotImplementedError

    def _answered(self, trace: RequestTrace, phase: P) -> P:
        raise NotImplementedError

    def _failed(self, trace: RequestTrace, phase: P, exc: BaseException) -> None:
        raise NotImplementedError

    def _end(self, trace: RequestTrace, phase: P) -> None:
        raise NotImplementedError


class TracedStage(_PhasedStage["Span"]):
    """Each phase a span (`telemetry.stage_spans`): `<name>.before` (with `interlock.answered`
    when the stage answered itself) and `<name>.after`, children of the request's span; the
    phase in which the stage raised is marked failed."""

    __slots__ = ("_after_name", "_attributes", "_before_name")

    def __init__(self, inner: Stage, name: str) -> None:
        super().__init__(inner, name)
        self._before_name = f"{name}.before"
        self._after_name = f"{name}.after"
        self._attributes: Attributes = {"interlock.stage": name}

    def _begin(self, trace: RequestTrace) -> Span:
        return trace.child(self._before_name, self._attributes)

    def _passing_on(self, trace: RequestTrace, phase: Span) -> None:
        phase.end()

    def _coming_back(self, trace: RequestTrace) -> Span:
        return trace.child(self._after_name, self._attributes)

    def _answered(self, trace: RequestTrace, phase: Span) -> Span:
        phase.set_attribute("interlock.answered", True)  # the after phase has nothing to do
        phase.end()
        return trace.child(self._after_name, self._attributes)

    def _failed(self, trace: RequestTrace, phase: Span, exc: BaseException) -> None:
        trace.fail(phase, exc)

    def _end(self, trace: RequestTrace, phase: Span) -> None:
        phase.end()


class TimedStage(_PhasedStage[tuple[str, float]]):
    """Each phase's duration an attribute of the request's span (the default):
    `interlock.stage.<name>.before_ms` and `...after_ms`. A stage that answered itself (a cache
    hit) has a before phase only and is named in `interlock.answered_by`; one that raised an
    error of its own in `interlock.failed_stage` (the request span carries the error's class)."""

    __slots__ = ("_after", "_before")

    def __init__(self, inner: Stage, name: str) -> None:
        super().__init__(inner, name)
        self._before = f"interlock.stage.{name}.before_ms"
        self._after = f"interlock.stage.{name}.after_ms"

    def _begin(self, trace: RequestTrace) -> tuple[str, float]:
        return self._before, time.perf_counter()

    def _passing_on(self, trace: RequestTrace, phase: tuple[str, float]) -> None:
        trace.stages[phase[0]] = round((time.perf_counter() - phase[1]) * 1000, 3)

    def _coming_back(self, trace: RequestTrace) -> tuple[str, float]:
        return self._after, time.perf_counter()

    def _answered(self, trace: RequestTrace, phase: tuple[str, float]) -> tuple[str, float]:
        trace.stages["interlock.answered_by"] = self._name
        return phase  # the before phase lasts until the stage returns

    def _failed(self, trace: RequestTrace, phase: tuple[str, float], exc: BaseException) -> None:
        if isinstance(exc, Exception):  # not a cancellation (the caller left)
            trace.stages["interlock.failed_stage"] = self._name

    def _end(self, trace: RequestTrace, phase: tuple[str, float]) -> None:
        self._passing_on(trace, phase)


def stage_name(stage: object) -> str:
    """`LimitStage` -> `limit`: span names from the class, computed once at start."""
    name = str(getattr(stage, "name", "") or type(stage).__name__)
    return name.removesuffix("Stage").lower() or "stage"


def traced(stages: Sequence[Stage], spans: bool = False) -> list[Stage]:
    """The same stages, each with its phases timed onto the request's span (with `spans`: each
    phase a span of its own): the pipeline runs these for the requests that have a trace, and
    the plain ones for all others."""
    wrap = TracedStage if spans else TimedStage
    return [wrap(stage, stage_name(stage)) for stage in stages]


# -- construction ------------------------------------------------------------------------------
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def check_available(settings: TelemetrySettings, azure: bool = True) -> None:
    """Fail at start, with the key to blame, when an exporter is configured but not installed."""
    if azure and settings.azure_monitor_connection_string and not _installed("azure.monitor.opentelemetry"):
        raise ConfigError(
            "$.telemetry.azure_monitor_connection_string: azure-monitor-opentelemetry is not installed "
            "(pip install 'interlock[azure-monitor]')"
        )
    if (settings.otlp_endpoint or settings.console) and not _installed("opentelemetry.sdk"):
        key = "otlp_endpoint" if settings.otlp_endpoint else "console"
        raise ConfigError(f"$.telemetry.{key}: the OpenTelemetry SDK is not installed (pip install 'interlock[otel]')")
    otlp = ("opentelemetry.exporter.otlp.proto.common", "requests")  # what observe/otlp.py imports
    if settings.otlp_endpoint and not all(_installed(module) for module in otlp):
        raise ConfigError(
            "$.telemetry.otlp_endpoint: the OTLP exporter is not installed (pip install 'interlock[otel]')"
        )


def traces_url(endpoint: str) -> str:
    """A collector's base URL gets OTLP's traces path; a URL with a path is taken as it is."""
    _, sep, rest = endpoint.partition("://")
    if sep and "/" not in rest.rstrip("/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def make_tracing(
    settings: TelemetrySettings,
    exporter: SpanExporter | None = None,
    azure_configure: AzureConfigure | None = None,
) -> Tracing | None:
    """The tracer the settings ask for, or None. `exporter` adds one (tests: an in-memory one);
    `azure_configure` stands in for azure-monitor-opentelemetry's `configure_azure_monitor`."""
    if not settings.tracing and exporter is None:
        return None
    check_available(settings, azure=azure_configure is None)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    from .. import __version__

    resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
    processors: list[Any] = []
    if settings.otlp_endpoint:
        from .otlp import OtlpSpanProcessor

        # Encodes each span as it ends and posts batches from its own thread (otlp.py says why
        # not the SDK's BatchSpanProcessor).
        url = traces_url(settings.otlp_endpoint)
        processors.append(OtlpSpanProcessor(url, settings.otlp_headers, settings.otlp_timeout_s))
    if settings.console:
        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    if exporter is not None:
        processors.append(SimpleSpanProcessor(exporter))

    if settings.azure_monitor_connection_string:
        if azure_configure is None:
            from azure.monitor.opentelemetry import configure_azure_monitor

            azure_configure = configure_azure_monitor
        # The distro installs a global tracer provider (its own design; the one global here).
        azure_configure(
            connection_string=settings.azure_monitor_connection_string,
            resource=resource,
            sampling_ratio=1.0,  # the ratio is applied before a span is started (Tracing.start_request)
            span_processors=processors,
        )
        from opentelemetry import trace

        global_provider = trace.get_tracer_provider()
        tracer = global_provider.get_tracer("interlock", __version__)
        return Tracing(tracer, lambda: _shutdown(global_provider), settings.trace_sample_ratio)

    # Roots are sampled by Tracing.start_request; OpenTelemetry only follows a caller's parent.
    provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(provider.get_tracer("interlock", __version__), provider.shutdown, settings.trace_sample_ratio)


def _shutdown(provider: object) -> None:
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
