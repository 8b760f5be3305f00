"""Alert notifications to real webhook receivers (an aiohttp server on loopback): the Alertmanager
payload field by field and the plain JSON one, no re-post while firing, resolves, retries, a dead
receiver that blocks nothing, `for_s` and `min_requests` on an injected clock, and no secret in
any log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from interlock import parse_settings
from interlock.app import make_alerts
from interlock.observe.alerting import AlertEngine, AlertGauges, WindowSignals
from interlock.observe.notify import ZERO_TIME, rfc3339
from interlock.observe.window import RequestStats
from tests.support.clock import Clock
from tests.support.receiver import Receiver, closed_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


class Setup:
    """An engine built by make_alerts from a parsed config, over windows on an injected clock."""

    def __init__(self, alerts: dict[str, Any], environ: dict[str, str] | None = None) -> None:
        # The tests call evaluate() themselves; the engine's own loop would wait an hour.
        alerts = {"evaluate_s": 3600, **alerts}
        config = {"models": [{"name": "chat", "deployments": [{"id": "l", "backend": "local"}]}], "alerts": alerts}
        self.settings = parse_settings(config, environ=environ or {})
        self.clock = Clock(1_800_000_000.0)
        self.stats = RequestStats(3600, 5, self.clock)
        self.registry = CollectorRegistry()
        self.gauges = AlertGauges(self.registry)
        engine = make_alerts(self.settings, WindowSignals(self.stats), self.gauges, clock=self.clock)
        assert engine is not None
        self.engine: AlertEngine = engine

    def traffic(self, n: int, errors: int = 0, version: str = "v1", latency: float = 0.2) -> None:
        for i in range(n):
            self.stats.record("chat", version, latency, "upstream" if i < errors else None)

    def notifications(self, webhook: str, result: str) -> float:
        value = self.registry.get_sample_value(
            "interlock_alert_notifications_total", {"webhook": webhook, "result": result}
        )
        return value or 0.0

    async def settle(self) -> None:
        """Let the webhook senders run until their queues are empty and nothing is in flight."""
        for _ in range(50):
            await asyncio.sleep(0.02)


def hook(url: str, kind: str = "json", **kw: Any) -> dict[str, Any]:
    return {
        "url": url,
        "kind": kind,
        "timeout_ms": 2000,
        "max_attempts": 4,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
        **kw,
    }


def errors_rule(actions: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "name": "HighErrorRate", "signal": "error_rate", "op": ">", "threshold": 0.1, "window_s": 60, "for_s": 0,
        "min_requests": 10, "severity": "critical", "labels": {"team": "ml"}, "actions": actions, **kw,
    }  # fmt: skip


async def test_alertmanager_payload_is_posted_once_while_firing_and_again_when_resolved(receiver: Receiver) -> None:
    s = Setup({
        "webhooks": {"am": hook(receiver.url("/am"), "alertmanager")},
        "rules": [errors_rule(["am"])],
        "external_url": "https://gateway.example",
    })  # fmt: skip
    await s.engine.start()
    try:
        s.traffic(20, errors=5)
        fired_at = s.clock.now
        await s.engine.evaluate()
        [firing] = await receiver.wait_delivered("/am", 1)
        for _ in range(3):  # still firing: de-duplicated, not posted again
            s.clock.now += 10
            await s.engine.evaluate()
        await s.settle()
        assert len(receiver.delivered("/am")) == 1

        assert firing["version"] == "4"
        assert firing["status"] == "firing"
        assert firing["receiver"] == "am"
        assert firing["groupKey"] == '{}:{alertname="HighErrorRate"}'
        assert firing["groupLabels"] == {"alertname": "HighErrorRate"}
        assert firing["externalURL"] == "https://gateway.example"
        assert firing["truncatedAlerts"] == 0
        [alert] = firing["alerts"]
        labels = {
            "alertname": "HighErrorRate",
            "severity": "critical",
            "model": "chat",
            "version": "v1",
            "signal": "error_rate",
            "team": "ml",
        }
        assert alert["status"] == "firing"
        assert alert["labels"] == labels == firing["commonLabels"]
        assert alert["annotations"]["summary"] == "error_rate of chat version v1 is 0.25 over 60s (alert when > 0.1)"
        assert alert["annotations"]["value"] == "0.25" and alert["annotations"]["threshold"] == "> 0.1"
        assert alert["annotations"] == firing["commonAnnotations"]
        assert alert["startsAt"] == rfc3339(fired_at) == "2027-01-15T08:00:00.000Z"
        assert alert["endsAt"] == ZERO_TIME
        assert alert["generatorURL"] == "https://gateway.example"
        assert len(alert["fingerprint"]) == 16 and int(alert["fingerprint"], 16) >= 0
        assert receiver.seen[0].headers["Content-Type"] == "application/json"
        assert (
            s.registry.get_sample_value(
                "interlock_alerts_firing", {"alertname": "HighErrorRate", "model": "chat", "version": "v1"}
            )
            == 1
        )

        s.traffic(300)  # the error rate falls to 5 / 320
        s.clock.now += 10
        resolved_at = s.clock.now
        await s.engine.evaluate()
        _, resolved = await receiver.wait_delivered("/am", 2)
        assert resolved["status"] == "resolved" and resolved["receiver"] == "am"
        [r] = resolved["alerts"]
        assert r["status"] == "resolved" and r["labels"] == labels
        assert r["startsAt"] == alert["startsAt"] and r["endsAt"] == rfc3339(resolved_at)
        assert r["fingerprint"] == alert["fingerprint"]
        assert "was last 0.0156" in r["annotations"]["summary"]
        assert (
            s.registry.get_sample_value(
                "interlock_alerts_firing", {"alertname": "HighErrorRate", "model": "chat", "version": "v1"}
            )
            == 0
        )
        assert s.notifications("am", "sent") == 2
    finally:
        await s.engine.close()


async def test_the_engine_evaluates_on_its_own_every_evaluate_s(receiver: Receiver) -> None:
    s = Setup({"evaluate_s": 0.05, "webhooks": {"hook": hook(receiver.url("/hook"))}, "rules": [errors_rule(["hook"])]})
    await s.engine.start()
    try:
        s.traffic(20, errors=20)
        [body] = await receiver.wait_delivered("/hook", 1, timeout=3.0)
        assert body["status"] == "firing"
    finally:
        await s.engine.close()


async def test_the_plain_json_webhook_gets_one_object_per_transition(receiver: Receiver) -> None:
    s = Setup({"webhooks": {"hook": hook(receiver.url("/hook"))}, "rules": [errors_rule(["hook"], for_s=20)]})
    await s.engine.start()
    try:
        s.traffic(20, errors=10, version="v1")
        s.traffic(20, errors=10, version="v2")
        await s.engine.evaluate()  # pending: nothing is posted
        s.clock.now += 20
        await s.engine.evaluate()
        bodies = await receiver.wait_delivered("/hook", 2)
        assert sorted(b["version"] for b in bodies) == ["v1", "v2"]
        b = bodies[0]
        assert set(b) == {
            "alert", "status", "model", "version", "signal", "value", "op", "threshold", "window_s", "severity", "labels",
            "summary", "starts_at", "ends_at", "fingerprint",
        }  # fmt: skip
        assert (b["alert"], b["status"], b["model"], b["signal"], b["value"], b["op"], b["threshold"]) == (
            "HighErrorRate", "firing", "chat", "error_rate", 0.5, ">", 0.1,
        )  # fmt: skip
        assert b["starts_at"] == rfc3339(s.clock.now) and b["ends_at"] is None and b["severity"] == "critical"
        assert b["labels"]["team"] == "ml"
    finally:
        await s.engine.close()


async def test_a_receiver_failing_twice_gets_the_notification_on_the_third_attempt(receiver: Receiver) -> None:
    receiver.fail_first["/flaky"] = (2, 503)
    receiver.fail_first["/refuses"] = (9, 400)
    s = Setup({
        "webhooks": {"flaky": hook(receiver.url("/flaky")), "refuses": hook(receiver.url("/refuses"))},
        "rules": [errors_rule(["flaky", "refuses"])],
    })  # fmt: skip
    await s.engine.start()
    try:
        s.traffic(20, errors=20)
        await s.engine.evaluate()
        [body] = await receiver.wait_delivered("/flaky", 1)
        assert body["status"] == "firing"
        assert receiver.attempts["/flaky"] == 3
        assert [r.status for r in receiver.seen if r.path == "/flaky"] == [503, 503, 200]
        await s.settle()
        assert receiver.attempts["/refuses"] == 1  # a 400 says the payload is wrong: not retried
        assert s.notifications("flaky", "sent") == 1 and s.notifications("refuses", "failed") == 1
    finally:
        await s.engine.close()


async def test_a_dead_receiver_blocks_neither_the_evaluation_nor_the_other_webhooks(receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/dead"
    s = Setup({
        "webhooks": {
            "dead": hook(dead, max_attempts=50, backoff_s=0.5, backoff_max_s=1.0, queue=2),
            "live": hook(receiver.url("/live")),
        },
        "rules": [errors_rule(["dead", "live"])],
    })  # fmt: skip
    await s.engine.start()
    try:
        for version in ("v1", "v2", "v3", "v4", "v5"):
            s.traffic(20, errors=20, version=version)
        started = time.monotonic()
        await s.engine.evaluate()
        assert time.monotonic() - started < 0.5
        assert len(await receiver.wait_delivered("/live", 5, timeout=3.0)) == 5
        # Five notifications for a queue of two, the first one being retried: the oldest went.
        assert s.notifications("dead", "dropped") >= 2
        assert s.engine._notifier.pending("dead") <= 2
    finally:
        started = time.monotonic()
        await s.engine.close()  # drains for at most 2 s, then cancels the retrying sender
        assert time.monotonic() - started < 3.0


async def test_repeat_interval_re_posts_a_firing_alert(receiver: Receiver) -> None:
    s = Setup(
        {
            "webhooks": {"hook": hook(receiver.url("/hook"))},
            "rules": [errors_rule(["hook"], window_s=600)],
            "repeat_interval_s": 60,
        }
    )
    await s.engine.start()
    try:
        s.traffic(20, errors=20)
        await s.engine.evaluate()
        await receiver.wait_delivered("/hook", 1)
        s.clock.now += 30
        await s.engine.evaluate()
        await s.settle()
        assert len(receiver.delivered("/hook")) == 1
        s.clock.now += 31
        await s.engine.evaluate()
        first, again = await receiver.wait_delivered("/hook", 2)
        assert again["status"] == "firing" and again["fingerprint"] == first["fingerprint"]
        assert again["starts_at"] == first["starts_at"]
    finally:
        await s.engine.close()


async def test_for_s_and_min_requests_decide_when_anything_is_posted(receiver: Receiver) -> None:
    s = Setup(
        {
            "webhooks": {"hook": hook(receiver.url("/hook"))},
            "rules": [errors_rule(["hook"], for_s=30, min_requests=50, window_s=600)],
        }
    )
    await s.engine.start()
    try:
        s.traffic(40, errors=40)  # every request failed, but 40 are too few to judge
        await s.engine.evaluate()
        s.clock.now += 40
        await s.engine.evaluate()
        assert s.engine.alerts() == []
        s.traffic(20, errors=20)  # 60 in the window now
        await s.engine.evaluate()
        pending_since = s.clock.now
        s.clock.now = pending_since + 29
        await s.engine.evaluate()
        await s.settle()
        assert receiver.seen == [] and s.engine.breaches("chat", "v1") == []
        s.clock.now = pending_since + 30
        await s.engine.evaluate()
        [body] = await receiver.wait_delivered("/hook", 1)
        assert body["starts_at"] == rfc3339(pending_since + 30)
        [breach] = s.engine.breaches("chat", "v1")
        assert breach.rule == "HighErrorRate" and breach.since == pending_since + 30 and breach.value == 1.0
    finally:
        await s.engine.close()


async def test_no_webhook_or_retrain_secret_reaches_a_log_line(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    url_token, header_token, retrain_token = "urltok-7d1f0a", "hdrtok-99b2c4", "amltok-5e6f7a"
    receiver.fail_first["/flaky"] = (2, 500)
    receiver.fail_first["/refuses"] = (9, 401)
    receiver.fail_first["/retrain"] = (9, 503)
    dead = f"http://127.0.0.1:{closed_port()}/dead?token={url_token}"
    s = Setup(
        {
            "webhooks": {
                "flaky": hook(receiver.url(f"/flaky?token={url_token}"), headers={"Authorization": "env:HOOK_AUTH"}),
                "refuses": hook(receiver.url(f"/refuses?token={url_token}"), "alertmanager"),
                "dead": hook(dead, max_attempts=2),
            },
            "retrain": {
                "url": receiver.url(f"/retrain?code={url_token}"),
                "token": "env:AML",
                "max_attempts": 2,
                "backoff_s": 0.01,
            },
            "rules": [errors_rule(["flaky", "refuses", "dead", "retrain"])],
        },
        environ={"HOOK_AUTH": f"Bearer {header_token}", "AML": retrain_token},
    )
    caplog.set_level(logging.DEBUG)
    await s.engine.start()
    try:
        s.traffic(20, errors=20)
        await s.engine.evaluate()
        await receiver.wait_delivered("/flaky", 1)
        await s.settle()
    finally:
        await s.engine.close()
    # The secrets did go where they belong...
    flaky = [r for r in receiver.seen if r.path == "/flaky"]
    assert flaky[0].query["token"] == url_token and flaky[0].headers["Authorization"] == f"Bearer {header_token}"
    retrain = [r for r in receiver.seen if r.path == "/retrain"]
    assert len(retrain) == 2 and retrain[0].headers["Authorization"] == f"Bearer {retrain_token}"
    # ...and nowhere in the logs, which did say what failed, by name.
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = [formatter.format(r) for r in caplog.records]
    text = "\n".join(lines)
    assert (
        "webhook flaky" in text and "webhook refuses" in text and "webhook dead" in text and "retrain endpoint" in text
    )
    assert "ClientConnectorError" in text and "HTTP 401" in text and "HTTP 503" in text
    for secret in (url_token, header_token, retrain_token, str(receiver.port)):
        assert secret not in text, secret
