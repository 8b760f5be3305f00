"""The folded text the patterns see, and spans mapped back to the text as written."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest

from interlock.security.pii.normalize import DASHES, DROPPED, normalize

ZWSP, ZWJ, SOFT_HYPHEN, WORD_JOINER = "\u200b", "\u200d", "\u00ad", "\u2060"
RLO, PDF, BOM = "\u202e", "\u202c", "\ufeff"  # right-to-left override, pop directional formatting


def test_ascii_text_is_returned_as_it_is() -> None:
    text = "Mail jane.doe@example.com, card 4111 1111 1111 1111."
    folded = normalize(text)
    assert folded.text is text and folded.folds == ()
    assert folded.original_span(5, 25) == (5, 25)


def test_non_ascii_text_with_nothing_to_fold_is_returned_as_it_is() -> None:
    text = "Grüße an Jürgen, 東京都 ✓"  # NFKC already (composed), nothing invisible
    assert normalize(text).text is text


def test_every_format_character_of_this_python_is_dropped() -> None:
    dropped = {cp for first, last in DROPPED for cp in range(first, last + 1)}
    missing = [
        f"U+{cp:04X}" for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf" and cp not in dropped
    ]
    assert not missing, f"add to normalize.DROPPED (Unicode {unicodedata.unidata_version}): {missing}"
    for cp in sorted(dropped):
        assert normalize(f"a{chr(cp)}b").text == "ab", f"U+{cp:04X}"


@pytest.mark.parametrize("invisible", [ZWSP, ZWJ, SOFT_HYPHEN, RLO + PDF, BOM, WORD_JOINER, "\ufe0f", "\u034f"])
def test_invisible_characters_inside_a_value_are_dropped_and_inside_its_span(invisible: str) -> None:
    text = f"to {invisible}jane{invisible}.doe@exam{invisible}ple.com{invisible} now"
    folded = normalize(text)
    assert folded.text == "to jane.doe@example.com now"
    start = folded.text.index("jane")
    a, b = folded.original_span(start, start + len("jane.doe@example.com"))
    # The ones inside are in the span; the ones just outside it are not.
    assert text[a:b] == f"jane{invisible}.doe@exam{invisible}ple.com"
    assert text[:a] + text[b:] == f"to {invisible}{invisible} now"


def test_fullwidth_digits_fold_one_for_one() -> None:
    text = "SSN \uff15\uff13\uff16\uff0d\uff12\uff12\uff0d\uff11\uff12\uff13\uff14."  # fullwidth 536-22-1234
    folded = normalize(text)
    assert folded.text == "SSN 536-22-1234."
    assert folded.folds == ()  # every offset is the same: nothing to map
    assert folded.original_span(4, 15) == (4, 15)


def test_a_ligature_maps_back_whole_from_any_of_its_letters() -> None:
    text = "write to o\ufb03ce@example.com"  # "ffi" in one character
    folded = normalize(text)
    assert folded.text == "write to office@example.com"
    at = text.index("o\ufb03ce")
    assert folded.original_span(at, at + len("office@example.com")) == (at, len(text))
    assert folded.original_span(at + 1, at + 2) == (at + 1, at + 2)  # "f" of "ffi": the ligature
    assert folded.original_span(at + 2, at + 3) == (at + 1, at + 2)  # the second "f": the same
    assert folded.original_span(at + 4, at + 6) == (at + 2, at + 4)  # "ce" after it: shifted back by 2


def test_a_combining_accent_stays_apart_from_its_letter() -> None:
    """Folding is per character: `e` and U+0301 are not composed into `é`, which no pattern (all
    ASCII) would see either way; the offsets stay one for one."""
    text = "Jose\u0301 wrote to jose\u0301@example.com"
    folded = normalize(text)
    assert folded.text == text and folded.original_span(3, 5) == (3, 5)


def test_only_the_characters_outside_ascii_are_folded_and_each_maps_back() -> None:
    text = "a\u00ad1 \u2764\ufe0f b\uff12 \U0001f44d\U0001f3fd c\u2013d \ufb01 \U000e0041x"  # tag character: astral
    folded = normalize(text)
    assert folded.text == "a1 \u2764 b2 \U0001f44d\U0001f3fd c-d fi x"
    assert text[slice(*folded.original_span(0, 2))] == "a\u00ad1"
    at = folded.text.index("fi")
    assert text[slice(*folded.original_span(at, at + 1))] == "\ufb01"
    assert text[slice(*folded.original_span(len(folded.text) - 1, len(folded.text)))] == "x"


def test_dashes_become_hyphen_minus() -> None:
    for dash in DASHES:
        assert normalize(f"536{dash}22{dash}1234").text == "536-22-1234"
    assert normalize("415\u00a0555\u202f2671").text == "415 555 2671"  # no-break spaces: NFKC


def test_the_mapping_holds_for_every_span_of_mixed_texts() -> None:
    """For any span of the folded text: its original span folds to text holding it, and spans
    further right map further right."""
    pieces = ["a", "7", " ", "@", ZWSP, SOFT_HYPHEN, RLO, "\uff17", "\ufb03", "e\u0301", "\u2013", "\u00e9", "\u4e1c",
              "\U000e0041", "\U0001d7d5", "\u2764\ufe0f", "\u00bd", "\u3164"]  # tag A, bold 7, emoji, one half, filler  # fmt: skip
    rnd = random.Random(5)
    for _ in range(400):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12)))
        folded = normalize(text)
        n = len(folded.text)
        for s in range(n):
            for e in range(s + 1, n + 1):
                a, b = folded.original_span(s, e)
                assert 0 <= a < b <= len(text)
                assert folded.text[s:e] in normalize(text[a:b]).text, (text, s, e)
                if e < n:
                    assert folded.original_span(s, e + 1)[1] >= b
                    assert folded.original_span(s + 1, e + 1)[0] >= a
