"""Rollouts: canary and blue/green with metric-gated steps, shadow comparison, automatic rollback.

`spec` defines a rollout (config section `rollouts:`), `assign` puts each request on a version
(sticky by key), `analysis` judges measurements with Argo Rollouts' semantics, `controller` is the
state machine, `shadow` compares shadow answers with stable ones. All of these are pure. `store`
keeps the state (Redis for replicas, SQLite for one process) and `driver` is the per-process
loop that reads it for the router and, on the lease holder, advances it.
"""

from .analysis import Measurement, signals_from_stats
from .assign import Split, choose
from .controller import Event, RolloutConflict, RolloutState, advance
from .driver import ObservationError, Observations, RolloutDriver, RolloutNotFound, RolloutStatus, VersionStatus
from .shadow import ShadowComparison, ShadowSummary, compare, summarize, token_overlap
from .spec import AnalysisTemplate, RolloutSpec, RolloutsSection, parse_rollouts, parse_spec
from .store import RedisRolloutStore, RolloutStore, Snapshot, SqliteRolloutStore

__all__ = [
    "AnalysisTemplate",
    "Event",
    "Measurement",
    "ObservationError",
    "Observations",
    "RedisRolloutStore",
    "RolloutConflict",
    "RolloutDriver",
    "RolloutNotFound",
    "RolloutSpec",
    "RolloutState",
    "RolloutStatus",
    "RolloutStore",
    "RolloutsSection",
    "ShadowComparison",
    "ShadowSummary",
    "Snapshot",
    "Split",
    "SqliteRolloutStore",
    "VersionStatus",
    "advance",
    "choose",
    "compare",
    "parse_rollouts",
    "parse_spec",
    "signals_from_stats",
    "summarize",
    "token_overlap",
]
