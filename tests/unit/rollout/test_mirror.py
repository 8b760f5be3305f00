"""ShadowRunner in process: which answers are copied to the candidate (non-streamed chat answers
of the stable version, neither cache hits nor fallbacks), the percent gate with a seeded random
source, the concurrency cap, the comparison a shadow adds to the ShadowLog, failures that end in
the shadow's own task, and close() cancelling the shadows in flight. The candidate is a fake
provider behind a real Router's group."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import msgspec
import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.config import RouterSettings
from interlock.errors import UpstreamError
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import Endpoint, RequestContext
from interlock.providers.base import UpstreamAnswer
from interlock.rollout.controller import RolloutState, initial_state
from interlock.rollout.mirror import ShadowRunner
from interlock.rollout.observations import ShadowLog
from interlock.rollout.shadow import ShadowSummary
from interlock.rollout.spec import parse_spec
from interlock.routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from interlock.security.roles import class_rank
from tests.support.answers import chat
from tests.support.clock import Clock
from tests.support.context import context
from tests.support.providers import Recording

STABLE_ANSWER = chat(None)  # "hi there"
CANDIDATE_ANSWER = orjson.dumps(
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there friend"}}]}
)


class Rollout:
    """What the rollout driver tells the runner: `chat` rolls out from v1 to v2, copying `percent`
    of the stable version's answers."""

    def __init__(self, percent: float, baseline: float = 0.0) -> None:
        self.percent = percent
        state = initial_state(parse_spec({"model": "chat", "stable": "v1", "candidate": "v2",
                                          "steps": [{"set_weight": 10}]}), 0.0)  # fmt: skip
        self._state = msgspec.structs.replace(state, baseline_percent=baseline)

    def shadow_percent(self, model: str) -> float:
        return self.percent if model == "chat" else 0.0

    def state(self, model: str) -> RolloutState | None:
        return self._state if model == "chat" else None


class Candidate(Recording):
    """The candidate deployment: answers CANDIDATE_ANSWER (or its script); while `hold` is set,
    each call waits for it, and a cancelled call is counted."""

    def __init__(self, script: list[Any] | None = None, max_class: str = "restricted") -> None:
        super().__init__("candidate-1", script)
        self.max_class = max_class
        self.hold: asyncio.Event | None = None
        self.waiting = 0
        self.cancelled = 0

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        if self.hold is not None:
            self.waiting += 1
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if not self.script:
            self.script.append(CANDIDATE_ANSWER)
        answer: UpstreamAnswer = await super().complete(endpoint, body)
        return answer


class Shadows:
    """A runner over a router whose group `chat` has a stable (v1) and a candidate (v2) deployment."""

    def __init__(
        self, percent: float = 100.0, candidate: Candidate | None = None, baseline: float = 0.0, **runner: Any
    ) -> None:
        self.stable = Recording("stable-1")
        self.candidate = candidate or Candidate()
        deployments = [
            DeploymentRuntime(self.stable, 1.0, CircuitBreaker(3, 30, 10), version="v1"),
            DeploymentRuntime(self.candidate, 1.0, CircuitBreaker(3, 30, 10), class_rank(self.candidate.max_class),
                              version="v2"),
        ]  # fmt: skip
        router = Router([GroupRuntime("chat", deployments)], RouterSettings(), Metrics(CollectorRegistry()))
        self.log = ShadowLog(None, "test:rollout:")
        self.metrics = Metrics(CollectorRegistry())
        runner.setdefault("rng", random.Random(0))
        self.runner = ShadowRunner(
            Rollout(percent, baseline), router, self.log, self.metrics, clock=Clock(1000.0), **runner
        )

    async def done(self) -> ShadowSummary:
        """Wait for the shadows `offer` started (it names their tasks `shadow <request id>`); what
        the log holds then."""
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t.get_name().startswith("shadow ")))
        return await self.log.summary("chat", 0.0, 2000.0)

    def counted(self, outcome: str) -> float | None:
        labels = {"model": "chat", "version": "v2", "outcome": outcome}
        return self.metrics.registry.get_sample_value("interlock_shadow_requests_total", labels)


