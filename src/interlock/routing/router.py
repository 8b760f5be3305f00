"""The router: the terminal of the pipeline. Picks a deployment, calls it, retries, falls back.

Retries: a retryable failure (connect error, timeout, 429, 5xx) is tried again after an
exponential backoff with full jitter, preferring a deployment not yet tried. A 429's
`Retry-After` keeps that deployment out of rotation for that long; we wait it out only if no
other deployment is available and it is no longer than `max_retry_after`. A full queue
(Overloaded) is retried but does not count against the deployment's circuit. When a group runs
out of attempts, its fallback groups are tried in order.

Rollouts: when a group has a rollout (`rollouts.split(group)` is not None), each request is put
on one version by its sticky key (the rollout's `sticky`: the caller's key id or token subject,
the request's `user`, or a header the edge copied onto the context), and only that version's
deployments are candidates; data-class clearance, circuits, Retry-After blocks and retries work
as always within them. When the chosen version has no usable deployment (all circuits open, say),
the request goes to the other versions that have a weight above zero rather than fail; a version
whose weight is zero (an aborted candidate) or that the rollout does not name never gets traffic.
A group without a rollout costs one dict lookup.

Streams: retries happen only while opening the stream. Once the router hands the stream on,
its events go to the caller and nothing is retried.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..config import RouterSettings
from ..errors import InterlockError, ModelNotFound, RateLimited, Unavailable, UpstreamRejected
from ..observe.confidence import with_logprobs
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.streams import StreamTap
from ..providers.base import Provider
from ..security.roles import class_rank
from .circuit import CircuitBreaker
from .strategies import STRATEGIES

if TYPE_CHECKING:
    from ..rollout.assign import Split

EWMA_ALPHA = 0.2
TIMER_SLACK = 0.005
T = TypeVar("T")


class RolloutView(Protocol):
    """What the router reads of the rollout driver (memory only, no I/O)."""

    def split(self, model: str) -> Split | None: ...

    def sticky(self, model: str) -> str | None: ...


def sticky_key(sticky: str | None, ctx: RequestContext) -> str | None:
    """The request's sticky key under a rollout's `sticky` setting; None: chosen at random."""
    request = ctx.request
    if sticky == "key_id":
        return None if request.identity.kind == "open" else request.identity.subject
    if sticky == "user":
        user = request.body.get("user")
        return user if isinstance(user, str) and user else None
    return request.sticky_header  # header:<name>: the edge copied its value


@dataclass(slots=True, eq=False)
class DeploymentRuntime:
    provider: Provider
    weight: float
    circuit: CircuitBreaker
    max_class: int = 3  # rank of the most sensitive data class it may receive
    version: str = "v1"  # from config; a label on metrics and spans
    inflight: int = 0
    latency_ewma: float | None = None
    blocked_until: float = 0.0  # set from an upstream Retry-After

    @property
    def id(self) -> str:
        return self.provider.id

    def observe_latency(self, seconds: float) -> None:
        prev = self.latency_ewma
        self.latency_ewma = seconds if prev is None else prev + EWMA_ALPHA * (seconds - prev)


@dataclass(slots=True)
class GroupRuntime:
    name: str
    deployments: list[DeploymentRuntime]
    strategy: str = "weighted"
    fallbacks: list[str] = field(default_factory=list)


_PROMPT_TOKENS = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


def _usage(body: bytes) -> tuple[int, int]:
    """Token counts from an answer's `usage`, without decoding the whole body a second time.

    The gateway forwards upstream bytes as they are; it only needs two integers for metrics.
    """
    if b'"usage"' not in body:
        return 0, 0
    prompt = _PROMPT_TOKENS.search(body)
    completion = _COMPLETION_TOKENS.search(body)
    return (int(prompt.group(1)) if prompt else 0), (int(completion.group(1)) if completion else 0)


class Router:
    def __init__(
        self,
        groups: Sequence[GroupRuntime],
        settings: RouterSettings,
        metrics: Metrics,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rollouts: RolloutView | None = None,
    ) -> None:
        self.groups = {g.name: g for g in groups}
        self._rollouts = rollouts
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    def has(self, model: str) -> bool:
        return model in self.groups

    def deployments(self) -> list[DeploymentRuntime]:
        seen: dict[str, DeploymentRuntime] = {}
        for g in self.groups.values():
            for d in g.deployments:
                seen.setdefault(d.id, d)
        return list(seen.values())

    async def __call__(self, ctx: RequestContext) -> Result:
        group = self.groups.get(ctx.request.model)
        if group is None:
            raise ModelNotFound(f"The model `{ctx.request.model}` does not exist", param="model")
        ctx.arm_disconnect_watch()
        last: InterlockError | None = None
        for i, name in enumerate([group.name, *group.fallbacks]):
            if i:
                self._metrics.fallback(group.name, name)
            try:
                return await self._call_group(self.groups[name], ctx)
            except InterlockError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        try:
            raise last
        finally:
            last = None  # no cycle: exception -> traceback -> this frame -> exception

    def versions(self, group: GroupRuntime, ctx: RequestContext) -> tuple[str, ...] | None:
        """The versions this request may use, in order of preference: the one its sticky key
        lands on, then the others with weight. None: the group has no rollout (any version)."""
        rollouts = self._rollouts
        if rollouts is None:
            return None
        split = rollouts.split(group.name)
        if split is None:
            return None
        chosen = split.choose(sticky_key(rollouts.sticky(group.name), ctx), self._rng)
        return (chosen, *(v for v, w in split.weights.items() if w > 0 and v != chosen))

    def _candidates(
        self,
        group: GroupRuntime,
        tried: set[str],
        now: float,
        sensitivity: int,
        versions: tuple[str, ...] | None = None,
    ) -> list[DeploymentRuntime]:
        usable = [
            d
            for d in group.deployments
            if d.max_class >= sensitivity and d.blocked_until <= now and d.circuit.available(now)
        ]
        if versions is not None:
            # The first version in order of preference with a usable deployment.
            for version in versions:
                of_version = [d for d in usable if d.version == version]
                if of_version:
                    usable = of_version
                    break
            else:
                return []
        fresh = [d for d in usable if d.id not in tried]
        return fresh or usable

    async def _call_group(self, group: GroupRuntime, ctx: RequestContext) -> Result:
        settings = self._settings
        pick = STRATEGIES[group.strategy]
        tried: set[str] = set()
        last: InterlockError | None = None
        data_class = ctx.data_class
        sensitivity = class_rank(data_class) if data_class else 0
        if not any(d.max_class >= sensitivity for d in group.deployments):
            # Fail closed: this data never goes to a deployment not cleared for it, and the
            # fallbacks are held to the same rule.
            raise Unavailable(f"no deployment of `{group.name}` may receive {data_class} data")
        versions = self.versions(group, ctx)
        for attempt in range(settings.retries + 1):
            now = self._clock()
            candidates = self._candidates(group, tried, now, sensitivity, versions)
            if not candidates:
                wait = self._shortest_block(group, now)
                if wait is None or wait > settings.max_retry_after or attempt == settings.retries:
                    break
                # Event-loop timers may fire up to a clock tick early: wait a hair longer.
                await self._sleep(wait + TIMER_SLACK)
                candidates = self._candidates(group, tried, self._clock(), sensitivity, versions)
                if not candidates:
                    break
            dep = candidates[pick(candidates, self._rng)]
            if not dep.circuit.acquire(self._clock()):
                continue  # another request took the half-open probe first
            if attempt:
                ctx.routing.retries += 1
                self._metrics.retry(group.name, dep.id)
            try:
                return await self._attempt(group, dep, ctx)
            except InterlockError as exc:
                self._metrics.upstream_failed(dep.id, exc.status)
                if not exc.retryable:
                    dep.circuit.success()  # it answered; the request was the problem
                    self._metrics.circuit(dep.id, int(dep.circuit.state))
                    raise
                now = self._clock()
                if exc.health_failure:
                    dep.circuit.failure(now)
                else:
                    dep.circuit.release()
                self._metrics.circuit(dep.id, int(dep.circuit.state))
                wait = exc.retry_after if isinstance(exc, RateLimited) else None
                blocked = bool(wait)
                if wait:
                    # A rate-limited deployment stays out of rotation for as long as it asked.
                    dep.blocked_until = now + wait
                tried.add(dep.id)
                last = exc
                if attempt < settings.retries and not blocked:
                    await self._sleep(self._backoff(attempt))
            except BaseException:
                dep.circuit.release()
                raise
        if last is None:
            raise Unavailable(f"no deployment of `{group.name}` is available", retry_after=1)
        try:
            raise last
        finally:
            last = None  # no cycle: exception -> traceback -> this frame -> exception

    def _shortest_block(self, group: GroupRuntime, now: float) -> float | None:
        waits = [d.blocked_until - now for d in group.deployments if d.blocked_until > now]
        return min(waits) if waits else None

    def _backoff(self, attempt: int) -> float:
        cap = min(self._settings.backoff_max, self._settings.backoff_base * (2**attempt))
        return self._rng.uniform(0, cap)  # full jitter

    async def _attempt(self, group: GroupRuntime, dep: DeploymentRuntime, ctx: RequestContext) -> Result:
        provider = dep.provider
        metrics = self._metrics
        dep.inflight += 1
        metrics.inflight_add(dep.id, 1)
        started = time.perf_counter()
        handed_on = False
        routing = ctx.routing
        # The deployment tried last is the one a failure is counted against.
        routing.deployment, routing.version = dep.id, dep.version
        trace = ctx.trace
        span = None
        if trace is not None:
            span = trace.child(
                f"upstream {dep.id}",
                {"interlock.model": group.name, "interlock.deployment": dep.id, "interlock.version": dep.version,
                 "interlock.backend": provider.kind, "interlock.attempt": routing.retries,
                 "interlock.stream": ctx.request.stream},
                client=True,
            )  # fmt: skip
        try:
            if ctx.request.stream:
                events = await self._call(provider.open_stream, ctx)
                handed_on = True
                routing.served_model = group.name
                return StreamResult(self._track_stream(group, dep, ctx, events, started, span))
            answer = await self._call(provider.complete, ctx)
            elapsed = time.perf_counter() - started
            routing.upstream_seconds += elapsed
            routing.served_model = group.name
            dep.observe_latency(elapsed)
            dep.circuit.success()
            metrics.upstream_done(group.name, dep.id, elapsed)
            prompt, completion = _usage(answer.body)
            routing.prompt_tokens, routing.completion_tokens = prompt, completion
            metrics.token_usage(group.name, dep.id, dep.version, prompt, completion)
            if span is not None:
                span.set_attribute("http.response.status_code", answer.status)
            return Completion(answer.body, answer.status)
        except BaseException as exc:
            if span is not None and trace is not None:
                trace.fail(span, exc)
                if isinstance(exc, InterlockError):
                    span.set_attribute("http.response.status_code", exc.status)
            raise
        finally:
            if not handed_on:
                dep.inflight -= 1
                metrics.inflight_add(dep.id, -1)
                if span is not None:
                    span.end()

    @staticmethod
    async def _call(call: Callable[[Any, dict[str, Any]], Awaitable[T]], ctx: RequestContext) -> T:
        """One upstream call. When the telemetry stage sampled this request for logprobs, they are
        asked for; a backend that rejects the request with them is asked again without them, so
        sampling never costs a caller an answer."""
        endpoint = ctx.request.endpoint
        if ctx.logprobs_sampled:
            try:
                return await call(endpoint, with_logprobs(ctx.body))
            except UpstreamRejected:
                ctx.routing.logprobs_refused = True
        return await call(endpoint, ctx.body)

    def _track_stream(
        self,
        group: GroupRuntime,
        dep: DeploymentRuntime,
        ctx: RequestContext,
        events: AsyncIterator[bytes],
        started: float,
        span: Any = None,
    ) -> StreamTap:
        """Pass events through; keep in-flight, latency, tokens and the circuit honest."""
        metrics = self._metrics
        routing = ctx.routing
        first = [True]

        def on_event(event: bytes) -> None:
            if first[0]:
                first[0] = False
                dep.observe_latency(time.perf_counter() - started)  # the first event, for lowest_latency
            if b'"usage"' in event:
                prompt, completion = _usage(event)
                if prompt or completion:
                    routing.prompt_tokens, routing.completion_tokens = prompt, completion

        def on_end(error: BaseException | None) -> None:
            dep.inflight -= 1
            metrics.inflight_add(dep.id, -1)
            elapsed = time.perf_counter() - started
            routing.upstream_seconds += elapsed
            metrics.upstream_done(group.name, dep.id, elapsed)
            if error is None:
                dep.circuit.success()
                metrics.token_usage(group.name, dep.id, dep.version, routing.prompt_tokens, routing.completion_tokens)
            elif isinstance(error, InterlockError):
                dep.circuit.failure(self._clock())
                metrics.upstream_failed(dep.id, error.status)
            else:
                dep.circuit.release()  # the caller went away: no verdict on the deployment
            metrics.circuit(dep.id, int(dep.circuit.state))
            if span is not None:
                if error is not None and ctx.trace is not None:
                    ctx.trace.fail(span, error)
                span.end()  # a stream's upstream span lasts until its last event

        return StreamTap(events, on_event, on_end)
