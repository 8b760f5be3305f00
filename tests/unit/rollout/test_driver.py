"""The rollout driver around the pure controller, on a SQLite store and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.rollout.analysis import Measurement
from interlock.rollout.controller import Event
from interlock.rollout.driver import RolloutDriver
from interlock.rollout.spec import parse_spec
from interlock.rollout.store import SqliteRolloutStore
from tests.support.clock import Clock

SPEC = parse_spec({
    "model": "chat", "stable": "v1", "candidate": "v2",
    "templates": {"gate": {"interval_s": 10, "count": 1, "min_requests": 10, "metrics": [{"condition": "error_rate < 0.05"}]}},
    "steps": [{"set_weight": 10}, {"analysis": "gate"}, {"set_weight": 50}],
})  # fmt: skip


class Failing:
    """A candidate failing its analysis: the controller aborts, and emits an `alert` event."""

    settle_s = 0.0

    async def measure(self, model: str, candidate: str, stable: str, start: float, end: float) -> Measurement:
        return Measurement(start=start, end=end, candidate={"requests": 100, "error_rate": 0.5},
                           stable={"requests": 100, "error_rate": 0.0})  # fmt: skip


async def test_a_listener_that_fails_does_not_stop_the_rollout_it_listens_to(tmp_path: Path) -> None:
    seen: list[str] = []

    def listener(event: Event) -> None:
        seen.append(event.kind)
        raise RuntimeError("cannot post the alert")

    clock = Clock(1_800_000_000.0)
    store = SqliteRolloutStore(str(tmp_path / "rollouts.db"))
    driver = RolloutDriver(store, Failing(), specs=[SPEC], owner="r1", clock=clock, on_event=listener)
    try:
        await driver.start()  # starts the rollout: its `started` event's listener fails, the start does not
        for _ in range(4):
            clock.now += 11
            await driver.tick()
        state = driver.state("chat")
        assert state is not None and state.phase == "Degraded" and state.weights["v2"] == 0, state
        assert {"started", "alert"} <= set(seen)
    finally:
        await driver.close()
        await store.close()


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="interlock.rollout")  # the listener's failures are logged on purpose
