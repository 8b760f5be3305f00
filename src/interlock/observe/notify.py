"""Alert notifications: firing and resolved alerts posted to webhooks, with retries, off the path.

Two payloads:

- `alertmanager`: the body Alertmanager posts to a webhook receiver (`version: "4"`, `status`,
  `receiver`, `groupKey`, `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`,
  `truncatedAlerts`, `alerts[]` with `status`, `labels`, `annotations`, `startsAt`, `endsAt`,
  `generatorURL`, `fingerprint`), one alert per post, grouped by alert name, so a tool that takes
  Alertmanager's webhooks (Grafana OnCall, prometheus-msteams, a custom receiver) takes ours. It
  is not Alertmanager's own `/api/v2/alerts` input, which is what Prometheus posts;
- `json`: one flat object per transition (`alert`, `status`, `model`, `version`, `signal`,
  `value`, `op`, `threshold`, `severity`, `labels`, `summary`, `starts_at`, `ends_at`,
  `fingerprint`).

Each webhook has its own bounded queue and one sender task: `Notifier.notify` only enqueues (when
the queue is full the oldest notification is dropped, logged and counted), so a dead or slow
receiver never blocks the evaluation loop or the request path, and one receiver's retries never
delay another's. A post that fails (connection error, timeout, 5xx, 408, 429) is retried with
exponential backoff up to `max_attempts`; any other 4xx is not retried. Webhook URLs and headers
may hold tokens: log lines name the webhook, never its URL, and an exception is logged by its type
alone (aiohttp's messages can include the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from ..config import WebhookSettings
from ..lifecycle import Background
from ..providers.aiohttp_transport import proxy_configured
from .alerts import Alert, State, fingerprint

log = logging.getLogger("interlock.alerts")

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for an alert still firing
_RETRY_STATUSES = frozenset({408, 429})


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_annotations(alert: Alert) -> dict[str, str]:
    r = alert.rule
    return {
        "summary": alert.summary(),
        "value": "" if alert.value is None else f"{alert.value:.6g}",
        "threshold": f"{r.op} {r.threshold:g}",
    }


def alertmanager_alert(alert: Alert, external_url: str = "") -> dict[str, Any]:
    labels = alert.labels()
    resolved = alert.state is State.RESOLVED
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.fired_at if alert.fired_at is not None else alert.active_since or 0.0),
        "endsAt": rfc3339(alert.resolved_at) if resolved and alert.resolved_at is not None else ZERO_TIME,
        "generatorURL": external_url,
        "fingerprint": fingerprint(labels),
    }


def alertmanager_payload(alert: Alert, receiver: str, external_url: str = "") -> dict[str, Any]:
    item = alertmanager_alert(alert, external_url)
    group = {"alertname": alert.rule.name}
    return {
        "version": "4",
        "groupKey": "{}:{alertname=" + orjson.dumps(alert.rule.name).decode() + "}",  # route {} : group labels
        "truncatedAlerts": 0,
        "status": item["status"],
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": item["labels"],
        "commonAnnotations": item["annotations"],
        "externalURL": external_url,
        "alerts": [item],
    }


def json_payload(alert: Alert) -> dict[str, Any]:
    r = alert.rule
    labels = alert.labels()
    resolved = alert.state is State.RESOLVED
    return {
        "alert": r.name,
        "status": "resolved" if resolved else "firing",
        "model": alert.model,
        "version": alert.version,
        "signal": r.signal,
        "value": alert.value,
        "op": r.op,
        "threshold": r.threshold,
        "window_s": r.window_s,
        "severity": r.severity,
        "labels": labels,
        "summary": alert.summary(),
        "starts_at": rfc3339(alert.fired_at) if alert.fired_at is not None else None,
        "ends_at": rfc3339(alert.resolved_at) if resolved and alert.resolved_at is not None else None,
        "fingerprint": fingerprint(labels),
    }


def _ignore(webhook: str, result: str) -> None:
    pass


class HttpPoster:
    """One aiohttp session for the notifier and the retraining action, and the retry loop."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:  # made inside the running loop, which aiohttp binds it to
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300), trust_env=proxy_configured()
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        name: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout_s: float,
        max_attempts: int,
        backoff_s: float,
        backoff_max_s: float,
    ) -> bool:
        """POST `body` until a 2xx answers or `max_attempts` are spent; True when delivered.
        `name` is what log lines say instead of the URL."""
        await self.start()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        all_headers = {"Content-Type": "application/json", **headers}
        delay = backoff_s
        for attempt in range(1, max_attempts + 1):
            try:
                async with self._session.post(url, data=body, headers=all_headers, timeout=timeout) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = type(exc).__name__  # never str(exc): it can hold the URL and its query
            else:
                if 200 <= status < 300:
                    return True
                why = f"HTTP {status}"
                if 400 <= status < 500 and status not in _RETRY_STATUSES:
                    log.warning("%s refused the post (%s); not retried", name, why)
                    return False
            if attempt < max_attempts:
                log.info("%s: attempt %d of %d failed (%s); retrying in %.3gs", name, attempt, max_attempts, why, delay)
                await self._sleep(delay)
                delay = min(delay * 2, backoff_max_s)
            else:
                log.warning("%s: giving up after %d attempts (%s)", name, max_attempts, why)
        return False


