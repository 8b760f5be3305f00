"""The limit stages: admission before anything else spends work on a request, and spend around
the calls that reach a model.

`LimitStage` runs first: it counts the request against every requests-per-minute limit that
applies. A cache hit is a request too, so it counts there and nowhere else: it spends no tokens
and no money. `SpendStage` runs after the cache, so only for requests a model will answer: it
checks the spend budgets, reserves tokens from an estimate against the tokens-per-minute limits,
and once the answer says what it used, moves the reservation to that and adds the cost to the
budgets. A request refused for tokens or budget has still counted as a request, as OpenAI counts
refused requests against its per-minute limits.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from ..errors import RateLimited, Unavailable
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext, Routing
from ..pipeline.result import Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import StreamTap
from .limits import Check, Decision, Limiter, budget_period, estimate_tokens
from .roles import Identity

MICRO = 1_000_000  # budgets are counted in micro-dollars: integers, exact
MAX_PLANS = 10_000  # identities times model groups; past that the cache starts over
_LIMIT_ERRORS = (RedisError, OSError, TimeoutError)
NO_MODEL = ""  # a request no model group answers (the Files and Vector Stores API): no model limit


@dataclass(frozen=True, slots=True)
class Rate:
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None  # USD per budget period


@dataclass(frozen=True, slots=True)
class Price:
    input: float = 0.0  # USD per million tokens
    output: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """The limits that apply to one identity calling one model group."""

    requests: tuple[Check, ...]  # requests-per-minute checks, cost 1 each
    tokens: tuple[tuple[str, str, int], ...]  # (scope, counter, limit) of tokens-per-minute checks
    budgets: tuple[Check, ...]
    token_counters: tuple[str, ...]
    budget_counters: tuple[str, ...]


def counter_name(scope: str, name: str, unit: str) -> str:
    """The counter of one limit: scope key, tenant or model; unit rpm, tpm or spend."""
    return f"{scope}:{name}:{unit}"


class Plans:
    """Plans worked out once per identity and model group, cached by everything they depend on,
    so a request only looks its plan up."""

    def __init__(self, tenants: Mapping[str, Rate], models: Mapping[str, Rate]) -> None:
        self._tenants = dict(tenants)
        self._models = dict(models)
        self._plans: dict[tuple[object, ...], Plan] = {}

    def of(self, ctx: RequestContext) -> Plan:
        return self.of_identity(ctx.request.identity, ctx.request.model)

    def of_identity(self, identity: Identity, model: str) -> Plan:
        key = (identity.subject, identity.tenant, identity.rpm, identity.tpm, identity.budget, model)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._make(identity, model)
        return plan

    def _make(self, identity: Identity, model: str) -> Plan:
        own = None
        if identity.rpm or identity.tpm or identity.budget is not None:
            own = Rate(identity.rpm, identity.tpm, identity.budget)
        scopes = (
            ("key", identity.subject, own),
            ("tenant", identity.tenant, self._tenants.get(identity.tenant)),
            ("model", model, self._models.get(model)),
        )
        requests: list[Check] = []
        tokens: list[tuple[str, str, int]] = []
        budgets: list[Check] = []
        for scope, name, rate in scopes:
            if rate is None:
                continue
            if rate.rpm:
                requests.append(Check(scope, "requests", counter_name(scope, name, "rpm"), 1, rate.rpm))
            if rate.tpm:
                tokens.append((scope, counter_name(scope, name, "tpm"), rate.tpm))
            if rate.budget is not None:
                # cost 0, ceiling one below the budget: refused once spent >= budget
                spend = counter_name(scope, name, "spend")
                budgets.append(Check(scope, "usd", spend, 0, int(rate.budget * MICRO) - 1))
        return Plan(
            tuple(requests),
            tuple(tokens),
            tuple(budgets),
            tuple(counter for _, counter, _ in tokens),
            tuple(b.counter for b in budgets),
        )


def cost_micro(routing: Routing, prices: Mapping[str, Price]) -> int:
    """What an answer cost, in micro-dollars, at the price of the deployment that served it."""
    price = prices.get(routing.deployment or "")
    if price is None:
        return 0
    return round(routing.prompt_tokens * price.input + routing.completion_tokens * price.output)


def _refuse(metrics: Metrics, limiter: Limiter, decision: Decision) -> RateLimited:
    """The 429, with `Retry-After` and, as OpenAI sends them, the `x-ratelimit-*` headers of the
    limit that was reached."""
    exceeded = decision.exceeded
    assert exceeded is not None
    metrics.rate_limited(exceeded.scope, exceeded.unit)
    headers = {k.decode(): v.decode() for k, v in limiter.headers(decision, [exceeded])}
    return RateLimited(
        f"Rate limit reached: {exceeded.unit} per minute for this {exceeded.scope} (limit {exceeded.limit})",
        headers=headers,
        retry_after=max(1.0, decision.reset_in),
    )


class LimitStage:
    """Requests per minute, before the cache: every request counts, a cache hit included."""

    def __init__(self, limiter: Limiter, plans: Plans, metrics: Metrics) -> None:
        self._limiter = limiter
        self._plans = plans
        self._metrics = metrics

    @property
    def limiter(self) -> Limiter:
        """The counters the dashboard reads."""
        return self._limiter

    def __call__(self, ctx: RequestContext, call_next: Next) -> Awaitable[Result]:
        # Not a coroutine, and inline rather than through `admit`: a request a lease covers
        # (nearly all of them) or no limit applies to costs no coroutine of this stage's.
        request = ctx.request
        checks = self._plans.of_identity(request.identity, request.model).requests
        if checks:
            headers = self._limiter.admit(checks)
            if headers is None:
                return self._admitted_by_redis(ctx, call_next, checks)
            ctx.response_headers += headers
        return call_next(ctx)

    async def _admitted_by_redis(self, ctx: RequestContext, call_next: Next, checks: tuple[Check, ...]) -> Result:
        ctx.response_headers += await self._ask_redis(checks)
        return await call_next(ctx)

    async def admit(self, identity: Identity, model: str = NO_MODEL) -> list[tuple[bytes, bytes]]:
        """Count one request of `identity` against its requests-per-minute limits (the key's,
        the tenant's and the model group's, if `model` names one): the `x-ratelimit-*` headers,
        or a RateLimited (429). The Files and Vector Stores routes call it with no model."""
        checks = self._plans.of_identity(identity, model).requests
        if not checks:
            return []
        headers = self._limiter.admit(checks)
        return headers if headers is not None else await self._ask_redis(checks)

    async def _ask_redis(self, checks: tuple[Check, ...]) -> list[tuple[bytes, bytes]]:
        """No lease covers the request: Redis decides."""
        try:
            decision = await self._limiter.acquire(checks)
        except _LIMIT_ERRORS:
            raise Unavailable("rate limits cannot be checked right now", retry_after=1) from None
        if not decision.allowed:
            raise _refuse(self._metrics, self._limiter, decision)
        return self._limiter.headers(decision, checks)


@dataclass(slots=True)
class Reservation:
    window: int
    tokens: int
    counters: tuple[str, ...]  # the token counters the estimate was added to
    period: int = 0  # the budget period the cost is added to
    budgets: tuple[str, ...] = field(default_factory=tuple)  # budget counters to add the cost to
    local: bool = False  # the token reservation was counted in-process (Redis was failing)
    budgets_local: bool = False  # likewise for the budgets, checked in their own call


class SpendStage:
    """Spend budgets and tokens per minute, after the cache: only for calls that reach a model."""

    def __init__(
        self,
        limiter: Limiter,
        plans: Plans,
        default_max_tokens: int,
        metrics: Metrics,
        prices: Mapping[str, Price] | None = None,
        period: str = "month",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._plans = plans
        self._metrics = metrics
        self._default_max_tokens = default_max_tokens
        self._prices = dict(prices or {})
        self._period = period
        self._clock = clock

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        plan = self._plans.of(ctx)
        if not plan.tokens and not plan.budgets:
            return await call_next(ctx)
        reservation = await self._reserve(ctx, plan)
        try:
            result = await call_next(ctx)
        except BaseException:
            self._reconcile(ctx, reservation)  # a failure used nothing: the estimate goes back
            raise
        if isinstance(result, StreamResult):
            # Usage arrives with the end of the stream: reconcile then.
            def on_end(_: BaseException | None) -> None:
                self._reconcile(ctx, reservation)

            return StreamResult(StreamTap(result.events, None, on_end), result.headers)
        self._reconcile(ctx, reservation)
        return result

    async def _reserve(self, ctx: RequestContext, plan: Plan) -> Reservation:
        """Check the budgets, and reserve the estimated tokens against the tokens-per-minute
        limits: a RateLimited when one is reached."""
        budgets = plan.budgets
        budgets_local = local = False
        tokens = window = period = 0
        try:
            if budgets:
                period, period_left = budget_period(self._clock(), self._period)
                spent, budgets_local = await self._limiter.within_budget(budgets, period, period_left)
                if spent is not None:
                    self._metrics.rate_limited(spent.scope, spent.unit)
                    raise RateLimited(
                        f"Spend budget of this {spent.scope} is used up for this {self._period}",
                        code="budget_exceeded",
                        retry_after=period_left,
                    )
            if plan.tokens:
                tokens = estimate_tokens(ctx.body, self._default_max_tokens)
                checks = [Check(scope, "tokens", counter, tokens, limit) for scope, counter, limit in plan.tokens]
                decision = self._limiter.take(checks) or await self._limiter.acquire(checks)
                if not decision.allowed:
                    raise _refuse(self._metrics, self._limiter, decision)
                ctx.response_headers += self._limiter.headers(decision, checks)
                window, local = decision.window, decision.local
        except _LIMIT_ERRORS:
            raise Unavailable("rate limits cannot be checked right now", retry_after=1) from None
        return Reservation(window, tokens, plan.token_counters, period, plan.budget_counters, local, budgets_local)

    def cost(self, ctx: RequestContext) -> int:
        """What the answer cost, in micro-dollars, at the price of the deployment that served it."""
        return cost_micro(ctx.routing, self._prices)

    def _reconcile(self, ctx: RequestContext, reservation: Reservation) -> None:
        """Move the token counters from the estimate to what was used (nothing, for a failure)
        and add the cost to the budgets. The limiter settles this in
        process where its leases allow and sends the rest in batches, off the response path."""
        routing = ctx.routing
        delta = routing.prompt_tokens + routing.completion_tokens - reservation.tokens
        spent = self.cost(ctx)
        if spent and routing.deployment and routing.served_model:
            self._metrics.spend(routing.served_model, routing.deployment, spent / MICRO)
        if delta and reservation.counters:
            self._limiter.adjust([(c, reservation.window, delta) for c in reservation.counters], reservation.local)
        if spent and reservation.budgets:
            self._limiter.adjust(
                [(b, reservation.period, spent) for b in reservation.budgets], reservation.budgets_local
            )
