"""The rollout driver: the thin async glue around the pure controller. One per process.

Every `poll_s` (1 s) each replica reads every rollout's state from the store and keeps it in
memory: `weights(model)` and `split(model)` answer the router from there, so a change written by
any replica reaches every router within one poll (≤ 1 s plus a Redis round trip). The replica
that holds the store's lease (`lease_ttl_s`, 5 s, renewed each poll; a replica that stops
renewing loses it within that time and the next replica to poll takes it) also drives: for each
active rollout it asks the controller which analysis interval is due, gathers that interval's
observations through the injected `Observations`, calls `controller.advance`, and writes the new
state with a compare-and-set on its revision. A write that loses the race is dropped; the next
poll reads what won and decides again, so no step is applied twice or skipped.

Manual actions (`start_rollout`, `pause`, `resume`, `promote`, `abort`) may run on any replica:
read, apply the controller's action, compare-and-set, retry on a lost race.

Wiring, in the composition root:

    store = RedisRolloutStore(redis, prefix) if redis else SqliteRolloutStore(path)
    driver = RolloutDriver(store, observations, specs=settings.rollouts, on_event=post_alert)
    startup: await driver.start()      shutdown: await driver.close(); await store.close()
    router, per request: split = driver.split(group); if split: version = split.choose(sticky_key, rng)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import msgspec
from redis.exceptions import RedisError

from ..lifecycle import Background
from . import analysis as an
from . import controller as ctl
from .analysis import Measurement
from .assign import Split
from .controller import Event, RolloutConflict, RolloutState
from .spec import RolloutSpec
from .store import RolloutStore, Snapshot

log = logging.getLogger("interlock.rollout")
STORE_ERRORS = (RedisError, sqlite3.Error, OSError)


class ObservationError(Exception):
    """The observations for an interval could not be gathered (the measurement becomes Error)."""


class Observations(Protocol):
    """What the lead implements over `RequestStats`, `AlertEngine.breaches` and the shadow summaries.

    `measure` returns a `Measurement` for [start, end): `candidate` and `stable` dicts with
    `requests`, `error_rate`, `p95_latency_ms`, `ttft_p95_ms`, `confidence_mean`
    (`analysis.signals_from_stats` builds these from a window's `Stats`), plus for the candidate
    `drift_breaches` (the number of `AlertEngine.breaches(model, candidate)`) and the shadow
    signals (`shadow.ShadowSummary.signals()`). Raise `ObservationError` when it cannot."""

    async def measure(self, model: str, candidate: str, stable: str, start: float, end: float) -> Measurement: ...

    @property
    def settle_s(self) -> float:
        """How far behind now an interval must end for `measure` to answer without waiting."""
        ...


class VersionStatus(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    weight: float
    requests: int | None
    error_rate: float | None
    p95_ms: float | None


class RolloutStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What `interlock rollout status` prints."""

    model: str
    phase: str
    reason: str
    step: int
    steps: int
    revision: int
    shadow_percent: float
    versions: list[VersionStatus]
    last_verdict: ctl.Verdict | None
    analysis: dict[str, str]  # per metric of the analysis under way
    window_s: float  # the requests, error rate and P95 are over the last window_s seconds


class RolloutNotFound(KeyError):
    pass


class RolloutDriver:
    def __init__(
        self,
        store: RolloutStore,
        observations: Observations,
        *,
        specs: Sequence[RolloutSpec] = (),
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        poll_s: float = 1.0,
        lease_ttl_s: float = 5.0,
        status_window_s: float = 300.0,
        on_event: Callable[[Event], Awaitable[None] | None] | None = None,
    ) -> None:
        self._store = store
        self._observations = observations
        self._specs = list(specs)
        self.owner = owner or uuid.uuid4().hex
        self._clock = clock
        self._poll_s = poll_s
        self._lease_ttl_s = lease_ttl_s
        self._status_window_s = status_window_s
        self._on_event = on_event
        self._snapshots: dict[str, Snapshot] = {}
        self._splits: dict[str, Split] = {}
        self._loop = Background("rollout driver", self._run)
        self.leader = False

    # -- what the router reads (memory only) ---------------------------------------------------------
    def weights(self, model: str) -> Mapping[str, float] | None:
        """The version weights (percent, stable first) of a model group with a rollout; None without."""
        snap = self._snapshots.get(model)
        return snap.state.weights if snap is not None else None

    def split(self, model: str) -> Split | None:
        """The weights ready for `Split.choose(sticky_key, rng)`, rebuilt only when they change."""
        return self._splits.get(model)

    def shadow_percent(self, model: str) -> float:
        snap = self._snapshots.get(model)
        return snap.state.shadow_percent if snap is not None else 0.0

    def sticky(self, model: str) -> str | None:
        """`key_id`, `user` or `header:<name>` for a group with a rollout."""
        snap = self._snapshots.get(model)
        return snap.spec.sticky if snap is not None else None

    def models(self) -> list[str]:
        """The model groups that have a rollout (finished ones included), as last read."""
        return sorted(self._snapshots)

    def state(self, model: str) -> RolloutState | None:
        snap = self._snapshots.get(model)
        return snap.state if snap is not None else None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the configured rollouts that have no state yet (state that exists, finished or not,
        is resumed as it is), read everything once, then poll in the background."""
        existing = await self._store.load_all()
        for spec in self._specs:
            if spec.model not in existing:
                with contextlib.suppress(RolloutConflict):  # another replica started it first
                    await self.start_rollout(spec)
        await self.tick()
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()
        if self.leader:
            with contextlib.suppress(*STORE_ERRORS):
                await self._store.release_lease(self.owner)
            self.leader = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.tick()
            except STORE_ERRORS as exc:
                # Weights stay as last read; the lease lapses if this goes on, and another replica drives.
                log.warning("rollout driver: store failed (%s); retrying next poll", type(exc).__name__)
            except Exception:  # the loop outlives a bad tick (an event handler's bug, say): it drives every rollout
                log.exception("rollout driver: a poll failed; retrying next poll")

    async def tick(self) -> list[Event]:
        """One poll: read every state; if this replica holds the lease, advance each rollout once."""
        snapshots = await self._store.load_all()
        for snap in snapshots.values():
            self._remember(snap)
        for model in set(self._snapshots) - set(snapshots):
            self._forget(model)
        self.leader = await self._store.hold_lease(self.owner, self._lease_ttl_s)
        if not self.leader:
            return []
        events: list[Event] = []
        for snap in snapshots.values():
            events += await self._drive(snap)
        return events

    async def _drive(self, snap: Snapshot) -> list[Event]:
        state, spec = snap.state, snap.spec
        if not state.active and state.previous is None:
            return []
        now = self._clock()
        interval = ctl.due(state, spec, now)
        measurement = None
        if interval is not None:
            try:
                measurement = await self._observations.measure(
                    spec.model, spec.candidate, spec.stable, interval[0], interval[1]
                )
            except (ObservationError, *STORE_ERRORS) as exc:
                measurement = Measurement(start=interval[0], end=interval[1], error=f"observations: {exc}")
        new, events = ctl.advance(state, spec, now, measurement)
        if new is state:
            return []
        if not await self._store.save(Snapshot(spec=spec, state=new), state.revision):
            return []  # someone else wrote first: the next poll reads it and decides again
        self._remember(Snapshot(spec=spec, state=new))
        await self._emit(events)
        return events

    # -- manual actions (any replica) ----------------------------------------------------------------
    async def start_rollout(self, spec: RolloutSpec) -> RolloutState:
        existing = await self._store.load(spec.model)
        if existing is not None and existing.state.active:
            raise RolloutConflict(f"a rollout of {spec.model!r} is already {existing.state.phase}")
        revision = existing.state.revision if existing is not None else 0
        state = ctl.initial_state(spec, self._clock(), revision=revision + 1)
        if not await self._store.save(Snapshot(spec=spec, state=state), revision):
            raise RolloutConflict(f"the rollout of {spec.model!r} changed meanwhile; try again")
        self._remember(Snapshot(spec=spec, state=state))
        await self._emit([ctl.Event(kind="started", model=spec.model, at=state.started_at, step=0,
                                    message=f"{spec.candidate} against {spec.stable} ({spec.strategy})",
                                    candidate=spec.candidate)])  # fmt: skip
        return state

    async def pause(self, model: str) -> RolloutState:
        return await self._act(model, lambda s, spec, now: ctl.pause(s, now))

    async def resume(self, model: str) -> RolloutState:
        return await self._act(model, ctl.resume)

    async def promote(self, model: str) -> RolloutState:
        return await self._act(model, ctl.promote)

    async def abort(self, model: str) -> RolloutState:
        return await self._act(model, lambda s, spec, now: ctl.abort(s, now))

    async def _act(
        self,
        model: str,
        action: Callable[[RolloutState, RolloutSpec, float], tuple[RolloutState, list[Event]]],
        attempts: int = 5,
    ) -> RolloutState:
        for _ in range(attempts):
            snap = await self._store.load(model)
            if snap is None:
                raise RolloutNotFound(model)
            new, events = action(snap.state, snap.spec, self._clock())  # RolloutConflict propagates
            if await self._store.save(Snapshot(spec=snap.spec, state=new), snap.state.revision):
                self._remember(Snapshot(spec=snap.spec, state=new))
                await self._emit(events)
                return new
        raise RolloutConflict(f"the rollout of {model!r} kept changing; try again")

    async def status(self, model: str, settled: bool = False) -> RolloutStatus:
        """`settled`: end the figures' window where every replica's are already published, so
        the answer does not wait for the latest bucket to close (the dashboard's refreshes)."""
        snap = await self._store.load(model)
        if snap is None:
            raise RolloutNotFound(model)
        state, spec = snap.state, snap.spec
        now = self._clock() - (self._observations.settle_s if settled else 0.0)
        window = self._status_window_s
        try:
            m = await self._observations.measure(model, spec.candidate, spec.stable, now - window, now)
        except (ObservationError, *STORE_ERRORS):
            m = Measurement(start=now - window, end=now)
        versions = []
        for version in dict.fromkeys([spec.stable, spec.candidate, *state.weights]):
            signals = m.candidate if version == spec.candidate else m.stable if version == spec.stable else {}
            requests = signals.get("requests")
            versions.append(
                VersionStatus(
                    version=version,
                    weight=state.weights.get(version, 0.0),
                    requests=int(requests) if requests is not None else None,
                    error_rate=signals.get("error_rate"),
                    p95_ms=signals.get("p95_latency_ms"),
                )
            )
        return RolloutStatus(
            model=model,
            phase=state.phase,
            reason=state.reason,
            step=state.step,
            steps=len(spec.plan()),
            revision=state.revision,
            shadow_percent=state.shadow_percent,
            versions=versions,
            last_verdict=state.last_verdict,
            analysis=dict(an.summary(state.analysis)) if state.analysis is not None else {},
            window_s=window,
        )

    # -- helpers -------------------------------------------------------------------------------------
    def _remember(self, snap: Snapshot) -> None:
        model = snap.state.model
        old = self._snapshots.get(model)
        self._snapshots[model] = snap
        if old is None or old.state.weights != snap.state.weights or model not in self._splits:
            self._splits[model] = Split(snap.state.weights)

    def _forget(self, model: str) -> None:
        self._snapshots.pop(model, None)
        self._splits.pop(model, None)

    async def _emit(self, events: list[Event]) -> None:
        for event in events:
            log.info("rollout %s: %s %s", event.model, event.kind, event.message)
            if self._on_event is None:
                continue
            try:
                result = self._on_event(event)
                if result is not None:
                    await result
            except Exception:  # a listener's failure (an alert it cannot post) must not stop a rollout
                log.exception("rollout %s: the %s event's listener failed", event.model, event.kind)
