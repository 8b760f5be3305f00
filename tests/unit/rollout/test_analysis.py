"""Analysis runs with Argo Rollouts' semantics, on measurements written as data."""

from __future__ import annotations

import random
import re

import orjson
import pytest

from interlock.observe.window import RequestStats
from interlock.rollout import analysis as an
from interlock.rollout.analysis import Measurement
from interlock.rollout.shadow import compare, summarize
from interlock.rollout.spec import AnalysisTemplate, Metric


def template(*conditions: str, **kw: int) -> AnalysisTemplate:
    params = {"interval_s": 10.0, "count": 3, "min_requests": 20, **kw}
    return AnalysisTemplate(metrics=[Metric(condition=c) for c in conditions], **params)  # type: ignore[arg-type]


def m(
    i: int,
    requests: float = 100,
    error_rate: float | None = 0.01,
    p95: float | None = 500.0,
    stable_p95: float | None = 500.0,
    stable_requests: float = 100,
    **extra: float | None,
) -> Measurement:
    return Measurement(
        start=i * 10.0,
        end=(i + 1) * 10.0,
        candidate={"requests": requests, "error_rate": error_rate, "p95_latency_ms": p95, **extra},
        stable={"requests": stable_requests, "error_rate": 0.01, "p95_latency_ms": stable_p95},
    )


def run(t: AnalysisTemplate, *ms: Measurement) -> an.AnalysisRun:
    r = an.new_run(t, 0.0)
    for x in ms:
        r = an.record(r, t, x)
    return r


def test_passes_after_count_measurements() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < stable * 1.2")
    r = run(t, m(0), m(1))
    assert r.phase == an.RUNNING
    r = an.record(r, t, m(2))
    assert r.phase == an.SUCCESSFUL
    assert all(x.successful == 3 and x.phase == an.SUCCESSFUL for x in r.metrics)


def test_first_failure_fails_with_failure_limit_zero_and_ends_the_run() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < 2000")
    r = run(t, m(0, error_rate=0.2))
    assert r.phase == an.FAILED
    assert r.metrics[0].phase == an.FAILED and r.metrics[1].phase == an.RUNNING
    assert "error_rate" in r.message


def test_failures_must_exceed_the_failure_limit() -> None:
    t = template("error_rate < 0.05", failure_limit=1)
    r = run(t, m(0, error_rate=0.2), m(1), m(2))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].failed == 1
    r = run(t, m(0, error_rate=0.2), m(1, error_rate=0.2))
    assert r.phase == an.FAILED


def test_relative_to_stable() -> None:
    t = template("p95_latency_ms < stable * 1.2")
    assert run(t, m(0, p95=1100, stable_p95=1000)).phase == an.RUNNING  # 1100 < 1200
    assert run(t, m(0, p95=1300, stable_p95=1000)).phase == an.FAILED
    # No stable value to compare with: inconclusive, not a pass.
    assert run(t, m(0, p95=1100, stable_p95=None)).phase == an.INCONCLUSIVE
    assert run(t, m(0, p95=1100, stable_requests=3)).phase == an.INCONCLUSIVE


def test_too_little_traffic_is_inconclusive_not_success() -> None:
    t = template("error_rate < 0.05")
    r = run(t, m(0, requests=5, error_rate=0.0))
    assert r.phase == an.INCONCLUSIVE
    assert "min_requests" in r.metrics[0].message
    # Within an inconclusive limit it keeps measuring, and still needs `count` measurements.
    t = template("error_rate < 0.05", inconclusive_limit=1)
    r = run(t, m(0, requests=5), m(1), m(2))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].inconclusive == 1
    assert run(t, m(0, requests=5), m(1, requests=5)).phase == an.INCONCLUSIVE


def test_errors_do_not_count_and_fail_past_the_consecutive_limit() -> None:
    t = template("error_rate < 0.05", consecutive_error_limit=1)
    err = Measurement(start=0, end=10, error="redis down")
    r = run(t, err, m(1), err, m(3), m(4))
    assert r.phase == an.SUCCESSFUL and r.metrics[0].count == 3 and r.metrics[0].error == 2
    assert run(t, err, err).phase == an.ERROR