def answered(
    version: str = "v1",
    *,
    model: str = "chat",
    endpoint: Endpoint = Endpoint.CHAT,
    stream: bool = False,
    cache: str | None = None,
    served: str = "chat",
    request_id: str = "r",
) -> RequestContext:
    """A request as the pipeline leaves it once the `version` deployment of group `served` answered."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ctx = context(body, model=model, endpoint=endpoint, stream=stream, request_id=request_id)
    routing = ctx.routing
    routing.deployment, routing.version, routing.served_model, routing.upstream_seconds = (
        "stable-1",
        version,
        served,
        0.5,
    )
    ctx.cache_status = cache
    return ctx


async def test_only_non_streamed_chat_answers_of_the_stable_version_are_copied() -> None:
    shadows = Shadows()
    not_copied = [
        answered(stream=True),
        answered(endpoint=Endpoint.COMPLETIONS),
        answered(endpoint=Endpoint.EMBEDDINGS),
        answered(cache="hit"),  # no stable latency to compare with
        answered(served="backup"),  # a fallback answered
        answered(version="v2"),  # the candidate answered this one itself
        answered(model="other", served="other"),  # no rollout of that group
    ]
    for ctx in not_copied:
        shadows.runner.offer(ctx, STABLE_ANSWER)
    shadows.runner.offer(answered(), b'{"object":"list","data":[]}')  # no message text to compare
    assert (await shadows.done()).requests == 0 and shadows.candidate.calls == 0
    shadows.runner.offer(answered(request_id="a"), STABLE_ANSWER)
    shadows.runner.offer(answered(cache="miss", request_id="b"), STABLE_ANSWER)
    summary = await shadows.done()
    assert summary.requests == 2 and shadows.candidate.calls == 2 and shadows.stable.calls == 0
    assert shadows.counted("ok") == 2


async def test_a_shadow_sends_the_request_as_the_pipeline_left_it_and_logs_the_comparison() -> None:
    shadows = Shadows()
    ctx = answered()
    protected = {"model": "chat", "messages": [{"role": "user", "content": "mail <EMAIL_abcdefghijkl>"}]}
    ctx.protection.body = protected  # DLP's rewrite is what left the gateway, so what the shadow sends
    shadows.runner.offer(ctx, STABLE_ANSWER)
    summary = await shadows.done()
    assert shadows.candidate.bodies == [protected] and shadows.candidate.bodies[0] is not protected  # a copy
    assert (summary.requests, summary.errors) == (1, 0)
    assert summary.similarity_mean == pytest.approx(2 / 3)  # {hi, there} against {hi, there, friend}
    assert summary.latency_ratio_mean is not None
    assert summary.signals()["shadow_requests"] == 1


async def test_a_candidate_not_cleared_for_the_data_class_is_not_sent_it() -> None:
    shadows = Shadows(candidate=Candidate(max_class="internal"))
    ctx = answered()
    ctx.protection.data_class = "confidential"
    shadows.runner.offer(ctx, STABLE_ANSWER)
    summary = await shadows.done()
    assert shadows.candidate.calls == 0 and (summary.requests, summary.errors) == (1, 1)  # no usable deployment
    assert shadows.counted("error") == 1


async def test_the_percent_gate_follows_the_seeded_random_source() -> None:
    async def copied(seed: int) -> int:
        shadows = Shadows(percent=25.0, rng=random.Random(seed))
        for i in range(400):
            shadows.runner.offer(answered(request_id=f"r{i}"), STABLE_ANSWER)
            await shadows.done()
        return shadows.candidate.calls

    first = await copied(7)
    assert 70 <= first <= 130  # a quarter of 400, give or take
    assert await copied(7) == first  # the same seed copies the same requests
    never = Shadows(percent=0.0)
    for i in range(50):
        never.runner.offer(answered(request_id=f"r{i}"), STABLE_ANSWER)
    assert (await never.done()).requests == 0 and never.candidate.calls == 0


async def test_past_the_concurrency_cap_a_shadow_is_dropped_and_counted() -> None:
    candidate = Candidate()
    candidate.hold = asyncio.Event()
    shadows = Shadows(candidate=candidate, concurrency=2)
    for i in range(5):
        shadows.runner.offer(answered(request_id=f"r{i}"), STABLE_ANSWER)  # never waits, never queues
    await asyncio.sleep(0)
    assert candidate.waiting == 2 and shadows.counted("dropped") == 3
    candidate.hold.set()
    summary = await shadows.done()
    assert summary.requests == 2 and shadows.counted("ok") == 2
    shadows.runner.offer(answered(request_id="later"), STABLE_ANSWER)  # the cap is on shadows in flight
    assert (await shadows.done()).requests == 3


async def test_failures_end_in_the_shadow_task(caplog: pytest.LogCaptureFixture) -> None:
    shadows = Shadows(candidate=Candidate([UpstreamError("down"), RuntimeError("a bug in a provider")]))
    shadows.runner.offer(answered(request_id="failed"), STABLE_ANSWER)  # an upstream error: an error comparison
    summary = await shadows.done()
    assert (summary.requests, summary.errors) == (1, 1) and shadows.counted("error") == 1
    with caplog.at_level(logging.ERROR, "interlock.rollout.shadow"):
        shadows.runner.offer(answered(request_id="broken"), STABLE_ANSWER)  # anything else: logged, nothing kept
        summary = await shadows.done()
    assert summary.requests == 1
    assert [r.getMessage() for r in caplog.records] == ["shadow broken of chat failed"]

    slow = Candidate()
    slow.hold = asyncio.Event()  # never set: the shadow's own timeout ends it
    timed = Shadows(candidate=slow, timeout_s=0.01)
    timed.runner.offer(answered(), STABLE_ANSWER)
    summary = await timed.done()
    assert (summary.requests, summary.errors, slow.cancelled) == (1, 1, 1)


async def test_close_cancels_the_shadows_in_flight() -> None:
    candidate = Candidate()
    candidate.hold = asyncio.Event()
    shadows = Shadows(candidate=candidate)
    for i in range(3):
        shadows.runner.offer(answered(request_id=f"r{i}"), STABLE_ANSWER)
    await asyncio.sleep(0)
    assert candidate.waiting == 3
    await shadows.runner.close()
    assert candidate.cancelled == 3
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("shadow ")]
    assert (await shadows.log.summary("chat", 0.0, 2000.0)).requests == 0 and shadows.counted("ok") is None


async def test_a_baseline_share_goes_to_the_stable_version_as_another_sample_and_is_logged_apart() -> None:
    shadows = Shadows(percent=50.0, baseline=50.0, rng=random.Random(3))
    shadows.stable.script = [STABLE_ANSWER] * 200  # stable answers the same again
    for i in range(200):
        ctx = answered(request_id=f"r{i}")
        ctx.protection.body = {"model": "chat", "seed": 7, "messages": [{"role": "user", "content": "hi"}]}
        shadows.runner.offer(ctx, STABLE_ANSWER)
        candidate = await shadows.done()  # one at a time, under the concurrency cap
    baseline = await shadows.log.summary("chat", 0.0, 2000.0, baseline=True)
    # Every offer drew one of the two (50 + 50 %); each went to one version and was logged under it.
    assert shadows.candidate.calls + shadows.stable.calls == 200 and 60 <= shadows.stable.calls <= 140
    assert (candidate.requests, baseline.requests) == (shadows.candidate.calls, shadows.stable.calls)
    assert {b["seed"] for b in shadows.stable.bodies} == {8} and {b["seed"] for b in shadows.candidate.bodies} == {7}
    assert baseline.similarity_mean == 1.0 and baseline.errors == 0
    assert candidate.similarity_mean == pytest.approx(2 / 3)
    stable_counted = shadows.metrics.registry.get_sample_value(
        "interlock_shadow_requests_total", {"model": "chat", "version": "v1", "outcome": "ok"}
    )
    assert stable_counted == shadows.stable.calls


async def test_a_shadow_answer_is_judged_on_its_own_refusal_finish_and_json() -> None:
    refusal = orjson.dumps({"choices": [{"index": 0, "finish_reason": "length",
                                         "message": {"role": "assistant", "content": "I'm sorry, but I can't help"}}]})  # fmt: skip
    shadows = Shadows(candidate=Candidate(script=[refusal]))
    ctx = answered()
    ctx.protection.body = {"model": "chat", "response_format": {"type": "json_object"}, "messages": []}
    shadows.runner.offer(ctx, STABLE_ANSWER)
    summary = await shadows.done()
    assert (summary.refusals, summary.unfinished, summary.json_requests, summary.json_invalid) == (1, 1, 1, 1)
