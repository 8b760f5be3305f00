"""Finding PII and secrets in text: every candidate in one pass with Hyperscan (or, where it is not
installed, each compiled `re` pattern in turn), then validation and context scoring.

The patterns run on the text as `normalize.py` folds it (NFKC, invisible characters dropped), and
the entities come back in offsets of the text as given: the DLP stage acts on the span it is
handed, and the span covers every original character of the value, zero-width ones inside too.

Pure and synchronous: text in, entities out. The DLP stage decides where it runs (inline for
ordinary prompts, on a worker thread for large ones).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from .normalize import normalize
from .patterns import CONTEXT_BOOST, CONTEXT_DAMPEN, CONTEXT_WINDOW, PATTERNS, Pattern
from .validate import VALIDATORS, WITH_CONTEXT

try:  # Hyperscan: one pass over the text for every pattern at once
    import hyperscan
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    hyperscan = None  # type: ignore[assignment]  # falls back to compiled `re` patterns

# Score once a validator accepted the candidate (context then moves it up or down).
VALIDATED = {
    "CREDIT_CARD": 0.9,
    "IBAN": 0.95,
    "US_SSN": 0.6,
    "PHONE": 0.55,
    "IP_ADDRESS": 0.6,
    "DATE_OF_BIRTH": 0.25,  # below the threshold unless the words before it speak of a birth
}
BOOST, DAMPEN = 0.3, 0.4
MEMO_ENTRIES = 4096
MEMO_MAX_CHARS = 4096  # UTF-8 bytes, in fact


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    start: int
    end: int
    score: float


class PatternDetector:
    name = "patterns"

    def __init__(
        self,
        patterns: Sequence[Pattern] = PATTERNS,
        threshold: float = 0.5,
        use_hyperscan: bool = True,
        memo: int = MEMO_ENTRIES,
    ) -> None:
        # Findings of recent texts, by a digest of the text (never the text itself): detection is a
        # pure function of the text, and chat traffic repeats its texts (a system prompt on every
        # request of an application). Memoised only up to MEMO_MAX_CHARS.
        self._memo: dict[bytes, tuple[Entity, ...]] = {}
        self._memo_size = memo
        self._memo_lock = threading.Lock()  # large texts are scanned on worker threads
        self._patterns = tuple(patterns)
        self._threshold = threshold
        self._hs = None
        if use_hyperscan and hyperscan is not None:
            db = hyperscan.Database()
            db.compile(
                expressions=[p.regex.encode() for p in self._patterns],
                ids=list(range(len(self._patterns))),
                elements=len(self._patterns),
                flags=[
                    hyperscan.HS_FLAG_SOM_LEFTMOST | (hyperscan.HS_FLAG_CASELESS if p.case_insensitive else 0)
                    for p in self._patterns
                ],
            )
            self._hs = db
        # Without Hyperscan: each pattern compiled once and run in turn. (One alternation of all of
        # them would let the first alternative that matches hide the others: a phone-shaped SSN.)
        self._res = [re.compile(p.regex, re.IGNORECASE if p.case_insensitive else 0) for p in self._patterns]
        self._boost = _words(CONTEXT_BOOST)
        self._dampen = _words(CONTEXT_DAMPEN)

    @property
    def engine(self) -> str:
        return "hyperscan" if self._hs is not None else "re"

    def _candidates(self, text: str, data: bytes) -> list[tuple[int, int, int]]:
        """(pattern index, start, end) in characters; the longest match per pattern and start.
        `data` is `text` encoded as UTF-8."""
        if self._hs is None:
            return [(pid, m.start(), m.end()) for pid, rx in enumerate(self._res) for m in rx.finditer(text)]
        longest: dict[tuple[int, int], int] = {}

        def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
            key = (pid, start)
            if longest.get(key, -1) < end:
                longest[key] = end

        self._hs.scan(data, match_event_handler=on_match)
        if len(data) == len(text):  # ASCII: byte offsets are character offsets
            return [(pid, start, end) for (pid, start), end in longest.items()]

        def chars(offset: int) -> int:
            return len(data[:offset].decode("utf-8", "ignore"))

        return [(pid, chars(start), chars(end)) for (pid, start), end in longest.items()]

    def detect(self, text: str) -> list[Entity]:
        data = text.encode("utf-8", "surrogatepass")
        if not self._memo_size or len(data) > MEMO_MAX_CHARS:
            return self._detect(text, data)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        found = self._memo.get(digest)
        if found is None:
            found = tuple(self._detect(text, data))
            with self._memo_lock:
                if len(self._memo) >= self._memo_size:
                    del self._memo[next(iter(self._memo))]  # the oldest entry
                self._memo[digest] = found
        return list(found)

    def _detect(self, text: str, data: bytes) -> list[Entity]:
        folded = normalize(text)
        if folded.text is text:  # ASCII, or nothing to fold: offsets are the caller's already
            return self._find(text, data)
        found = self._find(folded.text, folded.text.encode("utf-8", "surrogatepass"))
        return [Entity(e.type, *folded.original_span(e.start, e.end), e.score) for e in found]

    def _find(self, text: str, data: bytes) -> list[Entity]:
        candidates = self._candidates(text, data)
        if not candidates:  # most text: nothing more to do
            return []
        found: list[Entity] = []
        for pid, start, end in candidates:
            pattern = self._patterns[pid]
            kind = pattern.entity
            if _embedded(text, start, end) or (kind == "US_SSN" and text[max(0, start - 1) : start] == "+"):
                continue  # a version string; digits that are the tail of an international number
            window = max(0, start - CONTEXT_WINDOW)
            boost, dampen = self._boost.get(kind), self._dampen.get(kind)
            boosted = boost is not None and boost.search(text, window, start) is not None
            dampened = dampen is not None and dampen.search(text, window, start) is not None
            context = (BOOST if boosted else 0.0) - (DAMPEN if dampened else 0.0)
            validator = VALIDATORS.get(kind)
            score = (pattern.score if validator is None else VALIDATED[kind]) + context
            if round(score, 6) < self._threshold:  # 0.6 + 0.3 - 0.4 is 0.4999... in floats
                continue  # not even a valid one would count: skip the validator (a date without "born")
            if validator is not None:
                valid_end = _validated_end(validator, text, start, end)
                relaxed = WITH_CONTEXT.get(kind)
                if valid_end < 0 and relaxed is not None and boosted and not dampened:
                    valid_end = _validated_end(relaxed, text, start, end)  # "Card number: ..."
                if valid_end < 0:
                    continue
                end = valid_end
            found.append(Entity(kind, start, end, min(score, 1.0)))
        return without_overlaps(found)


def _words(table: dict[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    """Per entity type, one pattern for its context words, each at the start of a word."""
    return {
        kind: re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)
        for kind, words in table.items()
    }


def _validated_end(validator: Callable[[str], bool], text: str, start: int, end: int) -> int:
    """The end of the longest valid candidate: the match itself, or the match without one or two
    trailing space-separated groups (an IBAN followed by the word "I")."""
    for _ in range(3):
        if validator(text[start:end]):
            return end
        cut = text.rfind(" ", start, end)
        if cut <= start:
            break
        end = cut
    return -1


def _embedded(text: str, start: int, end: int) -> bool:
    """Part of a longer dotted number (a version string, an OID): `1.2.3.4` in `1.2.3.4.5`."""
    after = text[end : end + 2]
    before = text[max(0, start - 2) : start]
    return (len(after) == 2 and after[0] == "." and after[1].isdigit()) or (
        len(before) == 2 and before[1] == "." and before[0].isdigit()
    )


def surest(e: Entity) -> tuple[float, int, int]:
    return -e.score, -(e.end - e.start), e.start


def without_overlaps(entities: list[Entity], rank: Callable[[Entity], tuple[Any, ...]] = surest) -> list[Entity]:
    """Where candidates overlap keep the first by `rank` (by default the surest, then the longest);
    and widen what is kept over
    the parts of the others that stick out, so that acting on the entities kept leaves no part
    of any finding in the text. (The DLP stage merges the patterns' findings with the entity
    model's this way: a PERSON "Jan" of 0.85 beats the date of birth "Jan. 29th, 1961" of 0.55,
    and the date's "29th, 1961" must not go upstream.) Types and scores are those kept."""
    chosen: list[Entity] = []
    beaten: list[Entity] = []
    for e in sorted(entities, key=rank):
        if all(e.end <= c.start or e.start >= c.end for c in chosen):
            chosen.append(e)
        else:
            beaten.append(e)
    chosen.sort(key=lambda e: e.start)
    for b in beaten:
        over = [i for i, c in enumerate(chosen) if c.start < b.end and b.start < c.end]
        first, last = over[0], over[-1]  # kept ones never overlap: b runs from one to the other
        for i, j in pairwise(over):  # close the gaps between them, if any
            chosen[i] = replace(chosen[i], end=chosen[j].start)
        chosen[first] = replace(chosen[first], start=min(chosen[first].start, b.start))
        chosen[last] = replace(chosen[last], end=max(chosen[last].end, b.end))
    return chosen
