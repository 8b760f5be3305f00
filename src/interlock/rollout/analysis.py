"""Analysis runs: measurements in, a verdict out. Pure; the measurements are data.

The semantics are Argo Rollouts' AnalysisRun semantics (Argo Rollouts documentation, "Analysis &
Progressive Delivery", and its analysis controller), applied to every metric of a template:

- A metric is measured once per `interval_s`, `count` times. Each measurement is Successful (the
  condition holds), Failed (it does not), Inconclusive (it cannot be judged: fewer than
  `min_requests` requests in the interval, no value, or, for a condition relative to the stable
  version, no stable value to compare with) or Error (the observations could not be gathered).
- A metric is Failed when its failed measurements exceed `failure_limit` (default 0: the first
  failure fails it); Inconclusive when its inconclusive measurements exceed `inconclusive_limit`
  (default 0); Error when its consecutive errors exceed `consecutive_error_limit` (default 4);
  Successful when it has been measured `count` times without reaching any of these.
- A run ends as soon as one metric is Failed, Error or Inconclusive (Argo terminates the run
  then), with the worst phase among its metrics (Failed worse than Error worse than Inconclusive);
  it is Successful when every metric is.
- What the rollout does with the verdict (in `controller.py`, again as Argo): Failed or Error
  aborts it, Inconclusive pauses it until someone resumes (resuming accepts the step), Successful
  moves on to the next step.

One deliberate difference: an Error measurement does not count towards `count` (Argo counts it),
so a run cannot pass on measurements that were never taken. And "too little traffic" is an
Inconclusive measurement, never a Successful one: a quiet candidate is not a healthy one. But it
may be a Failed one: for a condition that keeps a rate under a threshold (`RATE_DENOMINATORS`),
an interval with fewer than `min_requests` answers fails when a sequential probability ratio test
on those answers already shows the rate is bad (`sequential.py`, `early_failure`, on by default),
and the message says how much evidence it took.

A `Measurement` holds plain dicts of signals for the candidate and the stable version over one
interval (`signals_from_stats` builds one from `observe.window.Stats`), so tests are data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from ..observe.window import Stats
from .sequential import Evidence, rate_evidence
from .spec import RATE_DENOMINATORS, SHADOW_SIGNALS, UNCOUNTED_SIGNALS, AnalysisTemplate, Condition, Metric

Phase = Literal["Running", "Successful", "Failed", "Inconclusive", "Error"]
RUNNING: Final = "Running"
SUCCESSFUL: Final = "Successful"
FAILED: Final = "Failed"
INCONCLUSIVE: Final = "Inconclusive"
ERROR: Final = "Error"
_WORSE = {FAILED: 3, ERROR: 2, INCONCLUSIVE: 1}


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """The signals of one interval. Keys are `spec.SIGNALS` plus `shadow_requests`; a missing key
    or None means nothing was observed. `error` says the observations could not be gathered."""

    start: float
    end: float
    candidate: dict[str, float | None] = {}
    stable: dict[str, float | None] = {}
    error: str | None = None


class MetricResult(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    phase: Phase = RUNNING
    count: int = 0  # measurements taken (not errors)
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    last_value: float | None = None
    message: str = ""


class AnalysisRun(msgspec.Struct, frozen=True, kw_only=True):
    started_at: float
    taken: int = 0  # intervals measured so far (the next one starts at started_at + taken * interval_s)
    metrics: list[MetricResult] = []
    phase: Phase = RUNNING
    message: str = ""


def signals_from_stats(stats: Stats) -> dict[str, float | None]:
    """A version's window statistics over an interval as the signals a condition reads."""
    return {
        "requests": float(stats.requests),
        "error_rate": stats.error_rate(),
        "p95_latency_ms": stats.p95_ms,
        "ttft_p95_ms": stats.ttft_p95_ms,
        "confidence_mean": stats.confidence_mean,
    }


def measure(metric: Metric, template: AnalysisTemplate, m: Measurement) -> tuple[Phase, float | None, str]:
    """One measurement of one metric: its phase, the candidate's value and why."""
    if m.error is not None:
        return ERROR, None, m.error
    cond = metric.parsed
    signal = cond.signal
    counted = "shadow_requests" if signal in SHADOW_SIGNALS else "requests"
    if signal not in UNCOUNTED_SIGNALS:
        n = m.candidate.get(counted) or 0.0
        if n < template.min_requests:
            early = _early_evidence(cond, template, m) if template.early_failure else None
            if early is not None and early.failed:
                return FAILED, m.candidate.get(signal), f"{signal} {early} (before min_requests)"
            return INCONCLUSIVE, None, f"{int(n)} {counted.replace('_', ' ')} < min_requests {template.min_requests}"
    value = m.candidate.get(signal)
    if value is None:
        return INCONCLUSIVE, None, f"no {signal} observed"
    threshold, why = _threshold(cond, template, m)
    if threshold is None:
        return INCONCLUSIVE, value, why
    verdict: Phase = SUCCESSFUL if cond.holds(value, threshold) else FAILED
    return verdict, value, f"{signal} {value:.6g} {cond.op} {threshold:.6g}"


