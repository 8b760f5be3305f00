"""Shadow traffic: a copy of some stable answers' requests sent to the candidate, off the caller's path.

The edge calls `ShadowRunner.offer(ctx, body)` after the caller's answer has been sent. For
`shadow_percent(group)` of the requests that the stable version answered (non-streaming chat
completions only: a stream's text is never assembled at the edge; cache hits and fallbacks are
not copied, having no stable latency to compare with), it starts a background task that sends
the same request (as the pipeline left it: after DLP) to one of the candidate version's usable
deployments cleared for its data class, with its own timeout (`shadow_timeout_s`), then compares
the two answers with `shadow.compare` (MiniLM embeddings on a worker thread when configured,
otherwise word overlap) and adds the comparison to the `ShadowLog` the analysis reads.

What a shadow never does: change or delay the caller's answer (it starts after it was sent),
fail the caller (every failure ends in the task), count as a caller's request (no request
metrics, windows, rate limits, audit or circuit breaker verdicts; it has its own counter
`interlock_shadow_requests{model,version,outcome}` and log lines tagged `shadow`). At most
`shadow_concurrency` run at once per process; beyond that a shadow is dropped (and counted), never
queued.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from ..errors import InterlockError
from ..observe.metrics import Metrics
from ..pipeline.context import Endpoint, RequestContext
from ..routing.router import DeploymentRuntime, Router
from ..security.roles import class_rank
from .controller import RolloutState
from .observations import ShadowLog
from .shadow import EmbedFn, compare

log = logging.getLogger("interlock.rollout.shadow")


class ShadowSource(Protocol):
    def shadow_percent(self, model: str) -> float: ...

    def state(self, model: str) -> RolloutState | None: ...


def answer_text(body: bytes) -> str | None:
    """The first choice's message text of a chat completion, or None if it has none."""
    try:
        data = orjson.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


class ShadowRunner:
    def __init__(
        self,
        rollouts: ShadowSource,
        router: Router,
        shadows: ShadowLog,
        metrics: Metrics,
        timeout_s: float = 30.0,
        concurrency: int = 8,
        embed: EmbedFn | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rollouts = rollouts
        self._router = router
        self._shadows = shadows
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._embed = embed
        self._rng = rng or random.Random()
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def offer(self, ctx: RequestContext, body: bytes) -> None:
        """After the caller's answer: maybe start a shadow of this request. Never raises, never waits."""
        request, routing = ctx.request, ctx.routing
        model = request.model
        percent = self._rollouts.shadow_percent(model)
        if percent <= 0 or request.endpoint is not Endpoint.CHAT or request.stream:
            return
        if ctx.cache_result in ("hit", "semantic"):
            return
        state = self._rollouts.state(model)
        if state is None or routing.version != state.stable or routing.served_model != model:
            return
        if self._rng.random() * 100.0 >= percent:
            return
        if len(self._tasks) >= self._concurrency:
            self._metrics.shadow(model, state.candidate, "dropped")
            return
        stable_text = answer_text(body)
        if stable_text is None:
            return
        data_class = ctx.protection.data_class
        sensitivity = class_rank(data_class) if data_class else 0
        work = self._run(model, state.candidate, request.request_id, dict(ctx.body), request.endpoint, sensitivity,
                         stable_text, routing.upstream_seconds)  # fmt: skip
        task = asyncio.get_running_loop().create_task(work, name=f"shadow {request.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _deployment(self, model: str, version: str, sensitivity: int) -> DeploymentRuntime | None:
        group = self._router.groups.get(model)
        if group is None:
            return None
        now = time.monotonic()
        usable = [
            d
            for d in group.deployments
            if d.version == version and d.max_class >= sensitivity and d.circuit.available(now)
        ]
        return self._rng.choice(usable) if usable else None

    async def _run(
        self,
        model: str,
        candidate: str,
        request_id: str,
        body: dict[str, Any],
        endpoint: Endpoint,
        sensitivity: int,
        stable_text: str,
        stable_latency_s: float,
    ) -> None:
        try:
            dep = self._deployment(model, candidate, sensitivity)
            text: str | None = None
            latency: float | None = None
            why = ""
            if dep is None:
                why = "no usable deployment"
            else:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(self._timeout_s):
                        answer = await dep.provider.complete(endpoint, body)
                    latency = time.perf_counter() - started
                    text = answer_text(answer.body)
                    if text is None:
                        why = "no message text in the answer"
                except InterlockError as exc:
                    why = f"{type(exc).__name__} {exc.status}"
                except TimeoutError:
                    why = f"timed out after {self._timeout_s:g} s"
            if self._embed is not None and text is not None:
                result = await asyncio.to_thread(compare, stable_text, stable_latency_s, text, latency, self._embed)
            else:
                result = compare(stable_text, stable_latency_s, text, latency)
            self._metrics.shadow(model, candidate, "error" if result.error else "ok")
            log.debug(
                "shadow %s of %s to %s: %s", request_id, model, candidate, why or f"similarity {result.similarity:.3f}"
            )
            await self._shadows.add(model, self._clock(), result)
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow must never take anything down with it: log and forget
            log.exception("shadow %s of %s failed", request_id, model)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
