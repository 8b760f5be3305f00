"""Rollout state in a real Redis (two replicas, a lease, a failover, a restart) and in SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from interlock.rollout import controller as ctl
from interlock.rollout.analysis import Measurement
from interlock.rollout.driver import RolloutDriver
from interlock.rollout.spec import RolloutSpec, parse_spec
from interlock.rollout.store import RedisRolloutStore, Snapshot, SqliteRolloutStore
from tests.support.clock import Clock
from tests.support.procs import RedisServer

pytestmark = pytest.mark.integration
T0 = 1_800_000_000.0


class Healthy:
    """Observations of a healthy candidate, for any interval; counts the intervals asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    settle_s = 0.0

    async def measure(self, model: str, candidate: str, stable: str, start: float, end: float) -> Measurement:
        self.asked.append((start, end))
        signals: dict[str, float | None] = {"requests": 100, "error_rate": 0.0, "p95_latency_ms": 400.0}
        return Measurement(start=start, end=end, candidate=signals, stable=dict(signals))


SPEC = parse_spec({
    "model": "chat", "stable": "v1", "candidate": "v2",
    "templates": {"gate": {"interval_s": 10, "count": 1, "min_requests": 10, "metrics": [{"condition": "error_rate < 0.05"}]}},
    "steps": [{"set_weight": 10}, {"pause": {"duration_s": 10}}, {"analysis": "gate"}, {"set_weight": 50},
              {"pause": {"duration_s": 10}}, {"set_weight": 80}, {"pause": {"duration_s": 10}}],
})  # fmt: skip


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[Redis]]:
    made = [Redis.from_url(redis_server.url) for _ in range(3)]
    yield made
    for c in made:
        await c.aclose()


def replica(
    redis: Redis,
    prefix: str,
    clock: Clock,
    log: list[tuple[str, int]],
    name: str,
    specs: list[RolloutSpec] | None = None,
    ttl: float = 0.5,
) -> RolloutDriver:
    def record(event: ctl.Event) -> None:
        if event.kind == "step":
            log.append((name, event.step))

    return RolloutDriver(RedisRolloutStore(redis, prefix), Healthy(), specs=specs or [], owner=name, clock=clock,
                         lease_ttl_s=ttl, on_event=record)  # fmt: skip


async def test_compare_and_set_applies_a_write_once(clients: list[Redis]) -> None:
    prefix = f"t:{uuid.uuid4().hex[:8]}:"
    a, b = RedisRolloutStore(clients[0], prefix), RedisRolloutStore(clients[1], prefix)
    state = ctl.initial_state(SPEC, T0, revision=1)
    assert await a.save(Snapshot(spec=SPEC, state=state), 0)
    assert not await b.save(Snapshot(spec=SPEC, state=state), 0)  # it exists now
    loaded = await b.load("chat")
    assert loaded is not None and loaded.state == state
    new, _ = ctl.advance(state, SPEC, T0)
    results = await asyncio.gather(a.save(Snapshot(spec=SPEC, state=new), 1), b.save(Snapshot(spec=SPEC, state=new), 1))
    assert sorted(results) == [False, True]
    assert (await a.load_all())["chat"].state.revision == 2


async def test_only_the_lease_holder_advances_and_a_new_holder_continues(clients: list[Redis]) -> None:
    prefix = f"t:{uuid.uuid4().hex[:8]}:"
    clock = Clock(T0)
    log: list[tuple[str, int]] = []
    a = replica(clients[0], prefix, clock, log, "a")
    b = replica(clients[1], prefix, clock, log, "b")
    await a.start_rollout(SPEC)
    await a.tick()
    await b.tick()
    assert a.leader and not b.leader
    assert a.weights("chat") == b.weights("chat") == {"v1": 90.0, "v2": 10.0}  # b reads what a wrote
    b_split = b.split("chat")
    assert b_split is not None and b_split.weights == {"v1": 90.0, "v2": 10.0}
    for _ in range(3):  # through the pause and the analysis, only a acts
        clock.now += 10
        await b.tick()
        await a.tick()
    assert {who for who, _ in log} == {"a"}
    reached = a.state("chat")
    assert reached is not None and reached.step >= 3
    # a dies: it stops renewing. Once the lease expires b takes it and continues from the stored step.
    await asyncio.sleep(0.6)
    while True:
        clock.now += 10
        await b.tick()
        assert b.leader
        st = b.state("chat")
        assert st is not None
        if st.phase == ctl.HEALTHY:
            break
    assert [step for _, step in log] == list(range(1, len(SPEC.plan()) + 1))  # each once, none skipped
    assert {who for who, step in log if step > reached.step} == {"b"}
    assert b.weights("chat") == {"v2": 100.0}


