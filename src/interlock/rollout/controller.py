"""The rollout state machine. Pure: a state, the spec, the time and a measurement in; a state and
events out. The driver (`driver.py`) does the reading, measuring and writing around it.

Phases (as Argo Rollouts names them): Progressing (running its steps; a timed pause is
Progressing too, waiting for its time), Paused (a `pause: {}` step, an inconclusive analysis, or
paused by hand; only `resume` moves it on), Healthy (promoted: the candidate serves everything),
Degraded (aborted by a failed analysis: the candidate's weight went to 0 at once and an `alert`
event was raised) and Aborted (aborted by hand, or rolled back during `keep_previous_s`).

`advance` applies as many steps as the time allows in one call (a set_weight, then the next
timed pause's start), but takes at most one analysis measurement per call: the driver asks
`due(state, spec, now)` which interval to measure, measures it, and passes the measurement. An
analysis step whose interval is due and gets no measurement records an Error measurement (the
observations could not be gathered), which is what Argo does when a provider fails.

Every change bumps `revision` by one; the stores compare-and-set on it, so a step is applied once
even when two replicas race.

Weights are percents, the stable version first and the candidate last (see `assign.py` for why
the order matters for stickiness).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from . import analysis as an
from .analysis import AnalysisRun, Measurement
from .spec import RolloutSpec

RolloutPhase = Literal["Progressing", "Paused", "Healthy", "Degraded", "Aborted"]
PROGRESSING: Final = "Progressing"
PAUSED: Final = "Paused"
HEALTHY: Final = "Healthy"
DEGRADED: Final = "Degraded"
ABORTED: Final = "Aborted"
ACTIVE = frozenset({PROGRESSING, PAUSED})
MAX_VERDICTS = 100


class RolloutConflict(ValueError):
    """A manual action that does not apply to the rollout's phase (resume a running one, ...)."""


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    phase: str  # an analysis phase: Successful, Failed, Error, Inconclusive
    at: float
    message: str = ""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """What happened, for logs, metrics and (kind "alert") the alert webhooks."""

    kind: str  # started step weights shadow analysis paused resumed promoted aborted alert previous_dropped
    model: str
    at: float
    step: int = -1
    message: str = ""
    severity: str = "info"
    candidate: str = ""  # the version under test


