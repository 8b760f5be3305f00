"""ShadowLog in memory: the candidate's comparisons and stable's baseline kept apart, by time, and
rows written before the quality fields existed still decoded."""

from __future__ import annotations

import msgspec

from interlock.rollout.observations import _DECODER, _ENCODER, ShadowLog, _Row
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
