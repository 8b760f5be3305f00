"""The overview's numbers: rolling per-second traffic per group and deployment, cache results,
tokens and spend, with circuits and probes from the router."""

from __future__ import annotations

from interlock.observe.dashboard import SPAN_S, Traffic, overview
from interlock.observe.record import Finished
from interlock.pipeline.context import Endpoint, SemanticMatch
from interlock.routing import CircuitBreaker, DeploymentRuntime, GroupRuntime
from interlock.security.limit_stage import Price
from interlock.security.roles import OPEN
from tests.support.clock import Clock
from tests.support.context import context
from tests.support.providers import Scripted


def done(
    deployment: str | None,
    seconds: float,
    cache: str | None = None,
    error: bool = False,
    tokens: tuple[int, int] = (0, 0),
) -> Finished:
    ctx = context({"messages": []}, model="g")
    ctx.routing.deployment = deployment
    ctx.routing.prompt_tokens, ctx.routing.completion_tokens = tokens
    if cache == "semantic":
        ctx.cache_status = "miss"
        ctx.semantic = SemanticMatch("e1", 0.97)
    else:
        ctx.cache_status = cache
    failure = RuntimeError("upstream") if error else None
    return Finished("r", OPEN, Endpoint.CHAT, "g", ctx, 500 if error else 200, "served", failure, 0.0, seconds)


def group() -> GroupRuntime:
    return GroupRuntime("g", [DeploymentRuntime(Scripted(d), 1.0, CircuitBreaker(1, 30, 15)) for d in ("a", "b")])


def test_the_overview_sums_the_last_seconds_per_deployment_and_group() -> None:
    clock = Clock(10_000.0)
    traffic = Traffic({"a": Price(input=1.0, output=2.0)}, clock)
    for i in range(20):  # 2 requests a second for 10 s, to deployment a: 1 in 10 fails
        clock.now = 10_000.0 + i / 2
        traffic.record(done("a", 0.010 if i < 19 else 0.400, cache="miss", error=i == 0, tokens=(100, 50)))
    traffic.record(done(None, 0.001, cache="hit"))  # the exact cache answered: no deployment
    traffic.record(done(None, 0.002, cache="semantic"))
    traffic.record(done("b", 0.020, cache="miss"))
    g = group()
    g.deployments[1].circuit.failure(clock.now)  # one failure opens b's circuit
    clock.now = 10_010.5
    panel = overview(traffic, [g], {"a": True, "b": False})
    (row,) = panel["groups"]
    a, b = row["deployments"]
    assert a["requests_per_s"] == 2.0 and a["requests"] == 20 and a["error_rate"] == 0.05
    assert 9.5 < a["p95_ms"] < 10.5  # within the histogram's 4.4 %: the one slow request is above P95
    assert a["tokens_in"] == 2000 and a["tokens_out"] == 1000 and a["spend_usd"] == 20 * (100 * 1 + 50 * 2) / 1e6
    assert a["healthy"] is True and a["circuit"] == "closed"
    assert b["healthy"] is False and b["circuit"] == "open" and b["spend_usd"] == 0.0  # no price
    assert a["exact_hit_rate"] is None and a["semantic_hit_rate"] is None  # the caches answer for the group
    assert row["requests"] == 23 and row["answered_by_cache"] == 2
    assert row["exact_hit_rate"] == 1 / 23  # one hit among the 23 lookups
    assert row["semantic_hit_rate"] == 1 / 22  # one semantic hit among the 22 exact misses
    clock.now += SPAN_S + 2  # a minute later the window is empty, the totals stay
    later = overview(traffic, [g], {})["groups"][0]
    assert later["requests"] == 0 and later["p95_ms"] is None and later["total_requests"] == 23


def test_unknown_models_and_requests_refused_before_parsing_are_kept_out_of_the_series() -> None:
    traffic = Traffic({}, Clock(5.0))
    traffic.record(Finished("r", OPEN, Endpoint.CHAT, "_unknown", None, 404, "model_not_found", None, 0.0, 0.1))
    assert traffic.series == {}
    traffic.record(Finished("r", OPEN, Endpoint.CHAT, "g", None, 400, "bad_request", None, 0.0, 0.1))
    assert list(traffic.series) == [("g", "_none")]
