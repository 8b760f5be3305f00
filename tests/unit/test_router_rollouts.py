"""The router under a rollout: the sticky key picks the version, only that version's deployments
serve, a version without a usable deployment hands over to the other weighted one, a zero-weight
version never serves, and a group without a rollout is untouched."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from interlock.config import RouterSettings
from interlock.errors import Unavailable
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.rollout.assign import Split
from interlock.routing import CircuitBreaker, DeploymentRuntime, GroupRuntime, Router
from interlock.routing.router import sticky_key
from interlock.security.roles import OPEN
from tests.support.clock import SleepingClock
from tests.support.context import context
from tests.support.providers import Scripted


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


def test_rollout_settings_are_checked_against_the_groups_versions(tmp_path: Path) -> None:
    from interlock.config import parse_settings
    from interlock.errors import ConfigError

    models = [{"name": "chat", "deployments": [
        {"id": "a", "backend": "openai", "api_base": "http://x/v1", "version": "v1"},
        {"id": "b", "backend": "openai", "api_base": "http://x/v1", "version": "v2"}]}]  # fmt: skip
    rollout = {"model": "chat", "stable": "v1", "candidate": "v2", "steps": [{"set_weight": 10}]}
    settings = parse_settings({"models": models, "rollouts": [rollout]}, {}, tmp_path)
    assert settings.rollout is not None and settings.rollout.sqlite_path == str(tmp_path / "interlock-rollouts.db")
    with pytest.raises(ConfigError, match=r"\$\.rollouts\[0\]\.candidate: no deployment"):
        parse_settings({"models": models, "rollouts": [{**rollout, "candidate": "v3"}]}, {}, tmp_path)
    with pytest.raises(ConfigError, match=r"\$\.rollouts\[0\]\.steps\[0\]"):
        parse_settings({"models": models, "rollouts": [{**rollout, "steps": [{}]}]}, {}, tmp_path)
    gate = {"interval_s": 0.5, "metrics": [{"condition": "error_rate < 0.1"}]}
    with pytest.raises(ConfigError, match="bucket"):
        parse_settings({"models": models, "rollouts": [{**rollout, "templates": {"g": gate},
                                                         "steps": [{"analysis": "g"}]}]}, {}, tmp_path)  # fmt: skip
    assert parse_settings({"models": models}, {}, tmp_path).rollout is None  # no rollouts: nothing made