def test_worst_phase_wins() -> None:
    t = template("error_rate < 0.05", "p95_latency_ms < 1000", "confidence_mean > -1.5")
    # error_rate fails, p95 passes, confidence missing (inconclusive): Failed.
    r = run(t, m(0, error_rate=0.5))
    assert r.phase == an.FAILED


def test_shadow_and_breach_signals() -> None:
    t = template("shadow_similarity > 0.8", "drift_breaches == 0")
    quiet = Measurement(
        start=0, end=10, candidate={"requests": 0, "shadow_requests": 50, "shadow_similarity": 0.9, "drift_breaches": 0}
    )
    assert run(t, quiet).metrics[0].successful == 1
    assert run(t, quiet).metrics[1].successful == 1  # breaches need no traffic to be judged
    few = Measurement(start=0, end=10, candidate={"shadow_requests": 3, "shadow_similarity": 0.9, "drift_breaches": 1})
    r = run(t, few)
    assert r.phase == an.FAILED and r.metrics[0].phase == an.INCONCLUSIVE


def test_due_interval() -> None:
    t = template("error_rate < 0.05")
    r = an.new_run(t, 100.0)
    assert an.due_interval(r, t, 109.9) is None
    assert an.due_interval(r, t, 110.0) == (100.0, 110.0)
    r = an.record(r, t, m(0))
    assert an.due_interval(r, t, 125.0) == (110.0, 120.0)


def test_signals_from_window_stats() -> None:
    now = 1_800_000_000.0
    stats = RequestStats(600, 5, clock=lambda: now)
    for i in range(100):
        stats.record("chat", "v2", 0.2 if i < 95 else 3.0, "upstream" if i < 5 else None, None, None)
    signals = an.signals_from_stats(stats.stats("chat", "v2", now - 60, now + 5))
    assert signals["requests"] == 100 and signals["error_rate"] == 0.05
    assert signals["p95_latency_ms"] is not None and 190 < signals["p95_latency_ms"] < 210


# -- the default analysis, on shadow comparisons of made-up answers -----------------------------------
SUPPORT = tuple(re.findall(r"\S+", "the request was handled and the account settings were updated as asked the "
                           "change applies at the next sign-in and a confirmation was sent to the address on file"))  # fmt: skip
ELSEWHERE = tuple(re.findall(r"\S+", "bananas ripen faster beside apples because ethylene gas speeds their "
                             "softening in a warm kitchen bowl overnight"))  # fmt: skip


def answer(rng: random.Random, words: tuple[str, ...] | list[str], scale: int = 1) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 30) * scale)).capitalize() + "."


def as_json(text: str) -> str:
    return orjson.dumps({"answer": text}).decode()


def scenario(kind: str, seed: int, pairs: int = 40, baseline_pairs: int = 20) -> Measurement:
    """One interval: `pairs` shadow comparisons of a candidate of this kind against stable, and
    `baseline_pairs` of stable against itself; a third of the requests ask for JSON."""
    rng = random.Random(seed)

    def stable(asks_json: bool) -> str:
        text = answer(rng, SUPPORT)
        return as_json(text) if asks_json else text

    def candidate(asks_json: bool) -> tuple[str, str]:
        if kind == "off-topic":
            text = answer(rng, ELSEWHERE)
        elif kind == "refusal":
            return "I'm sorry, but I can't help with that request.", "stop"
        elif kind == "rambling":
            return answer(rng, SUPPORT, scale=7), "length"
        else:
            text = answer(rng, SUPPORT)
        return (as_json(text) if asks_json and kind != "json-breaking" else text), "stop"

    shadows = []
    for i in range(pairs):
        asks = i % 3 == 0
        text, finish = candidate(asks)
        shadows.append(compare(stable(asks), 0.05, text, 0.05, shadow_finish=finish, wants_json=asks))
    baseline = []
    for i in range(baseline_pairs):
        asks = i % 3 == 0
        baseline.append(compare(stable(asks), 0.05, stable(asks), 0.05, wants_json=asks))
    windows = {"error_rate": 0.0, "p95_latency_ms": 60.0}
    return Measurement(
        start=0.0,
        end=10.0,
        candidate={"requests": 40.0, **windows, **summarize(shadows).signals()},
        stable={"requests": 360.0, **windows, **summarize(baseline).signals()},
    )


