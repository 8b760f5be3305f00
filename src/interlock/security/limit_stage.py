"""The limits stage: check the spend budgets and count the request against every rate limit that
applies, before anything else spends work on it; once the answer says what it used, reconcile
the token reservation and add what it cost to the budgets."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from ..errors import RateLimited, Unavailable
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext
from ..pipeline.result import Result, StreamResult
from ..pipeline.streams import StreamTap
from .limits import Check, Limiter, budget_period, estimate_tokens
from .roles import Identity

MICRO = 1_000_000  # budgets are counted in micro-dollars: integers, exact


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
class _Plan:
    requests: tuple[Check, ...]  # requests-per-minute checks, cost 1 each
    tokens: tuple[tuple[str, str, int], ...]  # (scope, counter, limit) of tokens-per-minute checks
    budgets: tuple[Check, ...]
    token_counters: tuple[str, ...]
    budget_counters: tuple[str, ...]


MAX_PLANS = 10_000  # identities times model groups; past that the cache starts over


@dataclass(slots=True)
class Reservation:
    window: int
    tokens: int
    counters: tuple[str, ...]  # the token counters the estimate was added to
    period: int = 0
    budgets: tuple[str, ...] = field(default_factory=tuple)  # budget counters to add the cost to
    local: bool = False  # the token reservation was counted in-process (Redis was failing)
    budgets_local: bool = False  # likewise for the budgets, checked in their own call


class LimitStage:
    def __init__(
        self,
        limiter: Limiter,
        tenants: Mapping[str, Rate],
        models: Mapping[str, Rate],
        default_max_tokens: int,
        metrics: Metrics,
        prices: Mapping[str, Price] | None = None,
        period: str = "month",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._tenants = dict(tenants)
        self._models = dict(models)
        self._default_max_tokens = default_max_tokens
        self._prices = dict(prices or {})
        self._period = period
        self._clock = clock
        self._reservations: dict[int, Reservation] = {}
        self._plans: dict[tuple[object, ...], _Plan] = {}

    async def close(self) -> None:
        await self._limiter.close()

    def _plan(self, ctx: RequestContext) -> _Plan:
        """What applies to this identity and model group, worked out once: the plans are cached
        by everything they depend on, so a request only fills in its token estimate."""
        identity = ctx.identity
        key = (identity.subject, identity.tenant, identity.rpm, identity.tpm, identity.budget, ctx.model)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._make_plan(identity, ctx.model)
        return plan

    def _make_plan(self, identity: Identity, model: str) -> _Plan:
        subject, tenant = identity.subject, identity.tenant
        own = None
        if identity.rpm or identity.tpm or identity.budget is not None:
            own = Rate(identity.rpm, identity.tpm, identity.budget)
        scopes = (
            ("key", subject, own),
            ("tenant", tenant, self._tenants.get(tenant)),
            ("model", model, self._models.get(model)),
        )
        requests: list[Check] = []
        tokens: list[tuple[str, str, int]] = []
        budgets: list[Check] = []
        for scope, name, rate in scopes:
            if rate is None:
                continue
            if rate.rpm:
                requests.append(Check(scope, "requests", f"{scope}:{name}:rpm", 1, rate.rpm))
            if rate.tpm:
                tokens.append((scope, f"{scope}:{name}:tpm", rate.tpm))
            if rate.budget is not None:
                # cost 0, ceiling one below the budget: refused once spent >= budget
                budgets.append(Check(scope, "usd", f"{scope}:{name}:spend", 0, int(rate.budget * MICRO) - 1))
        return _Plan(
            tuple(requests),
            tuple(tokens),
            tuple(budgets),
            tuple(counter for _, counter, _ in tokens),
            tuple(b.counter for b in budgets),
        )

    def _checks(self, ctx: RequestContext, plan: _Plan) -> tuple[list[Check], int]:
        """The rate checks, with the token estimate (made only when a tokens-per-minute limit
        needs it: it serialises the prompt)."""
        checks = list(plan.requests)
        tokens = 0
        if plan.tokens:
            tokens = estimate_tokens(ctx.body, self._default_max_tokens)
            checks += [Check(scope, "tokens", counter, tokens, limit) for scope, counter, limit in plan.tokens]
        return checks, tokens

    async def before(self, ctx: RequestContext) -> Result | None:
        plan = self._plan(ctx)
        budgets = plan.budgets
        if not plan.requests and not plan.tokens and not budgets:
            return None
        checks, tokens = self._checks(ctx, plan)
        period, period_left = budget_period(self._clock(), self._period) if budgets else (0, 0.0)
        budgets_local = False
        try:
            if budgets:
                spent, budgets_local = await self._limiter.within_budget(budgets, period, period_left)
                if spent is not None:
                    self._metrics.rate_limited(spent.scope, spent.unit)
                    raise RateLimited(
                        f"Spend budget of this {spent.scope} is used up for this {self._period}",
                        code="budget_exceeded",
                        retry_after=period_left,
                    )
            decision = self._limiter.take(checks) or await self._limiter.acquire(checks)
        except (RedisError, OSError, TimeoutError):
            raise Unavailable("rate limits cannot be checked right now", retry_after=1) from None
        if not decision.allowed:
            exceeded = decision.exceeded
            assert exceeded is not None
            self._metrics.rate_limited(exceeded.scope, exceeded.unit)
            raise RateLimited(
                f"Rate limit reached: {exceeded.unit} per minute for this {exceeded.scope} (limit {exceeded.limit})",
                retry_after=max(1.0, decision.reset_in),
            )
        ctx.response_headers.extend(decision.headers(checks))
        if plan.token_counters or budgets:
            self._reservations[id(ctx)] = Reservation(
                decision.window,
                tokens,
                plan.token_counters,
                period,
                plan.budget_counters,
                decision.local,
                budgets_local,
            )
        return None

    async def after(self, ctx: RequestContext, result: Result | None, error: BaseException | None) -> Result | None:
        reservation = self._reservations.pop(id(ctx), None)
        if reservation is None:
            return result
        if isinstance(result, StreamResult) and error is None:
            # Usage arrives with the end of the stream: reconcile then.
            def on_end(_: BaseException | None) -> None:
                self._reconcile_later(ctx, reservation)

            return StreamResult(StreamTap(result.events, None, on_end), result.headers)
        self._reconcile_later(ctx, reservation)
        return result

    def cost(self, ctx: RequestContext) -> int:
        """What the answer cost, in micro-dollars, at the price of the deployment that served it."""
        price = self._prices.get(ctx.deployment or "")
        if price is None or ctx.cache_status == "hit":
            return 0
        return round(ctx.prompt_tokens * price.input + ctx.completion_tokens * price.output)

    def _reconcile_later(self, ctx: RequestContext, reservation: Reservation) -> None:
        """Move the token counters from the estimate to what was used (nothing, for a cache hit
        or a failure) and add the cost to the budgets. The limiter settles this in process where
        its leases allow and sends the rest in batches, off the response path."""
        delta = ctx.prompt_tokens + ctx.completion_tokens - reservation.tokens
        spent = self.cost(ctx)
        if spent and ctx.deployment and ctx.served_model:
            self._metrics.spend(ctx.served_model, ctx.deployment, spent / MICRO)
        if delta and reservation.counters:
            self._limiter.adjust([(c, reservation.window, delta) for c in reservation.counters], reservation.local)
        if spent and reservation.budgets:
            self._limiter.adjust(
                [(b, reservation.period, spent) for b in reservation.budgets], reservation.budgets_local
            )
