from __future__ import annotations

import re

import numpy as np

from interlock.observe.drift import FEATURES, DriftConfig, Observation, Profile, compare, to_html


def profile(seed: int, *, shift: float = 0.0, n: int = 300) -> Profile:
    rng = np.random.default_rng(seed)
    p = Profile(rng=rng)
    for _ in range(n):
        p.observe(
            Observation(
                {
                    "prompt_tokens": float(rng.lognormal(4 + shift, 0.5)),
                    "message_count": float(rng.integers(1, 5)),
                    "language": str(rng.choice(["en", "fr"] if not shift else ["de", "<b>es</b>"])),
                    "pii_rate": float(rng.exponential(0.5)),
                    "topic": rng.normal(shift, 1.0, 6).astype(np.float32),
                    "output_tokens": float(rng.lognormal(5, 0.5)),
                    "finish_reason": "stop",
                    "refusal": "no",
                    "latency_ms": float(rng.lognormal(6, 0.3)),
                    # no confidence at all: its section must still render
                }
            )
        )
    return p


def test_a_self_contained_page_with_an_svg_per_feature() -> None:
    reference, live = profile(1), profile(2, shift=1.0)
    report = compare(reference, live, DriftConfig(mmd_permutations=199))
    page = to_html(report, reference, live)
    assert page.startswith("<!doctype html>")
    sections = re.findall(r"<section>.*?</section>", page, flags=re.S)
    assert len(sections) == len(FEATURES)
    for section, feature in zip(sections, report.features, strict=True):
        assert f"<h2>{feature.name} " in section
        assert section.count("<svg") == 1
    # No external asset, link or script: it must open offline and mailed as it is.
    assert not re.search(r"https?:|//[a-z]|<script|<link|<img|src=|href=|@import|url\(", page, flags=re.I)
    assert "&lt;b&gt;es&lt;/b&gt;" in page and "<b>es</b>" not in page  # category values are escaped
    assert 'class="badge drifted"' in page and "insufficient" in page  # confidence has no data
    assert "<polyline" in page and "<rect" in page and "<circle" in page  # CDFs, bars, projection


def test_insufficient_and_constant_features_still_draw() -> None:
    reference, live = profile(1, n=20), profile(2, n=20)
    page = to_html(compare(reference, live), reference, live)
    assert page.count("<svg") == len(FEATURES)
    assert "no data on one side" in page  # confidence
