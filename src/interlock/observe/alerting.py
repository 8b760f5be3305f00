"""The alert runtime: evaluate the rules every `evaluate_s`, notify, trigger retraining, and tell
the rollout controller which versions breach which rules.

Wiring, in the composition root (app.py `make_alert_engine`; one `RequestStats` per worker
process, recorded into once per request by observe/record.py's `WindowRecorder`):

    stats = RequestStats(alerts.retention_s, alerts.bucket_s)
    signals = WindowSignals(stats, lambda: monitor.reports, redis, alerts.prefix, ttl_s=3 * alerts.evaluate_s)
    engine = make_alerts(settings, signals, AlertGauges(metrics.registry), redis)  # None without `alerts`
    ... startup: await engine.start()     shutdown: await engine.close() (then close `redis`)

(`monitor.reports` is the drift monitor's latest `DriftReport` per (group, version), the group
as a whole under the version "all".)

The interface the rollout controller uses:

- `engine.breaches(model, version) -> list[Breach]`: the rules firing for that series now, each
  with rule name, signal, value, threshold, op, `since` (when it fired) and severity;
- `engine.subscribe(maxsize) -> asyncio.Queue[Transition]` (a slow subscriber loses its oldest
  transitions, it never slows evaluation; `unsubscribe(queue)`), or
  `engine.on_transition(callback)`, called synchronously on the loop for every transition
  (pending, firing, resolved, back to inactive); it returns a function that removes it;
- `signals.view`, the merged `RequestStats` of every replica as of the last evaluation, and
  `RequestStats.stats(model, version, start, end)` for any interval it still holds.

Every replica evaluates (so every replica can answer `breaches`); with Redis only the holder of a
lease (`{prefix}notifier`, renewed each evaluation, `3 * evaluate_s` long) posts notifications
and triggers retraining, so N replicas do not post N times. A replica that takes the lease over
posts the alerts firing at that moment again (the previous holder may have died before posting
them; Alertmanager de-duplicates by fingerprint). If Redis fails, every replica notifies:
duplicates rather than silence.

Metrics (`AlertMetrics`; `AlertGauges` implements it on the gateway's registry):
`interlock_alerts_firing{alertname,model,version}` (1 firing, 0 not; `livemax` across workers)
and `interlock_alert_notifications_total{webhook,result}` (sent, failed, dropped). The drift
share per (group, version) is `observe.metrics.Metrics.drift_share` (`interlock_drift_share`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..config import RETRAIN_ACTION, AlertsSettings
from ..lifecycle import Background
from .alerts import ALL_VERSIONS, Alert, AlertEvaluator, Breach, Sample, SignalProvider, State, Transition
from .notify import HttpPoster, Notifier
from .retrain import RetrainTrigger
from .window import RequestStats, Stats, merged, publish

log = logging.getLogger("interlock.alerts")


# -- the signal provider over the rolling windows and the drift reports ----------------------------
class DriftLike(Protocol):
    """What the provider reads from a drift report (`observe.drift.DriftReport` is one)."""

    @property
    def drifted_share(self) -> float: ...
    @property
    def n_live(self) -> int: ...
    @property
    def drifted_features(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...


class WindowSignals:
    """A `SignalProvider` over this process's `RequestStats` and the latest drift reports.

    With Redis, `refresh` publishes this process's windows and reads the merged view of every
    replica; when Redis fails it evaluates this process's own windows (and logs it once per
    failure streak). `drift` returns the latest report per (model group, version); group-wide
    reports go under `alerts.ALL_VERSIONS`.
    """

    def __init__(
        self,
        stats: RequestStats,
        drift: Callable[[], Mapping[tuple[str, str], DriftLike]] | None = None,
        redis: Redis | None = None,
        prefix: str = "interlock:alerts:",
        ttl_s: float = 30.0,
    ) -> None:
        self._stats = stats
        self._drift_source = drift
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s
        self.view = stats
        self._drift: dict[tuple[str, str], DriftLike] = {}
        self._memo: dict[tuple[str, str, float], Stats] = {}
        self._redis_failing = False

    async def refresh(self, now: float) -> None:
        self._memo.clear()
        self._drift = dict(self._drift_source()) if self._drift_source is not None else {}
        if self._redis is None:
            self.view = self._stats
            return
        try:
            await publish(self._stats, self._redis, self._prefix, self._ttl_s)
            self.view = await merged(self._redis, self._prefix, self._stats, self._ttl_s)
            self._redis_failing = False
        except RedisError as exc:
            if not self._redis_failing:
                log.warning("alert windows: Redis failed (%s); evaluating this process's own", type(exc).__name__)
            self._redis_failing = True
            self.view = self._stats

    def series(self, signal: str) -> Iterable[tuple[str, str]]:
        if signal.startswith("drift"):
            return list(self._drift)
        return self.view.series()

    def sample(self, signal: str, model: str, version: str, window_s: float, now: float) -> Sample | None:
        if signal.startswith("drift"):
            report = self._drift.get((model, version))
            if report is None:
                return None
            if signal == "drift_share":
                return Sample(report.drifted_share, report.n_live)
            feature = signal.partition(":")[2]
            return Sample(1.0 if feature in report.drifted_features else 0.0, report.n_live)
        key = (model, version, window_s)
        stats = self._memo.get(key)
        if stats is None:
            stats = self._memo[key] = self.view.last(model, version, window_s, now)
        return Sample(_value(signal, stats), stats.requests)

    def drift_report(self, model: str, version: str) -> Mapping[str, Any] | None:
        report = self._drift.get((model, version)) or self._drift.get((model, ALL_VERSIONS))
        return report.to_dict() if report is not None else None


def _value(signal: str, stats: Stats) -> float | None:
    if signal == "requests":
        return float(stats.requests)
    if signal == "error_rate":
        return stats.error_rate()
    if signal.startswith("error_rate:"):
        return stats.error_rate(signal.partition(":")[2])
    if signal == "p95_latency_ms":
        return stats.p95_ms
    if signal == "p99_latency_ms":
        return stats.p99_ms
    if signal == "ttft_p95_ms":
        return stats.ttft_p95_ms
    if signal == "confidence_mean":
        return stats.confidence_mean
    return None  # unreachable: config validates signal names


# -- metrics --------------------------------------------------------------------------------------
class AlertMetrics(Protocol):
    def alert_firing(self, alertname: str, model: str, version: str, firing: bool) -> None: ...
    def alert_notification(self, webhook: str, result: str) -> None: ...


class AlertGauges:
    """The alert metrics on a registry (the lead may move them into `observe.metrics.Metrics`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.firing = Gauge(
            "interlock_alerts_firing", "Alert rules firing (1) or not (0) per model group and version",
            ["alertname", "model", "version"], multiprocess_mode="livemax", registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "interlock_alert_notifications", "Alert notifications by webhook and result (sent, failed, dropped)",
            ["webhook", "result"], registry=registry,
        )  # fmt: skip

    def alert_firing(self, alertname: str, model: str, version: str, firing: bool) -> None:
        self.firing.labels(alertname, model, version).set(1 if firing else 0)

    def alert_notification(self, webhook: str, result: str) -> None:
        self.notifications.labels(webhook, result).inc()


# -- the notifying replica's lease ---------------------------------------------------------------
_HOLD = """
local v = redis.call('get', KEYS[1])
if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_LET_GO = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, key: str, owner: str, ttl_s: float) -> None:
        self._redis = redis
        self._key = key
        self._owner = owner
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._hold = redis.register_script(_HOLD)
        self._let_go = redis.register_script(_LET_GO)

    async def hold(self) -> bool:
        """Take or renew the lease; True when this replica holds it (or Redis failed)."""
        try:
            return bool(await self._hold(keys=[self._key], args=[self._owner, self._ttl_ms]))
        except RedisError as exc:
            log.warning("alert notifier lease: Redis failed (%s); notifying from this replica", type(exc).__name__)
            return True

    async def release(self) -> None:
        with contextlib.suppress(RedisError):
            await self._let_go(keys=[self._key], args=[self._owner])


def where(exc: BaseException) -> str:
    """The file and line an exception came from: enough to find a bug, without its message
    (which may quote a URL and its token) or the traceback's locals."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}" if tb is not None else "?"


# -- the engine -----------------------------------------------------------------------------------
class AlertEngine:
    def __init__(
        self,
        settings: AlertsSettings,
        provider: SignalProvider,
        notifier: Notifier,
        poster: HttpPoster,
        retrain: RetrainTrigger | None = None,
        *,
        lease: Lease | None = None,
        metrics: AlertMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._provider = provider
        self._notifier = notifier
        self._poster = poster
        self._retrain = retrain
        self._lease = lease
        self._metrics = metrics
        self._clock = clock
        self._evaluator = AlertEvaluator(settings.rules)
        self._queues: list[asyncio.Queue[Transition]] = []
        self._callbacks: list[Callable[[Transition], None]] = []
        self._last_sent: dict[tuple[str, str, str], float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._evaluating = Background("alert evaluation", self._run)
        self._notifying = False  # whether this replica held the lease at the last evaluation

    # -- what the rollout controller reads --------------------------------------------------------
    def breaches(self, model: str, version: str) -> list[Breach]:
        return self._evaluator.breaches(model, version)

    def post(self, alert: Alert) -> None:
        """Notify every webhook of an alert raised outside the rules (a rollout's automatic abort)."""
        for name in self._settings.webhooks:
            self._notifier.notify(name, alert)

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, for the admin API."""
        return self._evaluator.alerts()

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue[Transition]:
        queue: asyncio.Queue[Transition] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Transition]) -> None:
        with contextlib.suppress(ValueError):
            self._queues.remove(queue)

    def on_transition(self, callback: Callable[[Transition], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    # -- running ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._poster.start()
        await self._notifier.start()
        self._evaluating.start()

    async def close(self) -> None:
        await self._evaluating.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._notifier.close()
        await self._poster.close()
        if self._lease is not None:
            await self._lease.release()

    async def _run(self) -> None:
        while True:
            # The first evaluation waits one interval: at start-up the windows are empty anyway.
            await asyncio.sleep(self._settings.evaluate_s)
            try:
                await self.evaluate()
            except Exception as exc:  # the loop outlives a bad evaluation (a provider's bug, say)
                log.error("alert evaluation failed (%s at %s)", type(exc).__name__, where(exc))

    async def evaluate(self) -> list[Transition]:
        """One evaluation: refresh the signals, move the alerts, act on the moves."""
        now = self._clock()
        try:
            await self._provider.refresh(now)
        except Exception as exc:  # a provider that cannot refresh still has what it held
            why = type(exc).__name__
            log.warning("alert signals not refreshed (%s at %s); evaluating what is held", why, where(exc))
        transitions = self._evaluator.evaluate(self._provider, now)
        notify = await self._lease.hold() if self._lease is not None else True
        takeover, self._notifying = notify and not self._notifying, notify
        for t in transitions:
            self._publish(t)
            if self._metrics is not None and t.after in (State.FIRING, State.RESOLVED):
                a = t.alert
                self._metrics.alert_firing(a.rule.name, a.model, a.version, t.after is State.FIRING)
            if t.after is State.FIRING:
                self._last_sent[t.alert.key] = now
            elif t.after is State.RESOLVED:
                self._last_sent.pop(t.alert.key, None)
            if notify and t.after in (State.FIRING, State.RESOLVED):
                self._act(t.alert, retrain=t.after is State.FIRING)
        if takeover:
            # This replica has just taken the lease: what fired while another held it may never
            # have been posted (that holder died, say). Post it again: duplicates, not silence.
            fresh = {t.alert.key for t in transitions}
            for alert in self._evaluator.firing():
                if alert.key not in fresh:
                    self._last_sent[alert.key] = now
                    self._act(alert, retrain=False)
        repeat = self._settings.repeat_interval_s
        if repeat is not None:
            for alert in self._evaluator.firing():
                if now - self._last_sent.get(alert.key, now) >= repeat:
                    self._last_sent[alert.key] = now
                    if notify:
                        self._act(alert, retrain=False)
        return transitions

    def _publish(self, t: Transition) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # a slow subscriber loses its oldest transition
            queue.put_nowait(t)
        for callback in list(self._callbacks):
            try:
                callback(t)
            except Exception as exc:  # one subscriber's bug must not stop the others or the loop
                log.error("alert subscriber failed (%s at %s)", type(exc).__name__, where(exc))

    def _act(self, alert: Alert, retrain: bool) -> None:
        for action in alert.rule.actions:
            if action == RETRAIN_ACTION:
                if retrain and self._retrain is not None:
                    self._spawn(self._trigger_retrain(self._retrain, alert))
            else:
                self._notifier.notify(action, alert)

    async def _trigger_retrain(self, retrain: RetrainTrigger, alert: Alert) -> None:
        r = alert.rule
        payload = {
            "model": alert.model,
            "version": alert.version,
            "alert": r.name,
            "signal": r.signal,
            "value": alert.value,
            "op": r.op,
            "threshold": r.threshold,
            "fired_at": alert.fired_at,
            "drift_report": self._provider.drift_report(alert.model, alert.version),
        }
        try:
            await retrain.trigger(alert.model, payload)
        except Exception as exc:  # a background action: log it, never let it escape
            log.error("retraining trigger for %s failed (%s at %s)", alert.model, type(exc).__name__, where(exc))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
