"""PII written the way people (and people evading a filter) write it: found, with spans in the
text as given, by both engines; look-alikes of each not found."""

from __future__ import annotations

import pytest

from interlock.security.pii.detector import Entity, PatternDetector, without_overlaps
from interlock.security.pii.normalize import normalize

ZWSP, ZWNJ, SHY, LRM, RLO, PDF = "\u200b", "\u200c", "\u00ad", "\u200e", "\u202e", "\u202c"


@pytest.fixture(scope="module", params=[True, False], ids=["hyperscan", "re"])
def detector(request: pytest.FixtureRequest) -> PatternDetector:
    return PatternDetector(use_hyperscan=request.param, memo=0)  # compiled once per module and engine


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# (text, entity type, the value as it stands in the text)
FOUND = [
    # Invisible characters inside values
    (f"Mail jane{ZWSP}.doe@exam{ZWSP}ple.com today", "EMAIL", f"jane{ZWSP}.doe@exam{ZWSP}ple.com"),
    (f"card 4111{ZWSP}1111{ZWSP}1111{ZWSP}1111 please", "CREDIT_CARD", f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111"),
    (f"card 4111 1111{SHY} 1111 11{SHY}11 please", "CREDIT_CARD", f"4111 1111{SHY} 1111 11{SHY}11"),
    (f"SSN 536{ZWNJ}-22-12{ZWNJ}34.", "US_SSN", f"536{ZWNJ}-22-12{ZWNJ}34"),
    (f"IBAN DE89 {RLO}3704 0044{PDF} 0532 0130 00.", "IBAN", f"DE89 {RLO}3704 0044{PDF} 0532 0130 00"),
    (f"call +1 206{LRM} 442 1234 later", "PHONE", f"+1 206{LRM} 442 1234"),
    # Fullwidth digits and letters
    (f"SSN {fullwidth('536-22-1234')}, thanks", "US_SSN", fullwidth("536-22-1234")),
    (f"card {fullwidth('4111 1111 1111 1111')}", "CREDIT_CARD", fullwidth("4111 1111 1111 1111")),
    (f"mail {fullwidth('jane.doe@example.com')} now", "EMAIL", fullwidth("jane.doe@example.com")),
    ("mail o\ufb03ce@example.com now", "EMAIL", "o\ufb03ce@example.com"),  # a ligature: one character, three letters
    # Lower-case IBAN
    ("please wire it to de89 3704 0044 0532 0130 00 today", "IBAN", "de89 3704 0044 0532 0130 00"),
    ("IBAN gb82west12345698765432", "IBAN", "gb82west12345698765432"),
    # Dates of birth, in words and in numbers, after birth context
    ("I was born on 14 March 1987 in Leeds.", "DATE_OF_BIRTH", "14 March 1987"),
    ("DOB: March 14, 1987", "DATE_OF_BIRTH", "March 14, 1987"),
    ("Date of birth: 14th of March, 1987.", "DATE_OF_BIRTH", "14th of March, 1987"),
    ("Birthday: Mar. 3rd, 1990", "DATE_OF_BIRTH", "Mar. 3rd, 1990"),
    ("born 3 Sept 1990", "DATE_OF_BIRTH", "3 Sept 1990"),
    ("d.o.b. 14-Mar-1987", "DATE_OF_BIRTH", "14-Mar-1987"),
    ("date of birth 14/03/1987", "DATE_OF_BIRTH", "14/03/1987"),
    ("DOB 03/14/1987", "DATE_OF_BIRTH", "03/14/1987"),
    ("birthdate: 1987-03-14", "DATE_OF_BIRTH", "1987-03-14"),
    ("Geboren? No: born 14.03.1987", "DATE_OF_BIRTH", "14.03.1987"),
    ("birthdate 13/10/1950", "DATE_OF_BIRTH", "13/10/1950"),  # not a phone number: 1 is no country code here
    (f"born on {fullwidth('14')} March {fullwidth('1987')}", "DATE_OF_BIRTH", f"{fullwidth('14')} March {fullwidth('1987')}"),
    # Luhn-valid card numbers whose brand expects another length, after card context
    ("Card number: 3400 0000 0000 0000", "CREDIT_CARD", "3400 0000 0000 0000"),  # Amex prefix, 16 digits
    ("Card number: 4000 0000 0000 0000 6", "CREDIT_CARD", "4000 0000 0000 0000 6"),  # Visa prefix, 17 digits
    ("debit card 6200000000000005", "CREDIT_CARD", "6200000000000005"),  # UnionPay: no brand rule here
    # Separators: space, dot, dash, slash, none
    *[(f"card {v}", "CREDIT_CARD", v) for v in ("4111 1111 1111 1111", "4111.1111.1111.1111", "4111-1111-1111-1111", "4111/1111/1111/1111", "4111111111111111")],
    *[(f"SSN {v}", "US_SSN", v) for v in ("536 22 1234", "536.22.1234", "536-22-1234", "536/22/1234", "536221234")],
    *[(f"phone {v}", "PHONE", v) for v in ("206 442 1234", "206.442.1234", "206-442-1234", "206/442/1234", "2064421234")],
    *[(f"IBAN {v}", "IBAN", v) for v in ("DE89 3704 0044 0532 0130 00", "DE89.3704.0044.0532.0130.00", "DE89-3704-0044-0532-0130-00", "DE89/3704/0044/0532/0130/00", "DE89370400440532013000")],
    (f"SSN 536{fullwidth('-')}22\u201312\u00ad34", "US_SSN", f"536{fullwidth('-')}22\u201312\u00ad34"),  # mixed dashes
    ("call 206\u00a0442\u00a01234", "PHONE", "206\u00a0442\u00a01234"),  # no-break spaces
]  # fmt: skip

NOT_FOUND = [
    # Dates that are not birthdays, or not dates
    "The invoice dated 14 March 2023 is overdue.",
    "We met on March 14, 1987 at the fair.",
    "Released 2021-06-01; see the notes from 14/03/2023.",
    "The stubborn printer jammed on 14 March 2023.",  # "born" inside a word is no context
    "Adobe 2023-04-05 release notes",  # nor is "dob"
    "born on 31 February 1987",  # no such day
    "DOB: 1987-13-45",
    "born in 1/2/3",
    "date of birth February 31, 1969",  # not "February" either, once the rest is cut off
    "Born June 31 1996 in Ohio.",
    # Card numbers: Luhn fails, too short, or no context for a brand mismatch
    "Card number: 4111 1111 1111 1112",
    "Card number: 9876 5432 103",  # Luhn-valid, 11 digits
    "Reference 3400 0000 0000 0000 for the parcel",  # Luhn-valid, Amex prefix, 16 digits, no card context
    f"Ref {fullwidth('4111 1111 1111 1112')}",
    # Order ids, versions and the like with separators and evasions
    "Order number 4111-1111-1111-1112 shipped.",  # a card's shape after "order", Luhn fails
    "Upgrade to version 10.4.2.1987 first.",
    "Build 1.22.333 fixed it.",
    "ISBN 978-0-12-345678-9",
    f"Ticket {fullwidth('123456789')} was closed.",
    "The IBAN de89 3704 0044 0532 0130 01 failed its checksum.",
    "IBAN: NL78 WRET 4108 1554 96",  # a bad IBAN; its last ten digits are no phone number
    "SSN 000-12-3456 is never issued",
    f"SSN 666{ZWSP}-12-3456 neither",
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND, ids=[f"{k}:{v!r}" for _, k, v in FOUND])
def test_each_evasion_is_found_with_its_span_in_the_text_as_given(
    detector: PatternDetector, text: str, kind: str, value: str
) -> None:
    found = [(e.type, text[e.start : e.end]) for e in detector.detect(text)]
    assert (kind, value) in found, found


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_are_not_found(detector: PatternDetector, text: str) -> None:
    assert not [(e.type, text[e.start : e.end]) for e in detector.detect(text)]


def redact(text: str, detector: PatternDetector) -> str:
    """What the DLP stage does with the spans: replace each, from the end."""
    for e in reversed(detector.detect(text)):
        text = text[: e.start] + f"[{e.type}]" + text[e.end :]
    return text


@pytest.mark.parametrize(("text", "kind", "value"), FOUND, ids=[f"{k}:{v!r}" for _, k, v in FOUND])
def test_acting_on_a_span_leaves_nothing_of_the_value(
    detector: PatternDetector, text: str, kind: str, value: str
) -> None:
    out = redact(text, detector)
    assert f"[{kind}]" in out
    core = "".join(c for c in normalize(value).text if c.isalnum())
    assert core not in "".join(c for c in normalize(out).text if c.isalnum())
    assert not any(c in out for c in (ZWSP, ZWNJ, SHY, LRM, RLO, PDF) if c in value)  # not even the invisible ones


def test_both_engines_agree_on_every_case() -> None:
    hs, rx = PatternDetector(memo=0), PatternDetector(use_hyperscan=False, memo=0)
    for text in [t for t, _, _ in FOUND] + NOT_FOUND:
        assert hs.detect(text) == rx.detect(text), text


def test_spans_of_several_values_in_one_folded_text_all_map_back(detector: PatternDetector) -> None:
    text = (
        f"{fullwidth('SSN')} {fullwidth('536-22-1234')}, mail o\ufb03ce{ZWSP}@example.com, born 14\u00a0March\u00a01987"
    )
    found = {(e.type, text[e.start : e.end]) for e in detector.detect(text)}
    assert found == {
        ("US_SSN", fullwidth("536-22-1234")),
        ("EMAIL", f"o\ufb03ce{ZWSP}@example.com"),
        ("DATE_OF_BIRTH", "14\u00a0March\u00a01987"),
    }


def test_merged_findings_cover_every_part_of_those_they_beat() -> None:
    """As the DLP stage merges the entity model's findings with the patterns': the surer one's
    type is kept, and its span grows over what the beaten one held beyond it."""
    text = "D.O.B. Jan. 29th, 1961, Li Wei at li.wei@contoso.com"
    dob = Entity("DATE_OF_BIRTH", 7, 22, 0.55)  # "Jan. 29th, 1961"
    person = Entity("PERSON", 7, 10, 0.85)  # "Jan", as spaCy may read it
    email = Entity("EMAIL", 34, 52, 0.9)
    names = Entity("PERSON", 24, 40, 0.85)  # "Li Wei at li.wei": reaches into the email
    merged = without_overlaps([dob, person, email, names])
    assert [(e.type, text[e.start : e.end]) for e in merged] == [
        ("PERSON", "Jan. 29th, 1961"),
        ("EMAIL", "Li Wei at li.wei@contoso.com"),
    ]
    bridge = Entity("PHONE", 5, 40, 0.3)  # overlaps both kept ones: the gap between them is closed
    assert [(e.start, e.end) for e in without_overlaps([person, email, bridge])] == [(5, 34), (34, 52)]
    assert without_overlaps([person, email]) == [person, email]  # nothing beaten: nothing changes


def test_a_generated_sample_of_every_class_is_found_alike_by_both_engines() -> None:
    """bench/pii/evasion.py's own generator: each positive found with its type, no look-alike
    found, the same entities from Hyperscan and from `re`."""
    from bench.pii import evasion

    hs, rx = PatternDetector(memo=0), PatternDetector(use_hyperscan=False, memo=0)
    for s in evasion.generate(per_class=12, negatives=6, seed=5):
        found = hs.detect(s.text)
        assert found == rx.detect(s.text), s.text
        kept = [e for e in found if e.type in evasion.TYPES]
        if s.kind == "negative":
            assert not kept, (s.evasion, s.lookalike, s.text)
        for gold in s.entities:
            assert any(e.type == gold["type"] and e.start < gold["end"] and gold["start"] < e.end for e in kept), (
                s.evasion,
                s.text,
            )
