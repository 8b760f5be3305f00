"""The decision rules on synthetic traffic: no drift between samples of one distribution, and each
shift the issue names detected within 500 live requests. Traffic goes through `observe` with the
real language identifier, so the test covers the whole path from request body to verdict."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest

from interlock.observe.drift import (
    DriftConfig,
    FeatureKind,
    LanguageIdentifier,
    Profile,
    Status,
    compare,
    observe,
)

SENTENCES = {
    "en": [
        "Can you explain how this works in simple terms?",
        "Please summarise the main points of the report below.",
        "I need help writing an email to my manager about the project deadline.",
        "What are the advantages and disadvantages of this approach?",
        "Give me three ideas for a birthday party for a ten year old.",
        "How do I make my bread rise more before baking it?",
        "Write a short paragraph about the history of the city.",
        "Translate the following list of instructions into plain language.",
    ],
    "fr": [
        "Peux-tu m'expliquer simplement comment cela fonctionne ?",
        "Merci de résumer les points principaux du rapport ci-dessous.",
        "J'ai besoin d'aide pour écrire un courriel à mon responsable au sujet du projet.",
        "Quels sont les avantages et les inconvénients de cette approche ?",
        "Donne-moi trois idées pour l'anniversaire d'un enfant de dix ans.",
        "Comment faire pour que mon pain lève davantage avant la cuisson ?",
        "Écris un court paragraphe sur l'histoire de la ville.",
        "Traduis la liste d'instructions suivante dans un langage simple.",
    ],
}
ANSWER = "Here is a clear answer with the details you asked for, step by step. "
REFUSAL = "I'm sorry, but I can't help with that request."
DIM = 32


@dataclass(frozen=True)
class Traffic:
    """A generator of exchanges; each field is one knob a shift turns."""

    language: str = "en"
    sentences: tuple[int, int] = (1, 4)  # uniform number of sentences in the user message
    refusal_rate: float = 0.02
    finish_reasons: tuple[tuple[str, float], ...] = (("stop", 0.92), ("length", 0.08))
    topics: tuple[int, ...] = (0, 1, 2)
    embed_rate: float = 0.3  # share of requests whose topic is embedded (sampled, as in the gateway)
    logprob_rate: float = 0.5  # share of responses that carry logprobs


def centres() -> np.ndarray:
    vectors = np.random.default_rng(1234).normal(size=(6, DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exchanges(traffic: Traffic, n: int, rng: np.random.Generator, language: LanguageIdentifier) -> Profile:
    """A profile of `n` exchanges of `traffic`. The random draws are made up front, one array per
    knob, so that building 40 profiles of 500 stays cheap."""
    profile = Profile(rng=rng)
    pool = SENTENCES[traffic.language]
    low, high = traffic.sentences
    counts = rng.integers(low, high + 1, size=n)
    picks = rng.integers(len(pool), size=(n, high))
    turns = rng.integers(0, 3, size=n)
    refused = rng.random(n) < traffic.refusal_rate
    reasons, weights = zip(*traffic.finish_reasons, strict=True)
    reason = rng.choice(len(reasons), size=n, p=np.array(weights) / sum(weights))
    answer_length = rng.integers(1, 12, size=n)
    with_logprobs = rng.random(n) < traffic.logprob_rate
    logprobs = rng.normal(-0.4, 0.1, size=n)[:, None] + rng.normal(0, 0.05, size=(n, 5))
    embedded = rng.random(n) < traffic.embed_rate
    vectors = centres()[rng.choice(traffic.topics, size=n)] + rng.normal(0, 0.35, size=(n, DIM))
    latency = rng.lognormal(6.0, 0.4, size=n)
    pii = rng.poisson(0.3, size=n)
    for i in range(n):
        messages = [{"role": "system", "content": "You are a helpful assistant."}]
        for _ in range(turns[i]):
            messages += [{"role": "user", "content": pool[0]}, {"role": "assistant", "content": ANSWER}]
        messages.append({"role": "user", "content": " ".join(pool[j] for j in picks[i, : counts[i]])})
        answer = REFUSAL if refused[i] else ANSWER * int(answer_length[i])
        choice: dict[str, object] = {
            "index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": reasons[reason[i]],
        }  # fmt: skip
        if with_logprobs[i]:
            choice["logprobs"] = {"content": [{"token": "t", "logprob": float(v)} for v in logprobs[i]]}
        profile.observe(
            observe(
                {"model": "m", "messages": messages},
                {"choices": [choice]},
                latency_ms=float(latency[i]) + 2.0 * len(answer),
                pii_count=int(pii[i]),
                embedding=vectors[i] if embedded[i] else None,
                language=language,
            )
        )
    return profile


@pytest.fixture(scope="module")
def reference(language: LanguageIdentifier) -> Profile:
    return exchanges(Traffic(), 2000, np.random.default_rng(1), language)


def test_no_drift_between_samples_of_one_distribution(language: LanguageIdentifier) -> None:
    alarms = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        report = compare(exchanges(Traffic(), 500, rng, language), exchanges(Traffic(), 500, rng, language))
        assert all(f.status is not Status.INSUFFICIENT for f in report.features)
        if report.dataset_drifted:
            alarms.append((seed, report.drifted_features))
    assert alarms == []


def test_no_drift_between_the_reference_and_ordinary_windows(reference: Profile, language: LanguageIdentifier) -> None:
    for seed in range(10):
        report = compare(reference, exchanges(Traffic(), 500, np.random.default_rng(200 + seed), language))
        assert not report.dataset_drifted, (seed, report.drifted_features)


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        (Traffic(sentences=(3, 12)), "prompt_tokens"),
        (Traffic(language="fr"), "language"),
        (Traffic(refusal_rate=0.15), "refusal"),
        (Traffic(topics=(4, 5)), "topic"),
        (Traffic(finish_reasons=(("stop", 0.70), ("length", 0.25), ("content_filter", 0.05))), "finish_reason"),
    ],
    ids=["3x-longer-prompts", "french", "refusals", "new-topic", "finish-reason-mix"],
)
def test_each_shift_is_detected_within_500_requests(
    reference: Profile, language: LanguageIdentifier, shift: Traffic, expected: str
) -> None:
    live = exchanges(shift, 500, np.random.default_rng(7), language)
    report = compare(reference, live)
    assert report.dataset_drifted
    assert expected in report.drifted_features
    assert report.feature(expected).status is Status.DRIFTED


def test_tiny_samples_are_insufficient_not_ok(reference: Profile, language: LanguageIdentifier) -> None:
    live = exchanges(Traffic(language="fr"), 30, np.random.default_rng(3), language)
    report = compare(reference, live)
    assert {f.status for f in report.features} == {Status.INSUFFICIENT}
    assert not report.dataset_drifted
    assert report.drifted_share == 0.0


def test_a_sparse_feature_is_insufficient_while_the_others_are_tested(
    reference: Profile, language: LanguageIdentifier
) -> None:
    live = exchanges(Traffic(embed_rate=0.05, logprob_rate=0.1), 500, np.random.default_rng(4), language)
    report = compare(reference, live)
    assert report.feature("topic").status is Status.INSUFFICIENT  # about 25 vectors
    assert report.feature("confidence").status is Status.INSUFFICIENT  # about 50 logprob responses
    assert report.feature("prompt_tokens").status is Status.OK


def test_the_dataset_share_threshold(reference: Profile, language: LanguageIdentifier) -> None:
    live = exchanges(Traffic(refusal_rate=0.15), 500, np.random.default_rng(7), language)
    assert compare(reference, live).dataset_drifted
    strict = compare(reference, live, DriftConfig(dataset_share=0.5))
    assert strict.drifted_share < 0.5
    assert not strict.dataset_drifted


def test_numbers_need_both_ks_and_wasserstein(reference: Profile, language: LanguageIdentifier) -> None:
    live = exchanges(Traffic(sentences=(3, 12)), 500, np.random.default_rng(7), language)
    prompt = compare(reference, live).feature("prompt_tokens")
    assert prompt.check("ks").flagged and prompt.check("wasserstein_normalised").flagged
    assert prompt.check("psi").flagged is None and prompt.check("psi").statistic > 0.25
    lenient = compare(reference, live, DriftConfig(wasserstein_threshold=math.inf)).feature("prompt_tokens")
    assert lenient.status is Status.OK


def test_compare_is_deterministic_for_a_seed(reference: Profile, language: LanguageIdentifier) -> None:
    live = exchanges(Traffic(topics=(0, 1, 4)), 500, np.random.default_rng(8), language)
    first, second = compare(reference, live), compare(reference, live)
    assert first.to_dict() == second.to_dict()
    other = compare(reference, live, replace(DriftConfig(), seed=1))
    assert other.feature("topic").check("mmd").statistic == first.feature("topic").check("mmd").statistic


def test_report_dict_is_json(reference: Profile, language: LanguageIdentifier) -> None:
    live = exchanges(Traffic(language="fr"), 500, np.random.default_rng(9), language)
    body = compare(reference, live).to_dict()
    decoded = json.loads(json.dumps(body, allow_nan=False))
    assert decoded["dataset_drifted"] is True
    assert "language" in decoded["drifted_features"]
    kinds = {f["name"]: f["kind"] for f in decoded["features"]}
    assert kinds["topic"] == FeatureKind.EMBEDDING.value
    language_checks = {c["name"]: c for c in next(f for f in decoded["features"] if f["name"] == "language")["checks"]}
    assert language_checks["chi2"]["p_value"] < 0.01 and language_checks["jensen_shannon"]["statistic"] > 0.5