class Webhook:
    """One receiver: a bounded queue and the task that empties it."""

    def __init__(self, name: str, settings: WebhookSettings, poster: HttpPoster, on_result: Callable[[str], None]):
        self.name = name
        self.settings = settings
        self._poster = poster
        self._on_result = on_result
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(settings.queue)
        self._sender = Background(f"webhook {name}", self._run)

    def put(self, body: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # the oldest goes: the newest says where things stand now
            self._queue.task_done()
            log.warning("webhook %s: queue full, dropped the oldest notification", self.name)
            self._on_result("dropped")
        self._queue.put_nowait(body)

    def start(self) -> None:
        self._sender.start()

    async def _run(self) -> None:
        s = self.settings
        while True:
            body = await self._queue.get()
            try:
                ok = await self._poster.post(
                    f"webhook {self.name}", s.url, body, s.headers, s.timeout_ms / 1000,
                    s.max_attempts, s.backoff_s, s.backoff_max_s,
                )  # fmt: skip
                self._on_result("sent" if ok else "failed")
            except Exception as exc:  # the sender must outlive any one notification
                log.error("webhook %s: notification lost (%s)", self.name, type(exc).__name__)
                self._on_result("failed")
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        await self._sender.stop()

    @property
    def pending(self) -> int:
        return self._queue.qsize()


class Notifier:
    """Formats an alert for each named webhook and hands it to that webhook's queue."""

    def __init__(
        self,
        webhooks: Mapping[str, WebhookSettings],
        poster: HttpPoster,
        external_url: str = "",
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        report = on_result or _ignore
        self._external_url = external_url
        self._hooks = {name: Webhook(name, s, poster, functools.partial(report, name)) for name, s in webhooks.items()}

    async def start(self) -> None:
        for hook in self._hooks.values():
            hook.start()

    def notify(self, webhook: str, alert: Alert) -> None:
        """Enqueue one firing or resolved alert for one webhook; never waits."""
        hook = self._hooks[webhook]
        if hook.settings.kind == "alertmanager":
            payload = alertmanager_payload(alert, webhook, self._external_url)
        else:
            payload = json_payload(alert)
        hook.put(orjson.dumps(payload))

    def pending(self, webhook: str) -> int:
        return self._hooks[webhook].pending

    async def close(self, drain_s: float = 2.0) -> None:
        """Give queued notifications `drain_s` seconds to go out (a resolve at shutdown, say)."""
        hooks = list(self._hooks.values())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(h.drain() for h in hooks)), drain_s)
        await asyncio.gather(*(h.stop() for h in hooks))
