"""Text as the patterns should see it, and the way back to the text as it was written.

People, and people evading a filter, write an SSN in fullwidth digits (U+FF10 to U+FF19), paste a card
number with soft hyphens from a word processor, or put a zero-width space inside an email address.
Patterns of ASCII letters and digits miss all of them, so detection runs on a folded copy:

- NFKC: fullwidth and other compatibility forms become plain letters and digits (a fullwidth digit
  stays one character, the ligature `ffi`, U+FB03, becomes three, `e` and a combining accent become one);
- default-ignorable characters are dropped: every format character (category Cf: zero-width space,
  non-joiner and joiner, soft hyphen, word joiner, bidi marks, embeddings and isolates, the BOM,
  tags), and the other invisible ones that are not Cf (variation selectors, the combining grapheme
  joiner, Hangul fillers);
- the dashes typed in place of a hyphen-minus (hyphen, en and em dash, minus sign) become `-`.

Entities are found in the copy and reported in the original: `Normalized.original_span` maps a span
back and widens it to whole original characters, so that acting on the span (mask, redact,
tokenize) leaves nothing of the value behind, the invisible characters inside it included.

Folding goes cluster by cluster (a character and the combining marks after it), not over the whole
text at once, so that each folded cluster knows exactly which original characters it came from.
That differs from NFKC of the whole text only where a composition would reach across two clusters
(conjoining Hangul jamo), which no pattern here looks at.

Two fast paths: ASCII text is already folded (no compatibility forms, nothing invisible, no dash but
`-`), and `str.isascii()` costs nothing (CPython keeps the flag on the string); non-ASCII text
that is NFKC already and holds nothing to drop or fold is returned as it is after two C-speed scans.
Pure: no I/O, no state.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

# Default-ignorable code points (Unicode's DerivedCoreProperties), as (first, last) ranges: all of
# category Cf as of Unicode 15.1, then the rest. tests/unit/security/pii/test_normalize.py checks
# that this covers every Cf character of the Python it runs on.
DROPPED: tuple[tuple[int, int], ...] = (
    # Cf
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
    # Invisible but not Cf: combining grapheme joiner, Hangul fillers, Khmer inherent vowels,
    # Mongolian free variation selectors, variation selectors.
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180D), (0x180F, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)  # fmt: skip
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"  # hyphen .. horizontal bar, minus sign

_TABLE: dict[int, str | None] = {
    **{cp: None for first, last in DROPPED for cp in range(first, last + 1)},
    **{ord(c): "-" for c in DASHES},
}
# Any character the table would change: the second fast path looks for one.
_TO_FOLD = re.compile(
    "[" + "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in DROPPED) + re.escape(DASHES) + "]"
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

# A folded cluster whose length changed (or that was more than one character): (start, end) in the
# folded text, then (start, end) in the original. Between two of them offsets move one for one (a
# fullwidth digit folded to an ASCII one needs no entry). A dropped character has start == end in
# the folded text.
Fold = tuple[int, int, int, int]


def _folded_end(fold: Fold) -> int:
    return fold[1]


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str  # the folded text: the original itself (the same object) when nothing changed
    folds: tuple[Fold, ...] = ()  # empty when every offset is the same in both

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that [start, end) of the folded text came from: from the
        first original character of its first character to the last of its last, so characters
        dropped inside the span are in it, and those dropped just outside are not."""
        if not self.folds:
            return start, end
        if end <= start:
            first = self._locate(start)
            return first, first
        return self._locate(start), self._locate(end - 1, last=True)

    def _locate(self, i: int, last: bool = False) -> int:
        """Where character i of the folded text starts (or, with `last`, ends) in the original."""
        folds = self.folds
        j = bisect_right(folds, i, key=_folded_end)  # folds[:j] end at or before i
        if j < len(folds) and folds[j][0] <= i:  # i is inside folds[j]
            return folds[j][3] if last else folds[j][2]
        if not j:
            return i + 1 if last else i
        before = folds[j - 1]  # i lies in the unchanged stretch after it
        offset = before[3] + i - before[1]
        return offset + 1 if last else offset


def normalize(text: str) -> Normalized:
    if text.isascii():
        return Normalized(text)
    if _TO_FOLD.search(text) is None and unicodedata.is_normalized("NFKC", text):
        return Normalized(text)
    pieces: list[str] = []
    folds: list[Fold] = []
    copied = 0  # text[:copied] is in `pieces`
    length = 0  # the length of what is in `pieces`
    for run in _NON_ASCII.finditer(text):
        # From one character before the run: an ASCII letter may compose with an accent after it.
        for start, end in _clusters(text, max(run.start() - 1, copied), run.end()):
            cluster = text[start:end]
            folded = unicodedata.normalize("NFKC", cluster).translate(_TABLE)
            if folded == cluster:
                continue
            pieces += (text[copied:start], folded)
            length += start - copied
            if len(folded) != 1 or end - start != 1:
                folds.append((length, length + len(folded), start, end))
            length += len(folded)
            copied = end
    if not pieces:  # e.g. a lone combining mark, which NFKC leaves as it is
        return Normalized(text)
    pieces.append(text[copied:])
    return Normalized("".join(pieces), tuple(folds))


def _clusters(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Spans of text[start:end], each a character and the combining marks that follow it."""
    i = start
    while i < end:
        j = i + 1
        while j < end and unicodedata.combining(text[j]):
            j += 1
        yield i, j
        i = j