DEFAULT = AnalysisTemplate(interval_s=10.0, count=1, min_requests=10)


def test_the_default_analysis_promotes_an_identical_candidate() -> None:
    for seed in range(10):
        r = run(DEFAULT, scenario("identical", seed))
        assert r.phase == an.SUCCESSFUL, (seed, r.message)


@pytest.mark.parametrize(
    ("kind", "failing"),
    [
        ("off-topic", {"shadow_similarity"}),
        ("refusal", {"shadow_similarity", "shadow_refusal_rate"}),
        ("rambling", {"shadow_length_ratio_max", "shadow_unfinished_rate"}),
        ("json-breaking", {"shadow_json_invalid_rate"}),
    ],
)
def test_the_default_analysis_fails_a_worse_candidate_at_its_first_measurement(kind: str, failing: set[str]) -> None:
    for seed in range(5):
        r = run(DEFAULT, scenario(kind, seed))
        assert r.phase == an.FAILED and r.taken == 1
        failed = {x.name for x in r.metrics if x.phase == an.FAILED}
        # Each fails on what is wrong with it (and on nothing an identical candidate could trip); the
        # refusing and rambling ones give no JSON when asked, so they also fail that signal.
        assert failing <= failed <= failing | {"shadow_json_invalid_rate", "shadow_length_ratio_min"}, seed


def test_relative_shadow_conditions_read_the_stable_baseline() -> None:
    t = template("shadow_similarity > stable * 0.8", min_requests=10)
    sig = {"shadow_requests": 30.0, "shadow_similarity": 0.45}
    no_baseline = Measurement(start=0.0, end=10.0, candidate=sig, stable={"requests": 300.0})
    assert run(t, no_baseline).phase == an.INCONCLUSIVE  # without a baseline: nothing to compare with
    low = Measurement(start=0.0, end=10.0, candidate=sig, stable={"shadow_requests": 12.0, "shadow_similarity": 0.5})
    assert run(t, low).phase == an.RUNNING  # 0.45 > 0.4: passed, two more to go
    high = Measurement(start=0.0, end=10.0, candidate=sig, stable={"shadow_requests": 12.0, "shadow_similarity": 0.9})
    assert run(t, high).phase == an.FAILED


def test_below_min_requests_a_rate_already_shown_bad_fails_and_says_on_what_evidence() -> None:
    t = template("shadow_refusal_rate <= stable + 0.05", min_requests=20)
    base = {"shadow_requests": 30.0, "shadow_refusal_rate": 0.0}

    def refusing(n: float) -> Measurement:
        cand = {"shadow_requests": n, "shadow_answered": n, "shadow_refusal_rate": 1.0}
        return Measurement(start=0.0, end=10.0, candidate=cand, stable=base)

    assert run(t, refusing(6)).phase == an.INCONCLUSIVE  # 6 ln 2 = 4.2 < 4.55: not yet
    r = run(t, refusing(8))
    assert r.phase == an.FAILED and "SPRT: 8 of 8" in r.message and "before min_requests" in r.message
    off = AnalysisTemplate(metrics=t.metrics, min_requests=20, early_failure=False)
    assert run(off, refusing(8)).phase == an.INCONCLUSIVE
    # Not a rate, or not kept under its threshold: no early verdict.
    sim = template("shadow_similarity > 0.5", min_requests=20)
    few = Measurement(start=0.0, end=10.0, candidate={"shadow_requests": 8.0, "shadow_similarity": 0.0})
    assert run(sim, few).phase == an.INCONCLUSIVE
    # No stable baseline to put the threshold on: no early verdict either.
    alone = Measurement(start=0.0, end=10.0, candidate=refusing(8).candidate)
    assert run(t, alone).phase == an.INCONCLUSIVE
    # The candidate's own errors, before min_requests: 7 failures in 8 requests.
    errors = Measurement(start=0.0, end=10.0, candidate={"requests": 8.0, "error_rate": 7 / 8})
    assert run(template("error_rate < 0.05", min_requests=20), errors).phase == an.FAILED
