"""Text as the patterns should see it, and the way back to the text as it was written.

People, and people evading a filter, write an SSN in fullwidth digits (U+FF10 to U+FF19), paste a card
number with soft hyphens from a word processor, or put a zero-width space inside an email address.
Patterns of ASCII letters and digits miss all of them, so detection runs on a folded copy:

- NFKC: fullwidth and other compatibility forms become plain letters and digits (a fullwidth digit
  stays one character, the ligature `ffi`, U+FB03, becomes three letters, `½` three characters);
- default-ignorable characters are dropped: every format character (category Cf: zero-width space,
  non-joiner and joiner, soft hyphen, word joiner, bidi marks, embeddings and isolates, the BOM,
  tags), and the other invisible ones that are not Cf (variation selectors, the combining grapheme
  joiner, Hangul fillers);
- the dashes typed in place of a hyphen-minus (hyphen, en and em dash, minus sign) become `-`.

Entities are found in the copy and reported in the original: `Normalized.original_span` maps a span
back and widens it to whole original characters, so that acting on the span (mask, redact,
tokenize) leaves nothing of the value behind, the invisible characters inside it included.

Folding goes character by character (NFKC of each), so that each folded character knows exactly
which original character it came from. That differs from NFKC of the whole text only where NFKC
would compose a letter with an accent that follows it (`e` and U+0301 into `é`) or reorder accents;
both only ever make or move characters outside ASCII, and every pattern looks for ASCII only.

Fast paths: ASCII text is already folded (no compatibility forms, nothing invisible, no dash but
`-`), and `str.isascii()` costs nothing (CPython keeps the flag on the string); non-ASCII text that
is NFKC already and holds nothing to drop or fold (most European text) is returned as it is after
two or three C-speed scans. Elsewhere only the non-ASCII characters are folded, all at once, with
`map` over C functions rather than a Python loop per character: about 0.1-0.2 µs each (Chinese,
whose fullwidth commas fold, about 70 µs per KB).
Pure: no I/O, no state.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import ne
from typing import Literal

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
# Any character the table would change, in two classes: Python's `re` scans a class with astral
# ranges four times slower (50 against 12 µs for 4 KB of German), so that one only runs on text
# that has astral characters.
_BMP_TO_FOLD = re.compile(
    "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in DROPPED if b <= 0xFFFF) + re.escape(DASHES) + "]"
)
_ASTRAL_TO_FOLD = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in DROPPED if b > 0xFFFF) + "]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_ASCII = re.compile(r"[\x00-\x7f]+")

# An original character whose folded form is not one character long: (start, end) in the folded
# text, then (start, end) in the original. Between two of them offsets move one for one (a
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
    if _nothing_to_fold(text):
        return Normalized(text)
    pieces: list[str] = []
    folds: list[Fold] = []
    copied = 0  # text[:copied] is in `pieces`
    length = 0  # the length of what is in `pieces`
    runs = [m.span() for m in _NON_ASCII.finditer(text)]
    joined = _ASCII.sub("", text)  # the non-ASCII characters, in one string, folded at once
    in_joined = list(accumulate((end - start for start, end in runs), initial=0))  # where each run starts
    for j, folded in _changed(joined):
        r = bisect_right(in_joined, j) - 1
        at = runs[r][0] + j - in_joined[r]
        pieces += (text[copied:at], folded)
        length += at - copied
        if len(folded) != 1:
            folds.append((length, length + len(folded), at, at + 1))
        length += len(folded)
        copied = at + 1
    if not pieces:  # e.g. a lone combining mark, which NFKC leaves as it is
        return Normalized(text)
    pieces.append(text[copied:])
    return Normalized("".join(pieces), tuple(folds))


def _nothing_to_fold(text: str) -> bool:
    """Whether folding leaves `text` as it is, found at C speed: NFKC's quick check, then the
    characters the table changes (the astral ones only where there are astral characters)."""
    if not unicodedata.is_normalized("NFKC", text) or _BMP_TO_FOLD.search(text) is not None:
        return False
    return not _has_astral(text) or _ASTRAL_TO_FOLD.search(text) is None


def _has_astral(text: str) -> bool:
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)  # a surrogate pair each


def _changed(segment: str) -> Iterator[tuple[int, str]]:
    """(offset, folded form) of each character of `segment` that folding changes."""
    nfkc_form: repeat[Literal["NFKC"]] = repeat("NFKC")
    nfkc = list(map(unicodedata.normalize, nfkc_form, segment))
    changed = list(map(ne, segment, nfkc))
    table_chars = [_BMP_TO_FOLD, _ASTRAL_TO_FOLD] if _has_astral(segment) else [_BMP_TO_FOLD]
    for pattern in table_chars:  # what NFKC leaves alone but the table drops or turns into `-`
        for m in pattern.finditer(segment):
            changed[m.start()] = True
    for i in compress(range(len(segment)), changed):
        folded = nfkc[i].translate(_TABLE)
        if folded != segment[i]:
            yield i, folded
