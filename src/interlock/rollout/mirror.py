"""Shadow traffic: a copy of some stable answers' requests sent to the candidate, off the caller's path.

The edge calls `ShadowRunner.offer(ctx, body)` after the caller's answer has been sent. For
`shadow_percent(group)` of the requests that the stable version answered (non-streaming chat
completions only: a stream's text is never assembled at the edge; cache hits and fallbacks are
not copied, having no stable latency to compare with), it starts a background task that sends
the same request (as the pipeline left it: after DLP) to one of the candidate version's usable
deployments cleared for its data class, with its own timeout (`shadow_timeout_s`), then compares
the two answers with `shadow.compare` (MiniLM embeddings on a worker thread when configured,
otherwise word overlap) and adds the comparison to the `ShadowLog` the analysis reads.

The self-consistency baseline: for a further `baseline_percent` of those requests (the rollout
state's, set by the shadow step) the copy goes to a stable deployment instead, as another sample
(a `seed` in the request is changed, so a seeded request is not answered from the same draw), and
the comparison is logged as the baseline: how well stable agrees with itself, which is what
`shadow_similarity > stable * 0.7` and the other relative shadow conditions compare with.

What a shadow never does: change or delay the caller's answer (it starts after it was sent),
fail the caller (every failure ends in the task), count as a caller's request (no request
metrics, windows, rate limits, audit or circuit breaker verdicts; it has its own counter
`interlock_shadow_requests{model,version,outcome}` and log lines tagged `shadow`). At most
`shadow_concurrency` run at once per process; beyond that a shadow is dropped (and counted), never
queued.
"""

from __future__ import annotations

import asyncio
import functools
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
from .quality import wants_json
from .shadow import EmbedFn, compare

log = logging.getLogger("interlock.rollout.shadow")


class ShadowSource(Protocol):
    def shadow_percent(self, model: str) -> float: ...

    def state(self, model: str) -> RolloutState | None: ...


def answer_text(body: bytes) -> str | None:
    """The first choice's message text of a chat completion, or None if it has none."""
    return answer_parts(body)[0]


def answer_parts(body: bytes) -> tuple[str | None, str | None]:
    """The first choice's message text (None if it has none) and its finish reason."""
    try:
        choice = orjson.loads(body)["choices"][0]
        content = choice["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None, None
    finish = choice.get("finish_reason")
    return (content if isinstance(content, str) else None), (finish if isinstance(finish, str) else None)


def resampled(body: dict[str, Any]) -> dict[str, Any]:
    """The request for a baseline copy: the same, but another draw when it names a `seed`."""
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return {**body, "seed": seed + 1}
    return body


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
        draw = self._rng.random() * 100.0
        if draw >= percent + state.baseline_percent:
            return
        baseline = draw >= percent
        target = state.stable if baseline else state.candidate
        if len(self._tasks) >= self._concurrency:
            self._metrics.shadow(model, target, "dropped")
            return
        stable_text = answer_text(body)
        if stable_text is None:
            return
        data_class = ctx.data_class
        sensitivity = class_rank(data_class) if data_class else 0
        copy = resampled(dict(ctx.body)) if baseline else dict(ctx.body)
        work = self._run(model, target, request.request_id, copy, request.endpoint, sensitivity,
                         stable_text, routing.upstream_seconds, baseline)  # fmt: skip
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
        baseline: bool = False,
    ) -> None:
        """`candidate` is the version the copy goes to: the candidate, or stable for the baseline."""
        try:
            dep = self._deployment(model, candidate, sensitivity)
            text: str | None = None
            finish: str | None = None
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
                    text, finish = answer_parts(answer.body)
                    if text is None:
                        why = "no message text in the answer"
                except InterlockError as exc:
                    why = f"{type(exc).__name__} {exc.status}"
                except TimeoutError:
                    why = f"timed out after {self._timeout_s:g} s"
            embed = self._embed if text is not None else None
            judge = functools.partial(compare, shadow_finish=finish, wants_json=wants_json(body))
            if embed is not None:
                result = await asyncio.to_thread(judge, stable_text, stable_latency_s, text, latency, embed)
            else:
                result = judge(stable_text, stable_latency_s, text, latency)
            self._metrics.shadow(model, candidate, "error" if result.error else "ok")
            log.debug("shadow %s of %s to %s%s: %s", request_id, model, candidate, " (baseline)" if baseline else "",
                      why or f"similarity {result.similarity:.3f}")  # fmt: skip
            await self._shadows.add(model, self._clock(), result, baseline=baseline)
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow must never take anything down with it: log and forget
            log.exception("shadow %s of %s failed", request_id, model)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
