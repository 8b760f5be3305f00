"""Routing decisions with scripted providers (the Provider protocol, in process), a fake clock
and a sleep that only records: retries, Retry-After, fallbacks, circuit breaking, streams; the
version and sampled logprobs on the context; and a group under a rollout."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from interlock.config import RouterSettings
from interlock.errors import (
    InterlockError,
    Overloaded,
    RateLimited,
    StreamBroken,
    Unavailable,
    UpstreamError,
    UpstreamRejected,
)
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.pipeline.result import Completion, StreamResult
from interlock.rollout.assign import Split
from interlock.routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from interlock.routing.router import sticky_key
from interlock.security.roles import OPEN
from tests.support.clock import SleepingClock
from tests.support.context import context
from tests.support.providers import Recording, Scripted


def make_router(groups: dict[str, list[Scripted]], fallbacks: dict[str, list[str]] | None = None, **settings: Any):
    clock = SleepingClock()
    runtimes = [
        GroupRuntime(
            name,
            [DeploymentRuntime(p, 1.0, CircuitBreaker(3, 30, 10)) for p in providers],
            "weighted",
            (fallbacks or {}).get(name, []),
        )
        for name, providers in groups.items()
    ]
    router = Router(runtimes, RouterSettings(**settings), Metrics(), random.Random(0), clock, clock.sleep)
    return router, clock


def group_ctx(model: str = "g", stream: bool = False) -> RequestContext:
    return context({"model": model}, model=model, stream=stream)


async def test_retries_a_retryable_failure_with_backoff() -> None:
    p = Scripted("a", [UpstreamError("x")])
    router, clock = make_router({"g": [p]})
    c = group_ctx()
    result = await router(c)
    assert isinstance(result, Completion) and p.calls == 2 and c.routing.retries == 1
    assert len(clock.slept) == 1 and 0 <= clock.slept[0] <= 0.05
    assert (c.routing.prompt_tokens, c.routing.completion_tokens) == (3, 2)


async def test_a_retry_prefers_a_deployment_not_yet_tried() -> None:
    a, b = Scripted("a", [UpstreamError("x")] * 5), Scripted("b")
    router, _ = make_router({"g": [a, b]})
    for _ in range(5):
        c = group_ctx()
        await router(c)
        assert c.routing.deployment == "b"
    assert a.calls <= 5


async def test_client_errors_are_not_retried() -> None:
    p = Scripted("a", [UpstreamRejected(400, b"{}")])
    router, _ = make_router({"g": [p]})
    with pytest.raises(UpstreamRejected):
        await router(group_ctx())
    assert p.calls == 1


async def test_retry_after_is_waited_out_when_nothing_else_can_serve() -> None:
    p = Scripted("a", [RateLimited("slow", retry_after=2)])
    router, clock = make_router({"g": [p]})
    await router(group_ctx())
    assert clock.slept == [pytest.approx(2, abs=0.01)] and p.calls == 2


async def test_a_long_retry_after_is_passed_to_the_caller() -> None:
    p = Scripted("a", [RateLimited("slow", retry_after=60)])
    router, clock = make_router({"g": [p]})
    with pytest.raises(RateLimited) as err:
        await router(group_ctx())
    assert err.value.headers["retry-after"] == "60" and clock.slept == []


async def test_falls_back_to_the_next_group_when_retries_run_out() -> None:
    bad, good = Scripted("bad", [UpstreamError("x")] * 3), Scripted("good")
    router, _ = make_router({"g": [bad], "backup": [good]}, {"g": ["backup"]})
    c = group_ctx()
    await router(c)
    assert (c.routing.deployment, c.routing.served_model, bad.calls) == ("good", "backup", 3)


async def test_open_circuit_short_circuits_to_503() -> None:
    p = Scripted("a", [UpstreamError("x")] * 3)
    router, clock = make_router({"g": [p]})
    with pytest.raises(UpstreamError):
        await router(group_ctx())
    with pytest.raises(Unavailable):
        await router(group_ctx())
    assert p.calls == 3
    clock.now += 10  # cooldown over: one half-open probe goes through and closes it
    await router(group_ctx())
    assert p.calls == 4


async def test_stream_open_failures_are_retried_but_not_failures_after_the_first_event() -> None:
    p = Scripted("a", [UpstreamError("connect"), [b"e1", StreamBroken("cut")]])
    router, _ = make_router({"g": [p]})
    c = group_ctx(stream=True)
    result = await router(c)
    assert isinstance(result, StreamResult) and p.calls == 2
    got = []
    with pytest.raises(StreamBroken):
        async for e in result.events:
            got.append(e)
    assert got == [b"e1"] and p.calls == 2
    dep = router.groups["g"].deployments[0]
    assert dep.inflight == 0


async def test_in_flight_count_is_released_when_a_stream_is_closed_unread() -> None:
    p = Scripted("a", [[b"e1", b"e2"]])
    router, _ = make_router({"g": [p]})
    result = await router(group_ctx(stream=True))
    dep = router.groups["g"].deployments[0]
    assert dep.inflight == 1
    await result.events.aclose()  # type: ignore[union-attr]
    assert dep.inflight == 0


async def test_unknown_model_is_404() -> None:
    router, _ = make_router({"g": [Scripted("a")]})
    with pytest.raises(InterlockError) as err:
        await router(group_ctx("nope"))
    assert err.value.status == 404


async def test_a_full_queue_is_retried_but_does_not_open_the_circuit() -> None:
    p = Scripted("a", [Overloaded("full", retry_after=2)] * 9)
    router, _ = make_router({"g": [p]})
    for _ in range(3):
        with pytest.raises(Overloaded) as err:
            await router(group_ctx())
        assert err.value.headers["retry-after"] == "2"
    assert p.calls == 9  # three attempts each time: the circuit never opened
    assert router.groups["g"].deployments[0].circuit.state.name == "CLOSED"


def router_for(provider: Scripted, metrics: Metrics) -> Router:
    dep = DeploymentRuntime(provider=provider, weight=1, circuit=CircuitBreaker(5, 30, 15), version="canary-2")
    return Router([GroupRuntime("g", [dep])], RouterSettings(retries=0), metrics, rng=random.Random(0))


async def test_the_router_puts_the_version_on_the_context_and_asks_for_sampled_logprobs() -> None:
    metrics = Metrics()
    provider = Recording("d")
    router = router_for(provider, metrics)
    plain = context({"messages": []}, model="g", request_id="a")
    await router(plain)
    assert (plain.routing.deployment, plain.routing.version) == ("d", "canary-2")
    assert metrics.registry.get_sample_value(
        "interlock_tokens_total", {"model": "g", "deployment": "d", "version": "canary-2", "direction": "out"}
    ) == 2  # fmt: skip
    sampled = context({"messages": []}, model="g", request_id="b")
    sampled.telemetry.logprobs_sampled = True
    await router(sampled)
    assert provider.bodies == [{"messages": []}, {"messages": [], "logprobs": True, "top_logprobs": 0}]
    assert sampled.body == {"messages": []}  # what the cache keys on is the caller's request


async def test_a_backend_that_refuses_logprobs_is_asked_again_without_them() -> None:
    provider = Recording("d", [UpstreamRejected(400, b'{"error":{"message":"logprobs unsupported"}}')])
    ctx = context({"messages": []}, model="g", request_id="a")
    ctx.telemetry.logprobs_sampled = True
    result = await router_for(provider, Metrics())(ctx)
    assert isinstance(result, Completion) and result.status == 200
    assert [("logprobs" in b) for b in provider.bodies] == [True, False]
    assert not ctx.logprobs_sampled  # nothing to strip


class Rollouts:
    def __init__(self, weights: dict[str, dict[str, float]], sticky: str = "user") -> None:
        self.splits = {model: Split(w) for model, w in weights.items()}
        self._sticky = sticky

    def split(self, model: str) -> Split | None:
        return self.splits.get(model)

    def sticky(self, model: str) -> str | None:
        return self._sticky if model in self.splits else None


def deployment(id_: str, version: str) -> DeploymentRuntime:
    return DeploymentRuntime(Scripted(id_), 1.0, CircuitBreaker(1, 30.0, 15.0), version=version)


def make(weights: dict[str, dict[str, float]], clock: SleepingClock) -> Router:
    deps = [deployment("a1", "v1"), deployment("a2", "v1"), deployment("b1", "v2")]
    settings = RouterSettings(retries=1, backoff_base=0.0)
    return Router([GroupRuntime("chat", deps)], settings, Metrics(), random.Random(3), clock, clock.sleep,
                  rollouts=Rollouts(weights))  # fmt: skip


def ctx(user: str | None) -> RequestContext:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    return context(body, model="chat")


async def test_the_same_user_always_gets_the_same_version() -> None:
    router = make({"chat": {"v1": 50.0, "v2": 50.0}}, SleepingClock())
    landed: dict[str, set[str | None]] = {}
    for u in range(50):
        for _ in range(3):
            c = ctx(f"u{u}")
            await router(c)
            landed.setdefault(f"u{u}", set()).add(c.routing.version)
    assert all(len(v) == 1 for v in landed.values())
    assert {next(iter(v)) for v in landed.values()} == {"v1", "v2"}


async def test_zero_weight_versions_never_serve_and_no_rollout_means_any_version() -> None:
    clock = SleepingClock()
    router = make({"chat": {"v1": 100.0, "v2": 0.0}}, clock)
    for u in range(40):
        c = ctx(f"u{u}")
        await router(c)
        assert c.routing.version == "v1"
    router = make({}, clock)  # no rollout of this group: every deployment serves
    seen = set()
    for u in range(60):
        c = ctx(f"u{u}")
        await router(c)
        seen.add(c.routing.deployment)
    assert seen == {"a1", "a2", "b1"}


async def test_a_version_without_a_usable_deployment_hands_over_to_the_other_weighted_one() -> None:
    clock = SleepingClock()
    router = make({"chat": {"v1": 0.001, "v2": 99.999}}, clock)
    b1 = router.groups["chat"].deployments[2]
    b1.circuit.failure(clock.now)  # opens: one failure in this test's breaker
    c = ctx("someone")
    await router(c)
    assert c.routing.version == "v1"
    # ... but never to a version at zero weight: then the group is unavailable.
    router = make({"chat": {"v1": 0.0, "v2": 100.0}}, clock)
    router.groups["chat"].deployments[2].circuit.failure(clock.now)
    with pytest.raises(Unavailable):
        await router(ctx("someone"))


def test_sticky_keys() -> None:
    c = ctx("alice")
    assert sticky_key("user", c) == "alice"
    assert sticky_key("user", ctx(None)) is None
    assert sticky_key("key_id", c) is None  # the open identity is everyone: chosen at random
    keyed = context(c.request.body, model="chat", identity=replace(OPEN, subject="key-1", kind="key"))
    assert sticky_key("key_id", keyed) == "key-1"
    headed = context(c.request.body, model="chat", sticky_header="tenant-7")
    assert sticky_key("header:x-tenant", headed) == "tenant-7"
