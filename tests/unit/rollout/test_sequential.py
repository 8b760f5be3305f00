"""Wald's sequential test on a rate: how many bad answers it takes, and that a clean candidate
or a rate at half the threshold is not failed early."""

from __future__ import annotations

import math
import random

import pytest

from interlock.rollout.sequential import ALPHA, rate_evidence


def test_a_candidate_that_always_refuses_fails_after_a_handful_of_answers() -> None:
    # Each event adds ln 2 at any threshold (p1 / p0 = 2); the bound is ln(0.95 / 0.01) = 4.55.
    first = next(n for n in range(1, 50) if (e := rate_evidence(n, n, 0.05)) is not None and e.failed)
    assert first == 7
    e = rate_evidence(7, 7, 0.05)
    assert e is not None and e.llr == pytest.approx(7 * math.log(2)) and "7 of 7" in str(e)


def test_no_events_never_fail_and_the_test_needs_a_threshold_inside_0_1() -> None:
    assert all(not e.failed for n in range(1, 500) if (e := rate_evidence(0, n, 0.05)) is not None)
    assert rate_evidence(1, 0, 0.05) is None and rate_evidence(1, 5, 0.0) is None and rate_evidence(1, 5, 1.0) is None


def test_at_half_the_threshold_an_early_failure_is_rare() -> None:
    rng = random.Random(5)
    trials, failed = 2000, 0
    for _ in range(trials):
        events = 0
        for n in range(1, 20):  # under a min_requests of 20, one look per answer: the worst case
            events += rng.random() < 0.025
            e = rate_evidence(events, n, 0.05)
            if e is not None and e.failed:
                failed += 1
                break
    assert failed / trials <= ALPHA
