"""PII detection benchmark: Interlock's PatternDetector against Presidio's pattern recognizers, on
the labelled corpus of corpus.py and the evasion corpus of evasion.py, in one process and one run.
Prints markdown tables: per entity type precision and recall with false positives on look-alike
sentences (corpus.py); the same per type and per evasion class (evasion.py: zero-width characters,
fullwidth digits, dates of birth in words, separators, ...); the detection time per KB for both;
for each type where Interlock's recall is below Presidio's, the values it missed; and for each
evasion class below its targets (recall >= 99 %, precision >= Presidio's), what it missed or found
wrongly.

    .venv/bin/pip install faker presidio-analyzer      # once; Presidio's spaCy models are not needed
    PYTHONPATH=/tmp/snap/src .venv/bin/python bench/pii/run.py [--corpus FILE] [--evasion FILE] [--misses 8]

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

Presidio has no date-of-birth type. On the evasion corpus its DateRecognizer (DATE_TIME) is added
to the six and counted as DATE_OF_BIRTH: a date it finds is what a Presidio user would have to act
on. Every date that is not a birthday is then a false positive for it, as it would be for a DLP
policy acting on DATE_TIME. The times are of the six recognizers only, as before (more recognizers
only make Presidio slower).

Matching: a gold entity is found when a prediction of the same type overlaps its span; a
prediction is correct when it overlaps a gold entity of its type. Types other than those of the
corpus (corpus.py: the six; evasion.py: the six less IP_ADDRESS, plus DATE_OF_BIRTH) are ignored. Time: wall clock of the detection calls
only, the best of several passes over the corpus, per KB of UTF-8 text; "sentences" calls the
detector once per sentence (about 90 bytes, like a short chat message), "4 KB documents" once per
block of consecutive sentences joined by newlines, "4 KB prose" once per 4 KB of the corpus's
filler sentences only (no digits, no @: what most prompts look like), "evasion sentences" once per
sentence of the evasion corpus (nearly every one has characters to fold: the slow path).
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
import evasion as evasion_mod  # noqa: E402

TYPES = corpus_mod.TYPES
EVASION_TYPES = evasion_mod.TYPES
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "DATE_TIME": "DATE_OF_BIRTH",  # only with dates=True: Presidio has no date-of-birth type
}
DOC_BYTES = 4096
RECALL_TARGET = 0.99

Span = tuple[str, int, int]  # type, start, end
Detect = Callable[[str], list[Span]]


def interlock_detector(use_hyperscan: bool) -> tuple[Detect, str]:
    from interlock.security.pii.detector import PatternDetector

    # memo=0: the passes below repeat the corpus, and the gateway's memo of recent texts would
    # answer every pass after the first without scanning. This times the scanning itself.
    detector = PatternDetector(use_hyperscan=use_hyperscan, memo=0)

    def detect(text: str) -> list[Span]:
        return [(e.type, e.start, e.end) for e in detector.detect(text)]

    return detect, detector.engine


def presidio_detector(dates: bool = False) -> Detect:
    import logging

    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        DateRecognizer,
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
        *([DateRecognizer()] if dates else []),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    engine = AnalyzerEngine(
        registry=registry,
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}]),
        supported_languages=["en"],
    )
    entities = [t for t in PRESIDIO_TYPES if dates or t != "DATE_TIME"]

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


def evaluate(rows: list[dict], outputs: Sequence[Sequence[Span]], types: Sequence[str]) -> Score:
    """The score of predictions already made (one list per row), counting only `types`."""
    score = Score()
    for row, predicted in zip(rows, outputs, strict=True):
        score.add(row, [p for p in predicted if p[0] in types])
    return score


def by_class(rows: list[dict], outputs: list[list[Span]], types: Sequence[str]) -> dict[str, Score]:
    classes: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        classes[row["evasion"]].append(i)
    return {name: evaluate([rows[i] for i in idx], [outputs[i] for i in idx], types) for name, idx in classes.items()}


def _show(text: str) -> str:
    """Invisible and non-ASCII characters as escapes: what the evasion was is then visible."""
    return text.encode("ascii", "backslashreplace").decode()


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


def type_table(il: Score, pr: Score, types: Sequence[str], total: str) -> None:
    print(
        "| Type | Gold | Interlock P | Interlock R | Presidio P | Presidio R | FP on look-alikes (I / P) | Recall ≥ Presidio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for kind in (*types, None):
        ok = "" if kind is None else ("yes" if il.recall(kind) >= pr.recall(kind) else "**no**")
        print(f"| {kind or total} | {_row(il, pr, kind)} | {ok} |")


def _row(il: Score, pr: Score, kind: str | None = None) -> str:
    """Gold, both precisions and recalls, false positives on look-alikes; of one type or all."""
    fp_il = il.fp_lookalike[kind] if kind else sum(il.fp_lookalike.values())
    fp_pr = pr.fp_lookalike[kind] if kind else sum(pr.fp_lookalike.values())
    gold = il.gold[kind] if kind else sum(il.gold.values())
    return (
        f"{gold} | {_pct(il.precision(kind))} | {_pct(il.recall(kind))}"
        f" | {_pct(pr.precision(kind))} | {_pct(pr.recall(kind))} | {fp_il} / {fp_pr}"
    )


def meets_targets(il: Score, pr: Score) -> bool:
    """Recall >= 99 %, and precision no lower than Presidio's (where Presidio predicted anything)."""
    precision_ok = pr.precision() != pr.precision() or il.precision() >= pr.precision()
    return il.recall() >= RECALL_TARGET and precision_ok


