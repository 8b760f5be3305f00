"""The pure alert evaluator: states and transitions like Prometheus (`for_s`), `min_requests`,
filters by model and version, breaches for the rollout controller; and the engine's subscribers
(observe/alerting.py), tested here because its log lines name the file an error came from, this
one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from interlock.config import AlertRule, AlertsSettings
from interlock.observe.alerting import AlertEngine
from interlock.observe.alerts import AlertEvaluator, Sample, State, Transition, fingerprint
from interlock.observe.notify import HttpPoster, Notifier
from tests.support.clock import Clock


class Signals:
    """A provider whose samples the test sets: {(signal, model, version): Sample}."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str, str], Sample] = {}
        self.asked: list[tuple[str, str, str, float, float]] = []

    def set(
        self, signal: str, value: float | None, requests: int = 100, model: str = "chat", version: str = "v1"
    ) -> None:
        self.samples[(signal, model, version)] = Sample(value, requests)

    async def refresh(self, now: float) -> None:
        pass

    def series(self, signal: str) -> Iterable[tuple[str, str]]:
        return [(m, v) for (s, m, v) in self.samples if s == signal]

    def sample(self, signal: str, model: str, version: str, window_s: float, now: float) -> Sample | None:
        self.asked.append((signal, model, version, window_s, now))
        return self.samples.get((signal, model, version))

    def drift_report(self, model: str, version: str) -> Mapping[str, Any] | None:
        return None


def rule(**kw: Any) -> AlertRule:
    base: dict[str, Any] = {
        "name": "errors",
        "signal": "error_rate",
        "op": ">",
        "threshold": 0.05,
        "for_s": 60,
        "min_requests": 20,
    }
    return AlertRule(**{**base, **kw})


def moves(ts: list[Transition]) -> list[tuple[str, str, str, str]]:
    return [(t.alert.model, t.alert.version, t.before.value, t.after.value) for t in ts]


def test_for_s_holds_an_alert_pending_before_it_fires_then_it_resolves() -> None:
    signals, ev = Signals(), AlertEvaluator([rule()])
    signals.set("error_rate", 0.2)
    assert moves(ev.evaluate(signals, 1000)) == [("chat", "v1", "inactive", "pending")]
    assert ev.evaluate(signals, 1030) == []
    assert ev.evaluate(signals, 1059.9) == []
    assert ev.breaches("chat", "v1") == []
    fired = ev.evaluate(signals, 1060)
    assert moves(fired) == [("chat", "v1", "pending", "firing")]
    a = fired[0].alert
    assert (a.active_since, a.fired_at, a.value) == (1000, 1060, 0.2)
    assert ev.evaluate(signals, 1070) == []  # still firing: no new transition
    [breach] = ev.breaches("chat", "v1")
    assert (breach.rule, breach.signal, breach.value, breach.threshold, breach.op, breach.since) == (
        "errors", "error_rate", 0.2, 0.05, ">", 1060,
    )  # fmt: skip
    signals.set("error_rate", 0.01)
    resolved = ev.evaluate(signals, 1080)
    assert moves(resolved) == [("chat", "v1", "firing", "resolved")]
    assert resolved[0].alert.resolved_at == 1080 and resolved[0].alert.value == 0.01
    assert ev.breaches("chat", "v1") == [] and ev.alerts() == []
    signals.set("error_rate", 0.3)  # a new episode starts from pending again
    assert moves(ev.evaluate(signals, 1090)) == [("chat", "v1", "inactive", "pending")]


def test_a_pending_alert_whose_condition_clears_goes_back_to_inactive() -> None:
    signals, ev = Signals(), AlertEvaluator([rule()])
    signals.set("error_rate", 0.2)
    ev.evaluate(signals, 1000)
    signals.set("error_rate", 0.0)
    assert moves(ev.evaluate(signals, 1030)) == [("chat", "v1", "pending", "inactive")]
    signals.set("error_rate", 0.2)
    ev.evaluate(signals, 1040)
    assert ev.evaluate(signals, 1090) == []  # for_s counts from 1040 again
    assert moves(ev.evaluate(signals, 1100)) == [("chat", "v1", "pending", "firing")]


def test_for_s_zero_fires_at_once() -> None:
    signals, ev = Signals(), AlertEvaluator([rule(for_s=0)])
    signals.set("error_rate", 0.2)
    assert moves(ev.evaluate(signals, 1000)) == [("chat", "v1", "inactive", "firing")]


def test_too_little_traffic_is_not_a_breach() -> None:
    signals, ev = Signals(), AlertEvaluator([rule(for_s=0, min_requests=50)])
    signals.set("error_rate", 1.0, requests=49)
    assert ev.evaluate(signals, 1000) == [] and ev.alerts() == []
    signals.set("error_rate", 1.0, requests=50)
    assert moves(ev.evaluate(signals, 1010)) == [("chat", "v1", "inactive", "firing")]
    signals.set("error_rate", 1.0, requests=3)  # traffic dried up: resolved, not held
    assert moves(ev.evaluate(signals, 1020)) == [("chat", "v1", "firing", "resolved")]


def test_min_requests_does_not_gate_the_request_count_itself() -> None:
    signals, ev = Signals(), AlertEvaluator([rule(name="quiet", signal="requests", op="<", threshold=10, for_s=0)])
    signals.set("requests", 2.0, requests=2)
    assert moves(ev.evaluate(signals, 1000)) == [("chat", "v1", "inactive", "firing")]


