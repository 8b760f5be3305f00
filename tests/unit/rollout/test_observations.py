"""ShadowLog in memory: the candidate's comparisons and stable's baseline kept apart, by time, and
rows written before the quality fields existed still decoded."""

from __future__ import annotations

import msgspec

from interlock.observe.drift import DriftReport, Profile
from interlock.observe.drift import compare as compare_profiles
from interlock.observe.window import RequestStats
from interlock.rollout.observations import _DECODER, _ENCODER, GatewayObservations, ShadowLog, _Row, drift_share
from interlock.rollout.shadow import compare


async def test_the_baseline_is_kept_apart_from_the_candidates_shadows() -> None:
    log = ShadowLog(None)
    await log.add("m", 10.0, compare("a b", 1.0, "a b", 1.0))
    await log.add("m", 11.0, compare("a b", 1.0, "I cannot help with that.", 1.0), baseline=False)
    await log.add("m", 12.0, compare("a b", 1.0, "a c", 1.0), baseline=True)
    await log.add("m", 30.0, compare("a b", 1.0, "a b", 1.0), baseline=True)  # outside the interval
    shadows = await log.summary("m", 10.0, 20.0)
    baseline = await log.summary("m", 10.0, 20.0, baseline=True)
    assert (shadows.requests, shadows.refusals) == (2, 1)
    assert baseline.requests == 1 and baseline.similarity_mean == 1 / 3
    assert (await log.summary("other", 0.0, 100.0)).requests == 0


def test_rows_written_before_the_quality_fields_decode() -> None:
    old = msgspec.json.encode([5.0, False, 1.2, 0.9, 0.5])
    row = _DECODER.decode(old)
    assert row == _Row(5.0, False, 1.2, 0.9, 0.5) and row.comparison().json_invalid is None
    new = _Row(5.0, False, 1.2, 0.9, 0.5, True, True, False)
    assert _DECODER.decode(_ENCODER.encode(new)) == new


def test_drift_share_is_unknown_when_no_feature_could_be_tested() -> None:
    assert drift_share(compare_profiles(Profile(), Profile())) is None


class Versions:
    """A drift source that tests one version's profile against another's, as DriftMonitor does."""

    def __init__(self, profiles: dict[str, Profile]) -> None:
        self.profiles = profiles
        self.asked: list[tuple[str, str, str]] = []

    async def compare_versions(self, model: str, reference_version: str, version: str) -> DriftReport:
        self.asked.append((model, reference_version, version))
        return compare_profiles(self.profiles[reference_version], self.profiles[version])


async def test_the_measurement_carries_the_candidates_drift_against_stable_and_the_baseline() -> None:
    log = ShadowLog(None)
    # Baseline copies before the interval count (the last 300 s); the candidate's do not.
    await log.add("m", 15.0, compare("a b", 1.0, "a b", 1.0), baseline=True)
    await log.add("m", 15.0, compare("a b", 1.0, "a b", 1.0))
    drift = Versions({"v1": Profile(), "v2": Profile()})
    observations = GatewayObservations(RequestStats(bucket_s=1.0), log, drift=drift)
    m = await observations.measure("m", "v2", "v1", 300.0, 310.0)
    assert drift.asked == [("m", "v1", "v2")]  # the candidate tested against stable, not a reference
    assert "drift_share" in m.candidate and m.candidate["drift_share"] is None  # nothing observed yet
    assert m.stable["shadow_requests"] == 1 and m.stable["shadow_similarity"] == 1.0  # stable's baseline
    assert m.candidate["shadow_requests"] == 0
    without = await GatewayObservations(RequestStats(bucket_s=1.0), log).measure("m", "v2", "v1", 320.0, 330.0)
    assert "drift_share" not in without.candidate
    assert without.stable["shadow_requests"] == 0  # the baseline copy at 15 s is more than 300 s old
