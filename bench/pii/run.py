"""PII detection benchmark: Interlock's PatternDetector against Presidio's pattern recognizers, on
the labelled corpus of corpus.py, in one process and one run. Prints one markdown table (per entity
type precision and recall, false positives on look-alike sentences), the detection time per KB for
both, and, for each type where Interlock's recall is below Presidio's, the values it missed.

    .venv/bin/pip install faker presidio-analyzer      # once; Presidio's spaCy models are not needed
    PYTHONPATH=/tmp/snap/src .venv/bin/python bench/pii/run.py [--corpus FILE] [--misses 8]

Interlock: `PatternDetector(memo=0)`, otherwise its defaults (Hyperscan, threshold 0.5, as the DLP
stage builds it with `dlp.threshold` at its default; without the memo of recent texts, which would
answer repeated passes without scanning); its `re` fallback (`use_hyperscan=False`) is timed too and
must find the same entities. Presidio: an `AnalyzerEngine` with the no-op NLP engine
(`NoOpNlpEngine`, no spaCy model loaded) and a registry holding only EmailRecognizer,
PhoneRecognizer, CreditCardRecognizer, IbanRecognizer, UsSsnRecognizer and IpRecognizer, called
as `analyze(text, language="en", entities=[...])` with the engine's default score threshold (0).
Without NLP artifacts Presidio's context words can raise scores but never add or remove a result
at threshold 0, so its detections are what the full engine would return for these types; only the
time differs (spaCy's pipeline is what costs about 9 ms per KB with a model loaded).

Matching: a gold entity is found when a prediction of the same type overlaps its span; a
prediction is correct when it overlaps a gold entity of its type. Types other than the six
(Interlock's SECRET, DATE_OF_BIRTH, ...) are ignored. Time: wall clock of the detection calls
only, the best of several passes over the corpus, per KB of UTF-8 text; "sentences" calls the
detector once per sentence (about 90 bytes, like a short chat message), "4 KB documents" once per
block of consecutive sentences joined by newlines, "4 KB prose" once per 4 KB of the corpus's
filler sentences only (no digits, no @: what most prompts look like).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio's email check: bundled list, no fetch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus as corpus_mod  # noqa: E402

TYPES = corpus_mod.TYPES
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}
DOC_BYTES = 4096

Span = tuple[str, int, int]  # type, start, end
Detect = Callable[[str], list[Span]]


def interlock_detector(use_hyperscan: bool) -> tuple[Detect, str]:
    from interlock.security.pii.detector import PatternDetector

    # memo=0: the passes below repeat the corpus, and the gateway's memo of recent texts would
    # answer every pass after the first without scanning. This times the scanning itself.
    detector = PatternDetector(use_hyperscan=use_hyperscan, memo=0)

    def detect(text: str) -> list[Span]:
        return [(e.type, e.start, e.end) for e in detector.detect(text) if e.type in TYPES]

    return detect, detector.engine


def presidio_detector() -> Detect:
    import logging

    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    engine = AnalyzerEngine(
        registry=registry,
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
        supported_languages=["en"],
    )
    entities = list(PRESIDIO_TYPES)

    def detect(text: str) -> list[Span]:
        results = engine.analyze(text, language="en", entities=entities)
        return [(PRESIDIO_TYPES[r.entity_type], r.start, r.end) for r in results if r.entity_type in PRESIDIO_TYPES]

    return detect


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


class Score:
    def __init__(self) -> None:
        self.gold: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.correct: Counter[str] = Counter()
        self.fp_lookalike: Counter[str] = Counter()
        self.missed: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # type -> (value, format, text)
        self.lookalike_hits: dict[str, list[tuple[str, str]]] = defaultdict(list)  # type -> (value, label)

    def add(self, row: dict, predicted: Sequence[Span]) -> None:
        text = row["text"]
        gold = [(e["type"], e["start"], e["end"]) for e in row["entities"]]
        for g, entity in zip(gold, row["entities"], strict=True):
            self.gold[g[0]] += 1
            if any(_overlaps(g, p) for p in predicted):
                self.found[g[0]] += 1
            else:
                self.missed[g[0]].append((text[g[1] : g[2]], entity["format"], text))
        for p in predicted:
            self.predicted[p[0]] += 1
            if any(_overlaps(p, g) for g in gold):
                self.correct[p[0]] += 1
            elif row["kind"] == "negative":
                self.fp_lookalike[p[0]] += 1
                self.lookalike_hits[p[0]].append((text[p[1] : p[2]], row.get("lookalike", "")))

    def precision(self, kind: str | None = None) -> float:
        predicted = self.predicted[kind] if kind else sum(self.predicted.values())
        correct = self.correct[kind] if kind else sum(self.correct.values())
        return correct / predicted if predicted else float("nan")

    def recall(self, kind: str | None = None) -> float:
        gold = self.gold[kind] if kind else sum(self.gold.values())
        found = self.found[kind] if kind else sum(self.found.values())
        return found / gold if gold else float("nan")


def evaluate(rows: list[dict], detect: Detect) -> tuple[Score, list[list[Span]]]:
    score = Score()
    outputs = []
    for row in rows:
        predicted = detect(row["text"])
        outputs.append(predicted)
        score.add(row, predicted)
    return score, outputs


def documents(rows: list[dict]) -> list[str]:
    docs, current, size = [], [], 0
    for row in rows:
        current.append(row["text"])
        size += len(row["text"].encode()) + 1
        if size >= DOC_BYTES:
            docs.append("\n".join(current))
            current, size = [], 0
    if current:
        docs.append("\n".join(current))
    return docs


def time_per_kb(texts: list[str], detect: Detect, budget_s: float, max_passes: int) -> tuple[float, int]:
    """Best wall-clock microseconds per KB over up to max_passes passes (stopping after budget_s)."""
    kb = sum(len(t.encode()) for t in texts) / 1024
    best = float("inf")
    passes = 0
    started = time.perf_counter()
    while passes < max_passes and (passes == 0 or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        for text in texts:
            detect(text)
        best = min(best, time.perf_counter() - t0)
        passes += 1
    return best * 1e6 / kb, passes


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}%"  # NaN: nothing to divide


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_mod.DEFAULT_OUT)
    parser.add_argument("--misses", type=int, default=8, help="missed examples to list per type")
    args = parser.parse_args()
    if not args.corpus.exists():
        corpus_mod.write(args.corpus, corpus_mod.generate(2000, 7))
    rows = corpus_mod.load(args.corpus)
    texts = [r["text"] for r in rows]
    docs = documents(rows)
    filler = " ".join(corpus_mod.FILLERS) + " "
    prose = [(filler * (DOC_BYTES // len(filler) + 1))[:DOC_BYTES]] * 20
    kb = sum(len(t.encode()) for t in texts) / 1024

    il_detect, il_engine = interlock_detector(use_hyperscan=True)
    re_detect, _ = interlock_detector(use_hyperscan=False)
    t0 = time.perf_counter()
    pr_detect = presidio_detector()
    pr_detect("warm up: a@b.com 4111 1111 1111 1111")  # first call loads tldextract's snapshot
    pr_setup = time.perf_counter() - t0

    il, il_out = evaluate(rows, il_detect)
    _, re_out = evaluate(rows, re_detect)
    pr, _ = evaluate(rows, pr_detect)
    engines_differ = sum(1 for a, b in zip(il_out, re_out, strict=True) if sorted(a) != sorted(b))

    timing = {
        "sentences": {
            "interlock": time_per_kb(texts, il_detect, 3.0, 20),
            "interlock-re": time_per_kb(texts, re_detect, 3.0, 20),
            "presidio": time_per_kb(texts, pr_detect, 10.0, 3),
        },
        "docs": {
            "interlock": time_per_kb(docs, il_detect, 3.0, 20),
            "interlock-re": time_per_kb(docs, re_detect, 3.0, 20),
            "presidio": time_per_kb(docs, pr_detect, 10.0, 3),
        },
        "prose": {
            "interlock": time_per_kb(prose, il_detect, 3.0, 20),
            "interlock-re": time_per_kb(prose, re_detect, 3.0, 20),
            "presidio": time_per_kb(prose, pr_detect, 10.0, 3),
        },
    }

    from importlib.metadata import version

    import interlock

    positives = sum(1 for r in rows if r["kind"] == "positive")
    print(
        f"PII detection, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.corpus.name}, {len(rows)} sentences"
        f" ({positives} with entities, {len(rows) - positives} look-alike only), {kb:.1f} KB;"
        f" Interlock from {Path(interlock.__file__).parent} ({il_engine}), presidio-analyzer"
        f" {version('presidio-analyzer')} (phonenumbers {version('phonenumbers')}, python-stdnum {version('python-stdnum')})."
    )
    print()
    print(
        "| Type | Gold | Interlock P | Interlock R | Presidio P | Presidio R | FP on look-alikes (I / P) | Recall ≥ Presidio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for kind in (*TYPES, None):
        label = kind or "all six"
        ok = "" if kind is None else ("yes" if il.recall(kind) >= pr.recall(kind) else "**no**")
        fp_il = il.fp_lookalike[kind] if kind else sum(il.fp_lookalike.values())
        fp_pr = pr.fp_lookalike[kind] if kind else sum(pr.fp_lookalike.values())
        gold = il.gold[kind] if kind else sum(il.gold.values())
        print(
            f"| {label} | {gold} | {_pct(il.precision(kind))} | {_pct(il.recall(kind))}"
            f" | {_pct(pr.precision(kind))} | {_pct(pr.recall(kind))} | {fp_il} / {fp_pr} | {ok} |"
        )
    print()
    print(
        "| Detection time | Interlock (Hyperscan) | Interlock (`re` fallback) | Presidio (no NLP) | Presidio / Interlock |"
    )
    print("|---|---:|---:|---:|---:|")
    rows_timed = (
        ("sentences", f"corpus, per sentence ({len(texts)} calls)"),
        ("docs", f"corpus, 4 KB documents ({len(docs)} calls)"),
        ("prose", f"4 KB prose without candidates ({len(prose)} calls)"),
    )
    for key, label in rows_timed:
        t = timing[key]
        ratio = t["presidio"][0] / t["interlock"][0]
        print(
            f"| {label} | {t['interlock'][0]:,.0f} µs/KB | {t['interlock-re'][0]:,.0f} µs/KB"
            f" | {t['presidio'][0]:,.0f} µs/KB | {ratio:.1f}x |"
        )
    print()
    print(
        f"Best of {timing['sentences']['interlock'][1]} / {timing['sentences']['interlock-re'][1]} /"
        f" {timing['sentences']['presidio'][1]} passes (sentences) and {timing['docs']['interlock'][1]} /"
        f" {timing['docs']['interlock-re'][1]} / {timing['docs']['presidio'][1]} passes (documents); per call on 4 KB"
        f" of prose {timing['prose']['interlock'][0] * 4:,.0f} µs (Interlock) and {timing['prose']['presidio'][0] * 4:,.0f} µs (Presidio)."
        f" Presidio setup {pr_setup:.1f} s. Hyperscan and `re` engines disagree on {engines_differ} sentences."
    )
    below = [k for k in TYPES if il.recall(k) < pr.recall(k)]
    for kind in below or ():
        misses = il.missed[kind]
        by_format = Counter(fmt for _, fmt, _ in misses)
        print()
        print(
            f"Interlock misses for {kind} ({len(misses)} of {il.gold[kind]}; Presidio missed {len(pr.missed[kind])}),"
            f" by format: {', '.join(f'{f} {n}' for f, n in by_format.most_common())}"
        )
        pr_missed_values = {v for v, _, _ in pr.missed[kind]}
        shown = [m for m in misses if m[0] not in pr_missed_values][: args.misses]
        for value, fmt, text in shown:
            print(f"- `{value}` ({fmt}), in: {text}")
    for kind in TYPES:
        hits = il.lookalike_hits[kind]
        if hits:
            labels = Counter(label for _, label in hits)
            examples = ", ".join(f"`{v}`" for v, _ in hits[:3])
            print()
            print(f"Interlock false positives on look-alikes, {kind}: {dict(labels)}, e.g. {examples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