async def test_a_restarted_replica_resumes_where_it_was(clients: list[Redis]) -> None:
    prefix = f"t:{uuid.uuid4().hex[:8]}:"
    clock = Clock(T0)
    log: list[tuple[str, int]] = []
    a = replica(clients[0], prefix, clock, log, "a", specs=[SPEC])
    await a.start()  # starts the configured rollout
    clock.now += 10
    await a.tick()
    await a.close()  # a restart: the lease is let go
    before = a.state("chat")
    assert before is not None and before.step == 2
    again = replica(clients[1], prefix, clock, log, "a2", specs=[SPEC])
    await again.start()  # the configured rollout exists: resumed, not started over
    try:
        st = again.state("chat")
        assert st is not None and st.step == 2 and st.revision == before.revision
        assert st.analysis is not None  # took up the analysis it was running
        clock.now += 10
        await again.tick()
        st = again.state("chat")
        assert st is not None and st.step == 4 and st.verdicts[-1].phase == "Successful"
        assert [s for _, s in log] == [1, 2, 3, 4]
    finally:
        await again.close()


async def test_manual_actions_from_any_replica_and_status(clients: list[Redis]) -> None:
    prefix = f"t:{uuid.uuid4().hex[:8]}:"
    clock = Clock(T0)
    log: list[tuple[str, int]] = []
    a = replica(clients[0], prefix, clock, log, "a")
    b = replica(clients[1], prefix, clock, log, "b")
    await a.start_rollout(SPEC)
    await a.tick()
    with pytest.raises(ctl.RolloutConflict):
        await b.start_rollout(SPEC)
    paused = await b.pause("chat")
    assert paused.phase == ctl.PAUSED
    clock.now += 100
    await a.tick()
    assert a.state("chat") == paused  # the holder honours it
    await b.resume("chat")
    status = await b.status("chat")
    assert status.phase == "Progressing" and status.step == 1 and status.steps == 7
    assert [(v.version, v.weight, v.requests, v.error_rate, v.p95_ms) for v in status.versions] == [
        ("v1", 90.0, 100, 0.0, 400.0),
        ("v2", 10.0, 100, 0.0, 400.0),
    ]
    aborted = await b.abort("chat")
    assert aborted.weights == {"v1": 100.0, "v2": 0.0}
    await a.tick()
    assert a.weights("chat") == {"v1": 100.0, "v2": 0.0}
    restarted = await b.start_rollout(SPEC)  # a finished rollout can be started again
    assert restarted.revision == aborted.revision + 1
    promoted = await a.promote("chat")
    assert promoted.phase == ctl.HEALTHY


async def test_sqlite_restart_resumes_and_lease(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.db"
    clock = Clock(T0)
    log: list[int] = []
    store = SqliteRolloutStore(path, clock)
    d = RolloutDriver(store, Healthy(), specs=[SPEC], owner="p1", clock=clock,
                      on_event=lambda e: log.append(e.step) if e.kind == "step" else None)  # fmt: skip
    await d.start()
    clock.now += 10
    await d.tick()
    await d.close()
    await store.close()
    store = SqliteRolloutStore(path, clock)
    d = RolloutDriver(store, Healthy(), specs=[SPEC], owner="p2", clock=clock,
                      on_event=lambda e: log.append(e.step) if e.kind == "step" else None)  # fmt: skip
    try:
        await d.start()
        st = d.state("chat")
        assert st is not None and st.step == 2
        for _ in range(6):
            clock.now += 10
            await d.tick()
        st = d.state("chat")
        assert st is not None and st.phase == ctl.HEALTHY
        assert log == list(range(1, len(SPEC.plan()) + 1))
        other = SqliteRolloutStore(path, clock)
        try:
            assert not await other.hold_lease("p3", 5)  # p2 holds it
            clock.now += 6
            assert await other.hold_lease("p3", 5)  # expired: taken over
            assert not await store.hold_lease("p2", 5)
        finally:
            await other.close()
    finally:
        await d.close()
        await store.close()