@pytest.mark.parametrize(
    ("op", "value", "fires"), [(">", 5, False), (">=", 5, True), ("<", 5, False), ("<=", 5, True), ("<", 4, True)]
)
def test_operators(op: str, value: float, fires: bool) -> None:
    signals, ev = Signals(), AlertEvaluator([rule(op=op, threshold=5, for_s=0)])
    signals.set("error_rate", value)
    assert bool(ev.evaluate(signals, 1000)) is fires


def test_no_value_nan_or_a_vanished_series_is_a_false_condition() -> None:
    signals, ev = Signals(), AlertEvaluator([rule(for_s=0)])
    signals.set("error_rate", None)
    signals.set("error_rate", math.nan, version="v2")
    assert ev.evaluate(signals, 1000) == []
    signals.set("error_rate", 0.5, version="v3")
    assert moves(ev.evaluate(signals, 1010)) == [("chat", "v3", "inactive", "firing")]
    del signals.samples[("error_rate", "chat", "v3")]  # no longer listed: resolved
    assert moves(ev.evaluate(signals, 1020)) == [("chat", "v3", "firing", "resolved")]


def test_rules_filter_by_model_and_version_and_each_series_has_its_own_state() -> None:
    rules = [
        rule(name="any", for_s=0),
        rule(name="candidate", for_s=0, model="chat", version="v2"),
        rule(name="slow", signal="p95_latency_ms", threshold=800, for_s=0, model="chat", window_s=120),
    ]
    signals, ev = Signals(), AlertEvaluator(rules)
    signals.set("error_rate", 0.2, version="v1")
    signals.set("error_rate", 0.2, version="v2")
    signals.set("error_rate", 0.2, model="embed", version="v2")
    signals.set("p95_latency_ms", 900, model="embed")
    signals.set("p95_latency_ms", 1200, version="v2")
    got = sorted((t.alert.rule.name, t.alert.model, t.alert.version) for t in ev.evaluate(signals, 1000))
    assert got == [
        ("any", "chat", "v1"), ("any", "chat", "v2"), ("any", "embed", "v2"), ("candidate", "chat", "v2"),
        ("slow", "chat", "v2"),
    ]  # fmt: skip
    assert sorted(b.rule for b in ev.breaches("chat", "v2")) == ["any", "candidate", "slow"]
    assert [b.rule for b in ev.breaches("chat", "v1")] == ["any"]
    assert ("p95_latency_ms", "chat", "v2", 120, 1000) in signals.asked  # the rule's window reaches the provider


def test_labels_and_fingerprints() -> None:
    signals, ev = Signals(), AlertEvaluator([rule(for_s=0, severity="page", labels={"team": "ml", "model": "ignored"})])
    signals.set("error_rate", 0.2)
    [t] = ev.evaluate(signals, 1000)
    labels = t.alert.labels()
    assert labels == {
        "alertname": "errors",
        "severity": "page",
        "model": "chat",
        "version": "v1",
        "signal": "error_rate",
        "team": "ml",
    }
    assert fingerprint({}) == "cbf29ce484222325"  # Prometheus's signature of the empty label set
    assert fingerprint(labels) == fingerprint(dict(reversed(list(labels.items()))))
    assert fingerprint(labels) != fingerprint({**labels, "version": "v2"})
    assert t.alert.summary() == "error_rate of chat version v1 is 0.2 over 300s (alert when > 0.05)"


# -- the engine without HTTP: subscribers and a provider that fails -----------------------------------
class Broken(Signals):
    async def refresh(self, now: float) -> None:
        raise RuntimeError("the lead's provider has a bug")


async def test_subscribers_get_every_transition_and_a_failing_refresh_does_not_stop_evaluation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(1000.0)
    signals = Broken()
    settings = AlertsSettings(rules=[rule(for_s=10)])
    engine = AlertEngine(settings, signals, Notifier({}, HttpPoster()), HttpPoster(), clock=clock)
    queue = engine.subscribe(maxsize=2)
    seen: list[str] = []
    remove = engine.on_transition(lambda t: seen.append(t.after.value))
    engine.on_transition(lambda t: 1 / 0)  # a broken subscriber is logged and skipped
    signals.set("error_rate", 0.5)
    await engine.evaluate()
    clock.now = 1010
    await engine.evaluate()
    assert [b.rule for b in engine.breaches("chat", "v1")] == ["errors"]
    signals.set("error_rate", 0.0)
    clock.now = 1020
    await engine.evaluate()
    assert seen == ["pending", "firing", "resolved"]
    # The queue holds two: the oldest transition was dropped for the newest.
    assert [queue.get_nowait().after for _ in range(queue.qsize())] == [State.FIRING, State.RESOLVED]
    remove()
    engine.unsubscribe(queue)
    signals.set("error_rate", 0.5)
    clock.now = 1030
    await engine.evaluate()
    assert seen == ["pending", "firing", "resolved"] and queue.empty()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("alert subscriber failed (ZeroDivisionError at test_alerts.py:") for m in messages)
    assert any(m.startswith("alert signals not refreshed (RuntimeError at test_alerts.py:") for m in messages)
    assert not any("bug" in m for m in messages)  # an exception's message is never logged
