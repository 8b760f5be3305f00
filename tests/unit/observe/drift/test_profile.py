from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interlock.observe.drift import CategorySketch, FeatureKind, Observation, Profile, observe

DATA = Path(__file__).parents[2] / "data" / "drift_reference.jsonl"


def profile_of(n: int, seed: int) -> Profile:
    rng = np.random.default_rng(seed)
    profile = Profile(rng=rng)
    for i in range(n):
        body = {"messages": [{"role": "user", "content": "word " * int(rng.integers(1, 50))}]}
        reply = {"choices": [{"message": {"content": "ok " * int(rng.integers(1, 30))}, "finish_reason": "stop"}]}
        vector = rng.normal(size=6) if i % 3 == 0 else None
        profile.observe(observe(body, reply, latency_ms=float(rng.lognormal(5, 1)), embedding=vector))
    return profile


def test_profile_round_trip_and_merge() -> None:
    a, b = profile_of(300, 1), profile_of(200, 2)
    blob = a.to_bytes()
    assert blob[0] == 1  # the version byte
    copy = Profile.from_bytes(blob, rng=np.random.default_rng(0))
    assert copy.n == 300 and copy.features == a.features
    assert copy.to_bytes() == blob
    copy.merge(Profile.from_bytes(b.to_bytes()))
    assert copy.n == 500
    assert copy.sketches["prompt_tokens"].n == 500
    assert copy.sketches["topic"].n == 100 + 67
    assert copy.sketches["language"].n == 0  # no detector was given


def test_profile_rejects_other_versions_and_trailing_bytes() -> None:
    blob = profile_of(10, 1).to_bytes()
    with pytest.raises(ValueError, match="version"):
        Profile.from_bytes(bytes([2]) + blob[1:])
    with pytest.raises(ValueError, match="trailing"):
        Profile.from_bytes(blob + b"x")


def test_profile_merge_needs_the_same_features() -> None:
    with pytest.raises(ValueError, match="different features"):
        Profile().merge(Profile({"latency_ms": FeatureKind.NUMERIC}))


def test_profile_observe_rejects_a_value_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError, match="latency_ms"):
        Profile().observe(Observation({"latency_ms": "slow"}))


def test_from_jsonl(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.ones((len(texts), 4))

    profile = Profile.from_jsonl(DATA, embed=embed, batch=2, rng=np.random.default_rng(0))
    assert profile.n == 5
    s = profile.sketches
    assert isinstance(s["language"], CategorySketch)
    assert s["language"].counts() == {"en": 3.0, "de": 1.0, "fr": 1.0}
    assert s["message_count"].n == 4  # the completions line has no messages
    assert s["finish_reason"].n == 4 and s["refusal"].n == 4  # the last line has no response
    assert isinstance(s["refusal"], CategorySketch) and s["refusal"].counts()["yes"] == 1.0
    assert s["latency_ms"].n == 3 and s["pii_rate"].n == 2 and s["confidence"].n == 2
    assert s["topic"].n == 5 and [len(c) for c in calls] == [2, 2, 1]
    assert calls[0][1] == "Quelle est la capitale de l'Australie ? Réponds en une phrase."

    lines = DATA.read_text(encoding="utf-8").splitlines()
    from_lines = Profile.from_jsonl(lines)
    assert from_lines.n == 5 and from_lines.sketches["topic"].n == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ('{"response": {}}', 'line 2: expected an object with a "request" object'),
        ('{"request": {}, "latency_ms": "fast"}', 'line 2: "latency_ms" must be a number'),
        ('{"request": {}, "response": []}', 'line 2: "response" must be an object'),
    ],
)
def test_from_jsonl_names_the_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"request": {"prompt": "x"}}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Profile.from_jsonl(path, language=lambda text: "en")
