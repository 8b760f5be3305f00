"""The limits stage: count the request against every limit that applies, before anything else
spends work on it; reconcile the token reservation once the answer says what it used."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from ..errors import RateLimited, Unavailable
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext
from ..pipeline.result import Result, StreamResult
from ..pipeline.streams import StreamTap
from .limits import Check, Limiter, estimate_tokens

MAX_PENDING_ADJUSTMENTS = 1024


@dataclass(frozen=True, slots=True)
class Rate:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(slots=True)
class Reservation:
    window: int
    tokens: int
    counters: tuple[str, ...]  # the token counters the estimate was added to


class LimitStage:
    def __init__(
        self,
        limiter: Limiter,
        tenants: Mapping[str, Rate],
        models: Mapping[str, Rate],
        default_max_tokens: int,
        metrics: Metrics,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._tenants = dict(tenants)
        self._models = dict(models)
        self._default_max_tokens = default_max_tokens
        self._reservations: dict[int, Reservation] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
        await self._limiter.close()

    def _checks(self, ctx: RequestContext, tokens: int) -> list[Check]:
        identity = ctx.identity
        checks: list[Check] = []
        for scope, name, rate in (
            ("key", identity.subject, Rate(identity.rpm, identity.tpm)),
            ("tenant", identity.tenant, self._tenants.get(identity.tenant)),
            ("model", ctx.model, self._models.get(ctx.model)),
        ):
            if rate is None:
                continue
            if rate.rpm:
                checks.append(Check(scope, "requests", f"{scope}:{name}:rpm", 1, rate.rpm))
            if rate.tpm:
                checks.append(Check(scope, "tokens", f"{scope}:{name}:tpm", tokens, rate.tpm))
        return checks

    async def before(self, ctx: RequestContext) -> Result | None:
        tokens = estimate_tokens(ctx.body, self._default_max_tokens)
        checks = self._checks(ctx, tokens)
        if not checks:
            return None
        try:
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
        if token_counters:
            self._reservations[id(ctx)] = Reservation(decision.window, tokens, token_counters)
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

    def _reconcile_later(self, ctx: RequestContext, reservation: Reservation) -> None:
        """Move the counters from the estimate to what was used (nothing, for a cache hit or a
        failure), off the response path."""
        delta = ctx.prompt_tokens + ctx.completion_tokens - reservation.tokens
        if not delta or len(self._pending) >= MAX_PENDING_ADJUSTMENTS:
            return
        task = asyncio.get_running_loop().create_task(self._adjust(reservation, delta))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _adjust(self, reservation: Reservation, delta: int) -> None:
        for counter in reservation.counters:
            await self._limiter.adjust(counter, reservation.window, delta)