def _threshold(cond: Condition, template: AnalysisTemplate, m: Measurement) -> tuple[float | None, str]:
    """The condition's threshold for this interval, or None and why (no stable value to compare with)."""
    if not cond.relative:
        return cond.value, ""
    signal = cond.signal
    counted = "shadow_requests" if signal in SHADOW_SIGNALS else "requests"
    if signal not in UNCOUNTED_SIGNALS and (m.stable.get(counted) or 0.0) < template.min_requests:
        return None, f"stable: fewer than {template.min_requests} {counted.replace('_', ' ')}"
    stable_value = m.stable.get(signal)
    if stable_value is None:
        return None, f"stable: no {signal} observed"
    return cond.threshold(stable_value), ""


def _early_evidence(cond: Condition, template: AnalysisTemplate, m: Measurement) -> Evidence | None:
    """For a rate that must stay under its threshold, the sequential test on the candidate's
    answers of the interval (`sequential.py`); None when it does not apply."""
    denominator = RATE_DENOMINATORS.get(cond.signal)
    if denominator is None or cond.op not in ("<", "<="):
        return None
    value, n = m.candidate.get(cond.signal), m.candidate.get(denominator)
    if value is None or not n:
        return None
    threshold, _ = _threshold(cond, template, m)
    return None if threshold is None else rate_evidence(round(value * n), int(n), threshold)


def new_run(template: AnalysisTemplate, started_at: float) -> AnalysisRun:
    return AnalysisRun(started_at=started_at, metrics=[MetricResult(name=m.label) for m in template.metrics])


def due_interval(run: AnalysisRun, template: AnalysisTemplate, now: float) -> tuple[float, float] | None:
    """The next interval to measure, once it has ended; None while it has not or the run is over."""
    if run.phase != RUNNING:
        return None
    start = run.started_at + run.taken * template.interval_s
    end = start + template.interval_s
    return (start, end) if now >= end else None


def record(run: AnalysisRun, template: AnalysisTemplate, m: Measurement) -> AnalysisRun:
    """The run after one more interval's measurement of every metric still running."""
    results: list[MetricResult] = []
    for metric, res in zip(template.metrics, run.metrics, strict=True):
        if res.phase != RUNNING:
            results.append(res)
            continue
        phase, value, message = measure(metric, template, m)
        if phase == ERROR:
            res = msgspec.structs.replace(
                res, error=res.error + 1, consecutive_error=res.consecutive_error + 1, message=message
            )
        else:
            res = msgspec.structs.replace(
                res,
                count=res.count + 1,
                successful=res.successful + (phase == SUCCESSFUL),
                failed=res.failed + (phase == FAILED),
                inconclusive=res.inconclusive + (phase == INCONCLUSIVE),
                consecutive_error=0,
                last_value=value,
                message=message,
            )
        results.append(msgspec.structs.replace(res, phase=metric_phase(res, template)))
    phase, message = run_phase(results)
    return msgspec.structs.replace(run, taken=run.taken + 1, metrics=results, phase=phase, message=message)


def metric_phase(res: MetricResult, template: AnalysisTemplate) -> Phase:
    if res.failed > template.failure_limit:
        return FAILED
    if res.consecutive_error > template.consecutive_error_limit:
        return ERROR
    if res.inconclusive > template.inconclusive_limit:
        return INCONCLUSIVE
    if res.count >= template.count:
        return SUCCESSFUL
    return RUNNING


def run_phase(results: list[MetricResult]) -> tuple[Phase, str]:
    """Worst terminal phase first (the run ends there), else Successful when all are, else Running."""
    worst = max(results, key=lambda r: _WORSE.get(r.phase, 0), default=None)
    if worst is not None and worst.phase in _WORSE:
        return worst.phase, f"{worst.name}: {worst.message}"
    if results and all(r.phase == SUCCESSFUL for r in results):
        return SUCCESSFUL, "every metric passed"
    return RUNNING, ""


def summary(run: AnalysisRun) -> Mapping[str, str]:
    """Per metric, its phase and last message: what `status` prints."""
    return {r.name: f"{r.phase} ({r.successful}/{r.count} ok) {r.message}".rstrip() for r in run.metrics}