def class_table(il: dict[str, Score], pr: dict[str, Score]) -> None:
    print(
        "| Evasion class | Types | Gold | Interlock P | Interlock R | Presidio P | Presidio R"
        " | FP on look-alikes (I / P) | R ≥ 99 % and P ≥ Presidio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name, kinds in evasion_mod.CLASSES.items():
        ok = "yes" if meets_targets(il[name], pr[name]) else "**no**"
        print(f"| {name} | {len(kinds)} | {_row(il[name], pr[name])} | {ok} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_mod.DEFAULT_OUT)
    parser.add_argument("--evasion", type=Path, default=evasion_mod.DEFAULT_OUT)
    parser.add_argument("--misses", type=int, default=8, help="missed examples to list per type or class")
    args = parser.parse_args()
    if not args.corpus.exists():
        corpus_mod.write(args.corpus, corpus_mod.generate(2000, 7))
    if not args.evasion.exists():
        corpus_mod.write(args.evasion, evasion_mod.generate())
    rows = corpus_mod.load(args.corpus)
    ev_rows = corpus_mod.load(args.evasion)
    texts = [r["text"] for r in rows]
    ev_texts = [r["text"] for r in ev_rows]
    docs = documents(rows)
    filler = " ".join(corpus_mod.FILLERS) + " "
    prose = [(filler * (DOC_BYTES // len(filler) + 1))[:DOC_BYTES]] * 20
    kb = sum(len(t.encode()) for t in texts) / 1024
    ev_kb = sum(len(t.encode()) for t in ev_texts) / 1024

    il_detect, il_engine = interlock_detector(use_hyperscan=True)
    re_detect, _ = interlock_detector(use_hyperscan=False)
    t0 = time.perf_counter()
    pr_detect = presidio_detector()
    pr_detect("warm up: a@b.com 4111 1111 1111 1111")  # first call loads tldextract's snapshot
    pr_setup = time.perf_counter() - t0
    pr_dates = presidio_detector(dates=True)

    il_out, re_out, pr_out = ([d(t) for t in texts] for d in (il_detect, re_detect, pr_detect))
    ev_il_out, ev_re_out, ev_pr_out = ([d(t) for t in ev_texts] for d in (il_detect, re_detect, pr_dates))
    il, pr = evaluate(rows, il_out, TYPES), evaluate(rows, pr_out, TYPES)
    ev_il, ev_pr = evaluate(ev_rows, ev_il_out, EVASION_TYPES), evaluate(ev_rows, ev_pr_out, EVASION_TYPES)
    il_classes, pr_classes = by_class(ev_rows, ev_il_out, EVASION_TYPES), by_class(ev_rows, ev_pr_out, EVASION_TYPES)
    engines_differ = sum(
        1 for a, b in zip(il_out + ev_il_out, re_out + ev_re_out, strict=True) if sorted(a) != sorted(b)
    )

    timed = {"sentences": texts, "docs": docs, "prose": prose, "evasion": ev_texts}
    timing = {
        key: {
            "interlock": time_per_kb(batch, il_detect, 3.0, 20),
            "interlock-re": time_per_kb(batch, re_detect, 3.0, 20),
            "presidio": time_per_kb(batch, pr_detect, 10.0, 3),
        }
        for key, batch in timed.items()
    }

    from importlib.metadata import version

    import interlock

    positives = sum(1 for r in rows if r["kind"] == "positive")
    ev_positives = sum(1 for r in ev_rows if r["kind"] == "positive")
    print(
        f"PII detection, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.corpus.name}, {len(rows)} sentences"
        f" ({positives} with entities, {len(rows) - positives} look-alike only), {kb:.1f} KB; {args.evasion.name},"
        f" {len(ev_rows)} sentences ({ev_positives} with entities, {len(ev_rows) - ev_positives} look-alike only)"
        f" in {len(il_classes)} evasion classes, {ev_kb:.1f} KB;"
        f" Interlock from {Path(interlock.__file__).parent} ({il_engine}), presidio-analyzer"
        f" {version('presidio-analyzer')} (phonenumbers {version('phonenumbers')}, python-stdnum {version('python-stdnum')})."
    )
    print()
    print(f"{args.corpus.name}:")
    print()
    type_table(il, pr, TYPES, "all six")
    print()
    print(f"{args.evasion.name}, per type (Presidio's DATE_OF_BIRTH: its DATE_TIME recognizer):")
    print()
    type_table(ev_il, ev_pr, EVASION_TYPES, "all")
    print()
    print(f"{args.evasion.name}, per evasion class:")
    print()
    class_table(il_classes, pr_classes)
    print()
    print(
        "| Detection time | Interlock (Hyperscan) | Interlock (`re` fallback) | Presidio (no NLP) | Presidio / Interlock |"
    )
    print("|---|---:|---:|---:|---:|")
    labels = {
        "sentences": f"corpus, per sentence ({len(texts)} calls)",
        "docs": f"corpus, 4 KB documents ({len(docs)} calls)",
        "prose": f"4 KB prose without candidates ({len(prose)} calls)",
        "evasion": f"evasion corpus, per sentence ({len(ev_texts)} calls)",
    }
    for key, label in labels.items():
        t = timing[key]
        ratio = t["presidio"][0] / t["interlock"][0]
        print(
            f"| {label} | {t['interlock'][0]:,.0f} µs/KB | {t['interlock-re'][0]:,.0f} µs/KB"
            f" | {t['presidio'][0]:,.0f} µs/KB | {ratio:.1f}x |"
        )
    print()
    passes = " and ".join(
        f"{' / '.join(str(timing[key][who][1]) for who in ('interlock', 'interlock-re', 'presidio'))} ({key})"
        for key in ("sentences", "docs", "evasion")
    )
    print(
        f"Best of {passes} passes; per call on 4 KB"
        f" of prose {timing['prose']['interlock'][0] * 4:,.0f} µs (Interlock) and {timing['prose']['presidio'][0] * 4:,.0f} µs (Presidio)."
        f" Presidio setup {pr_setup:.1f} s. Hyperscan and `re` engines disagree on {engines_differ} sentences"
        f" of {len(texts) + len(ev_texts)}."
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
            labels_hit = Counter(label for _, label in hits)
            examples = ", ".join(f"`{v}`" for v, _ in hits[:3])
            print()
            print(f"Interlock false positives on look-alikes, {kind}: {dict(labels_hit)}, e.g. {examples}")
    for name, score in il_classes.items():
        if meets_targets(score, pr_classes[name]):
            continue
        print()
        print(f"Evasion class {name} below its targets:")
        for kind, misses in score.missed.items():
            for value, fmt, text in misses[: args.misses]:
                print(f"- missed {kind} `{_show(value)}` ({fmt}), in: {_show(text)}")
        for kind, hits in score.lookalike_hits.items():
            for value, label in hits[: args.misses]:
                print(f"- false {kind} `{_show(value)}` on a look-alike ({label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
