"""The recorders: what the audit trail and the request log keep of a finished request."""

from __future__ import annotations

import random
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from interlock.observe.metrics import Metrics
from interlock.observe.record import Finished, MetricsRecorder, RequestRecords, audit_event
from interlock.pipeline.context import Endpoint, RequestContext, Retrieval, SemanticMatch
from interlock.security.dlp import DlpStage, Policy
from interlock.security.pii.detector import Entity, PatternDetector
from interlock.security.roles import OPEN
from tests.support.context import context, reaches_the_rest

CLEAN = "Summarise the quarterly report for the board."
FOUND = "Write to jane.doe@example.com about the report."


def finished(ctx: RequestContext | None, status: int = 200) -> Finished:
    now = time.perf_counter()
    model = ctx.request.model if ctx is not None else "_unknown"
    return Finished("r", OPEN, Endpoint.CHAT, model, ctx, status, "served", None, now, now)


async def screened(text: str, policy: Policy, detector: PatternDetector | None = None) -> RequestContext:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    ctx = context(body, raw_body=orjson.dumps(body))
    stage = DlpStage(detector or PatternDetector(memo=0), {"default": policy}, {}, None, Metrics(CollectorRegistry()))
    assert await reaches_the_rest(stage, ctx)
    return ctx


def logged(records: RequestRecords, done: Finished) -> list[dict[str, object]]:
    with capture_logs() as lines:
        records.record(done)
    return lines


async def test_the_redacted_log_writes_text_only_where_the_policy_found_something() -> None:
    masking = Policy("default", actions={"EMAIL": "mask"})
    records = RequestRecords(None, "redacted")
    [found] = logged(records, finished(await screened(FOUND, masking)))
    assert found["text"] == ["Write to ****.com about the report."]
    [clean] = logged(records, finished(await screened(CLEAN, masking)))
    assert "text" not in clean and clean["data_class"] == "internal"  # metadata only: nothing was found
    opted_in = Policy("default", actions={"EMAIL": "mask"}, log_clean_text=True)
    [clean_logged] = logged(records, finished(await screened(CLEAN, opted_in)))
    assert clean_logged["text"] == [CLEAN]


async def test_the_redacted_log_never_writes_a_value_the_policy_found_and_allowed() -> None:
    records = RequestRecords(None, "redacted")
    allowed = Policy("default", classify={"EMAIL": "confidential"})  # found and counted, sent as it is
    [line] = logged(records, finished(await screened(FOUND, allowed)))
    assert "text" not in line and line["findings"] == {"EMAIL": 1}
    assert "jane.doe" not in repr(line)


async def test_the_redacted_log_writes_the_callers_text_not_the_chunks_retrieval_added() -> None:
    ctx = await screened(FOUND, Policy("default", actions={"EMAIL": "mask"}))
    chunk = "Call 555-0100 for the report."  # screened at ingestion, under a policy that may allow it
    augmented = {"model": "m", "messages": [{"role": "system", "content": chunk}, *ctx.body["messages"]]}
    ctx.retrieval = Retrieval(body=augmented, data_class="internal")
    [line] = logged(RequestRecords(None, "redacted"), finished(ctx))
    assert line["text"] == ["Write to ****.com about the report."]
    assert "555-0100" not in repr(line)


async def test_a_request_let_through_unscanned_is_not_screened_nor_its_text_logged() -> None:
    class Broken(PatternDetector):
        def detect(self, text: str) -> list[Entity]:
            raise RuntimeError("detector down")

    policy = Policy("default", actions={"EMAIL": "mask"}, on_error="allow", log_clean_text=True)
    ctx = await screened(FOUND, policy, Broken(memo=0))
    assert not ctx.protection.screened and not ctx.protection.loggable
    [line] = logged(RequestRecords(None, "redacted"), finished(ctx))
    assert "text" not in line


@pytest.mark.parametrize("mode", ["metadata", "redacted"])
async def test_a_request_refused_before_it_was_parsed_is_logged_as_metadata(mode: str) -> None:
    [line] = logged(RequestRecords(None, mode), finished(None, 400))
    assert line["model"] == "_unknown" and line["status"] == 400 and "text" not in line
    assert set(audit_event(finished(None, 400))) == set(line) - {"event", "log_level"}


def test_a_semantic_hit_is_audited_and_counted_as_one_with_its_similarity() -> None:
    ctx = context({"model": "m"})
    ctx.cache_status = "miss"  # the exact cache missed first
    ctx.semantic = SemanticMatch("e1", 0.951234)
    event = audit_event(finished(ctx))
    assert event["cache"] == "semantic" and event["similarity"] == 0.9512 and event["semantic_entry"] == "e1"
    assert "similarity" not in audit_event(finished(context({"model": "m"})))
    metrics = Metrics(CollectorRegistry())
    MetricsRecorder(metrics).record(finished(ctx))
    labels = {"model": "m", "endpoint": "chat/completions", "status": "200", "cache": "semantic"}
    assert metrics.registry.get_sample_value("interlock_requests_total", labels) == 1


class _Vectors:
    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]


def test_drift_recorder_takes_what_offer_takes_and_counts_the_rest() -> None:
    """The recorder calls `admit` and builds an exchange only for what the cap lets through; the
    monitor ends up with the same queue (same fields, same embed draws, same times) and the same
    drop count as `offer` gives, and a request that is not a 200 answer costs no draw."""
    from interlock.observe.monitor import DriftMonitor, MonitorSettings
    from interlock.observe.record import DriftRecorder

    now = [1000.25]
    settings = MonitorSettings(sample=0.9, max_per_s=3, embed_sample=0.5, embed_max_per_s=2)
    dropped = {"recorder": 0, "offer": 0}

    def monitor(name: str) -> DriftMonitor:
        def drop(count: int) -> None:
            dropped[name] += count

        return DriftMonitor(settings, None, "x:", _Vectors(), on_dropped=drop, clock=lambda: now[0],
                            rng=random.Random(7))  # fmt: skip

    recorded, offered = monitor("recorder"), monitor("offer")
    recorder = DriftRecorder(recorded)
    body = {"model": "m", "messages": [{"role": "user", "content": CLEAN}]}
    answer = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
    for second in range(3):
        for i in range(6):
            now[0] = 1000.25 + second + i * 0.01
            ctx = context(body)
            ctx.routing.version = "v1"
            done = Finished("r", OPEN, Endpoint.CHAT, "m", ctx, 200, "served", None, 5.0, 5.0 + 0.002 * i, answer)
            recorder.record(done)
            offered.offer("m", "v1", ctx.protected_body, answer, done.seconds * 1000)
            recorder.record(Finished("r", OPEN, Endpoint.CHAT, "m", ctx, 500, "served", None, 5.0, 5.1))
            recorder.record(Finished("r", OPEN, Endpoint.CHAT, "m", None, 400, "bad_request", None, 5.0, 5.1))
    assert list(recorded._queue) == list(offered._queue)
    assert dropped["recorder"] == dropped["offer"] > 0
    assert len(recorded._queue) == 9  # 3 a second
    assert any(item.embed for item in recorded._queue) and not all(item.embed for item in recorded._queue)
    assert [item.at for item in recorded._queue][:1] == [1000.25]
