"""The limits stage: check the spend budgets and count the request against every rate limit that
applies, before anything else spends work on it; once the answer says what it used, reconcile
the token reservation and add what it cost to the budgets."""

from __future__ import annotations

import asyncio
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

FLUSH_S = 0.02  # how long reconciliations are summed before one round trip sends them
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
        self._deltas: dict[tuple[str, int, bool], int] = {}  # (counter, window, local) -> delta
        self._flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        await self._limiter.close()

    def _scopes(self, ctx: RequestContext) -> list[tuple[str, str, Rate | None]]:
        identity = ctx.identity
        own = None
        if identity.rpm or identity.tpm or identity.budget is not None:
            own = Rate(identity.rpm, identity.tpm, identity.budget)
        return [
            ("key", identity.subject, own),
            ("tenant", identity.tenant, self._tenants.get(identity.tenant)),
            ("model", ctx.model, self._models.get(ctx.model)),
        ]

    def _checks(self, ctx: RequestContext) -> tuple[list[Check], list[Check], int]:
        """The rate and budget checks that apply, and the token estimate (made only when a
        tokens-per-minute limit needs it: it serialises the prompt)."""
        rates: list[Check] = []
        budgets: list[Check] = []
        tokens = -1
        for scope, name, rate in self._scopes(ctx):
            if rate is None:
                continue
            if rate.rpm:
                rates.append(Check(scope, "requests", f"{scope}:{name}:rpm", 1, rate.rpm))
            if rate.tpm:
                if tokens < 0:
                    tokens = estimate_tokens(ctx.body, self._default_max_tokens)
                rates.append(Check(scope, "tokens", f"{scope}:{name}:tpm", tokens, rate.tpm))
            if rate.budget is not None:
                # cost 0, ceiling one below the budget: refused once spent >= budget
                budgets.append(Check(scope, "usd", f"{scope}:{name}:spend", 0, int(rate.budget * MICRO) - 1))
        return rates, budgets, max(tokens, 0)

    async def before(self, ctx: RequestContext) -> Result | None:
        checks, budgets, tokens = self._checks(ctx)
        if not checks and not budgets:
            return None
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
            decision = await self._limiter.acquire(checks)
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
        token_counters = tuple(c.counter for c in checks if c.unit == "tokens")
        if token_counters or budgets:
            self._reservations[id(ctx)] = Reservation(
                decision.window,
                tokens,
                token_counters,
                period,
                tuple(b.counter for b in budgets),
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
        or a failure) and add the cost to the budgets. Adjustments are summed in process and sent
        every FLUSH_S in one round trip, off the response path: at thousands of requests a second
        one Redis call each would cost more than the requests."""
        delta = ctx.prompt_tokens + ctx.completion_tokens - reservation.tokens
        spent = self.cost(ctx)
        if spent and ctx.deployment and ctx.served_model:
            self._metrics.spend(ctx.served_model, ctx.deployment, spent / MICRO)
        pending = self._deltas
        for counter in reservation.counters if delta else ():
            key = (counter, reservation.window, reservation.local)
            pending[key] = pending.get(key, 0) + delta
        for counter in reservation.budgets if spent else ():
            key = (counter, reservation.period, reservation.budgets_local)
            pending[key] = pending.get(key, 0) + spent
        if pending and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(FLUSH_S)
        finally:
            self._flusher = None
            await self.flush()

    async def flush(self) -> None:
        batch, self._deltas = self._deltas, {}
        for local in (False, True):
            items = [
                (counter, window, delta) for (counter, window, is_local), delta in batch.items() if is_local == local
            ]
            items = [item for item in items if item[2]]
            if items:
                await self._limiter.adjust(items, local)