class RolloutState(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    stable: str
    candidate: str
    phase: RolloutPhase = PROGRESSING
    reason: str = ""  # why Paused / Degraded / Aborted: pause, manual, inconclusive, analysis, rollback
    step: int = 0  # index into spec.plan()
    step_started_at: float
    weights: dict[str, float]
    shadow_percent: float = 0.0
    baseline_percent: float = 0.0  # of stable's requests shadowed to stable itself (the baseline)
    analysis: AnalysisRun | None = None  # the analysis step under way
    verdicts: list[Verdict] = []  # the latest MAX_VERDICTS, oldest first
    previous: str | None = None  # kept ready after promotion, until previous_until
    previous_until: float | None = None
    started_at: float
    updated_at: float
    revision: int = 0

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    @property
    def last_verdict(self) -> Verdict | None:
        return self.verdicts[-1] if self.verdicts else None

    def ready_versions(self) -> list[str]:
        """Versions whose deployments must stay up: any with weight, and a previous one kept."""
        ready = [v for v, w in self.weights.items() if w > 0]
        if self.previous is not None and self.previous not in ready:
            ready.append(self.previous)
        return ready


def initial_state(spec: RolloutSpec, now: float, revision: int = 0) -> RolloutState:
    """A rollout about to start: all traffic on stable. `revision` continues a previous rollout's
    count for the same model group, so the store's compare-and-set keeps working."""
    return RolloutState(
        model=spec.model,
        stable=spec.stable,
        candidate=spec.candidate,
        step_started_at=now,
        weights={spec.stable: 100.0, spec.candidate: 0.0},
        started_at=now,
        updated_at=now,
        revision=revision,
    )


def due(state: RolloutState, spec: RolloutSpec, now: float) -> tuple[float, float] | None:
    """The interval the current analysis step needs measured now, if any."""
    if state.phase != PROGRESSING:
        return None
    plan = spec.plan()
    if state.step >= len(plan) or plan[state.step].kind != "analysis":
        return None
    template = spec.template(plan[state.step])
    run = state.analysis or an.new_run(template, state.step_started_at)
    return an.due_interval(run, template, now)


def advance(
    state: RolloutState, spec: RolloutSpec, now: float, measurement: Measurement | None = None
) -> tuple[RolloutState, list[Event]]:
    events: list[Event] = []
    s = _advance(state, spec, now, measurement, events)
    return _bump(state, s, now), events


def _advance(
    s: RolloutState, spec: RolloutSpec, now: float, measurement: Measurement | None, events: list[Event]
) -> RolloutState:
    if s.phase == HEALTHY:
        if s.previous is not None and s.previous_until is not None and now >= s.previous_until:
            weights = {v: w for v, w in s.weights.items() if v != s.previous}
            events.append(_event("previous_dropped", s, now, f"{s.previous} no longer kept ready"))
            s = _replace(s, weights=weights, previous=None, previous_until=None)
        return s
    if s.phase != PROGRESSING:
        return s
    plan = spec.plan()
    while True:
        if s.step >= len(plan):
            return _promote(s, spec, now, events, "every step passed")
        step = plan[s.step]
        kind = step.kind
        if kind == "set_weight":
            assert step.set_weight is not None
            s = _replace(s, weights=_split(s, step.set_weight))
            events.append(_event("weights", s, now, f"{s.candidate} at {step.set_weight:g}%"))
            s = _next(s, now, events)
        elif kind == "shadow":
            assert step.shadow is not None
            s = _replace(s, shadow_percent=step.shadow.percent, baseline_percent=step.shadow.baseline())
            message = f"shadow {step.shadow.percent:g}% to {s.candidate}, {s.baseline_percent:g}% to {s.stable}"
            events.append(_event("shadow", s, now, message))
            s = _next(s, now, events)
        elif kind == "pause":
            assert step.pause is not None
            if step.pause.duration_s is None:
                events.append(_event("paused", s, now, "until resumed"))
                return _replace(s, phase=PAUSED, reason="pause")
            if now < s.step_started_at + step.pause.duration_s:
                return s
            s = _next(s, now, events)
        else:
            template = spec.template(step)
            run = s.analysis or an.new_run(template, s.step_started_at)
            interval = an.due_interval(run, template, now)
            if interval is None:
                return _replace(s, analysis=run)
            m = measurement
            if m is None or (m.start, m.end) != interval:
                m = Measurement(start=interval[0], end=interval[1], error="no observations for the interval")
            run = an.record(run, template, m)
            s = _replace(s, analysis=run)
            if run.phase == an.RUNNING:
                return s  # one measurement per call
            verdict = Verdict(step=s.step, phase=run.phase, at=now, message=run.message)
            s = _replace(s, verdicts=[*s.verdicts, verdict][-MAX_VERDICTS:])
            severity = "info" if run.phase == an.SUCCESSFUL else "warning"
            events.append(_event("analysis", s, now, f"{run.phase}: {run.message}", severity))
            if run.phase == an.SUCCESSFUL:
                s = _next(s, now, events)
                measurement = None
            elif run.phase == an.INCONCLUSIVE:
                events.append(_event("paused", s, now, f"inconclusive analysis: {run.message}", "warning"))
                return _replace(s, phase=PAUSED, reason="inconclusive")
            else:
                s = _to_stable(s, DEGRADED, "analysis")
                events.append(_event("aborted", s, now, f"analysis {run.phase}: {run.message}", "critical"))
                events.append(_event("alert", s, now, f"rollout of {s.candidate} aborted: {run.message}", "critical"))
                return s


# -- manual actions --------------------------------------------------------------------------------
def pause(state: RolloutState, now: float) -> tuple[RolloutState, list[Event]]:
    if state.phase != PROGRESSING:
        raise RolloutConflict(f"cannot pause a rollout that is {state.phase}")
    s = _replace(state, phase=PAUSED, reason="manual")
    return _bump(state, s, now), [_event("paused", s, now, "by hand")]


def resume(state: RolloutState, spec: RolloutSpec, now: float) -> tuple[RolloutState, list[Event]]:
    """A `pause: {}` step or an inconclusive analysis: accepted, on to the next step. A pause by
    hand: the current step starts over (its timer and any analysis)."""
    if state.phase != PAUSED:
        raise RolloutConflict(f"cannot resume a rollout that is {state.phase}")
    events = [_event("resumed", state, now, f"after {state.reason}")]
    s = _replace(state, phase=PROGRESSING, reason="")
    s = _replace(s, step_started_at=now, analysis=None) if state.reason == "manual" else _next(s, now, events)
    s = _advance(s, spec, now, None, events)
    return _bump(state, s, now), events


def promote(state: RolloutState, spec: RolloutSpec, now: float) -> tuple[RolloutState, list[Event]]:
    """Skip the remaining steps: the candidate to 100% now."""
    if state.phase not in ACTIVE:
        raise RolloutConflict(f"cannot promote a rollout that is {state.phase}")
    events: list[Event] = []
    s = _promote(state, spec, now, events, "by hand")
    return _bump(state, s, now), events


def abort(state: RolloutState, now: float, reason: str = "manual") -> tuple[RolloutState, list[Event]]:
    """Back to stable at once. Also a rollback while the previous version is kept after promotion."""
    if state.phase in ACTIVE:
        s = _to_stable(state, ABORTED, reason)
    elif state.phase == HEALTHY and state.previous is not None:
        s = _replace(state, weights={state.previous: 100.0, state.candidate: 0.0}, previous=None, previous_until=None)
        s = _replace(s, phase=ABORTED, reason="rollback")
    else:
        raise RolloutConflict(f"cannot abort a rollout that is {state.phase}")
    return _bump(state, s, now), [_event("aborted", s, now, s.reason, "warning")]


# -- helpers ---------------------------------------------------------------------------------------
def _split(s: RolloutState, candidate_percent: float) -> dict[str, float]:
    return {s.stable: 100.0 - candidate_percent, s.candidate: candidate_percent}


def _next(s: RolloutState, now: float, events: list[Event]) -> RolloutState:
    s = _replace(s, step=s.step + 1, step_started_at=now, analysis=None)
    events.append(_event("step", s, now, f"step {s.step}"))
    return s


def _promote(s: RolloutState, spec: RolloutSpec, now: float, events: list[Event], why: str) -> RolloutState:
    if spec.keep_previous_s > 0:
        weights = {s.stable: 0.0, s.candidate: 100.0}
        s = _replace(s, weights=weights, previous=s.stable, previous_until=now + spec.keep_previous_s)
    else:
        s = _replace(s, weights={s.candidate: 100.0})
    s = _replace(s, phase=HEALTHY, reason="", shadow_percent=0.0, baseline_percent=0.0, analysis=None,
                 step=len(spec.plan()))  # fmt: skip
    events.append(_event("promoted", s, now, f"{s.candidate} at 100% ({why})"))
    return s


def _to_stable(s: RolloutState, phase: RolloutPhase, reason: str) -> RolloutState:
    weights = {s.stable: 100.0, s.candidate: 0.0}
    return _replace(s, weights=weights, shadow_percent=0.0, baseline_percent=0.0, phase=phase, reason=reason)


def _replace(s: RolloutState, **changes: object) -> RolloutState:
    return msgspec.structs.replace(s, **changes)


def _bump(before: RolloutState, after: RolloutState, now: float) -> RolloutState:
    if after == before:
        return before
    return msgspec.structs.replace(after, revision=before.revision + 1, updated_at=now)


def _event(kind: str, s: RolloutState, now: float, message: str, severity: str = "info") -> Event:
    return Event(
        kind=kind, model=s.model, at=now, step=s.step, message=message, severity=severity, candidate=s.candidate
    )
