from __future__ import annotations

import pytest

from interlock.security.pii.detector import PatternDetector

TEXT = (
    "Mail bob.smith@example.co.uk or call +1 (415) 555-2671. SSN 536-22-1234, card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, ip 10.1.2.3, born 1984-03-12, key AKIAIOSFODNN7EXAMPLE, "
    "db https://u:pw@db.example.com/x, order 4155552671, version 1.2.3.4.5"
)
EXPECTED = {
    ("EMAIL", "bob.smith@example.co.uk"), ("PHONE", "+1 (415) 555-2671"), ("US_SSN", "536-22-1234"),
    ("CREDIT_CARD", "4111 1111 1111 1111"), ("IBAN", "DE89 3704 0044 0532 0130 00"), ("IP_ADDRESS", "10.1.2.3"),
    ("DATE_OF_BIRTH", "1984-03-12"), ("SECRET", "AKIAIOSFODNN7EXAMPLE"), ("URL_CREDENTIALS", "https://u:pw@db.example.com"),
}  # fmt: skip


@pytest.mark.parametrize("hyperscan", [True, False], ids=["hyperscan", "re"])
def test_finds_each_kind_and_ignores_look_alikes(hyperscan: bool) -> None:
    found = {(e.type, TEXT[e.start : e.end]) for e in PatternDetector(use_hyperscan=hyperscan).detect(TEXT)}
    assert found == EXPECTED  # not the order number (context), not the version string


def test_checksums_decide() -> None:
    d = PatternDetector()
    assert not d.detect("card 4111 1111 1111 1112")  # fails Luhn
    assert not d.detect("IBAN DE89 3704 0044 0532 0130 01")  # bad check digits
    assert not d.detect("ssn 000-12-3456")  # area 000 is never issued


def test_offsets_are_in_characters_for_non_ascii_text() -> None:
    text = "Grüße an jürgen@example.de, Ünïcödé"
    (e,) = PatternDetector().detect(text)
    assert text[e.start : e.end] == "jürgen@example.de"[1:] or text[e.start : e.end].endswith("@example.de")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 0044 121 234 7989 now", ("PHONE", "0044 121 234 7989")),  # 00 written for +
        ("ring +468123257 today", ("PHONE", "+468123257")),  # not an SSN inside a phone number
        ("invoice sent. SSN 536-22-1234.", ("US_SSN", "536-22-1234")),  # boost and dampen cancel exactly
        ("host 36ee:93a0:bcf6:b676:200a:: up", ("IP_ADDRESS", "36ee:93a0:bcf6:b676:200a::")),
        ("IBAN DE89 3704 0044 0532 0130 00 I am", ("IBAN", "DE89 3704 0044 0532 0130 00")),  # not "00 I"
    ],
)
def test_misses_found_by_the_benchmark(text: str, expected: tuple[str, str]) -> None:
    assert [(e.type, text[e.start : e.end]) for e in PatternDetector().detect(text)] == [expected]


def test_recent_texts_are_remembered_by_digest_not_by_text() -> None:
    d = PatternDetector(memo=2)
    text = "Mail jane.doe@example.com or call +1 415 555 0100."
    first = d.detect(text)
    assert d.detect(text) == first and d.detect(text) is not first  # a copy: callers may change it
    assert all(isinstance(k, bytes) and len(k) == 16 for k in d._memo)
    assert not any(text.encode() in k or b"jane" in k for k in d._memo)
    d.detect("another text")
    d.detect("a third text")
    assert len(d._memo) == 2  # bounded: the oldest went
    assert d.detect(text) == first
    long = "x" * 5000 + " jane.doe@example.com"
    assert [e.type for e in PatternDetector().detect(long)] == ["EMAIL"]
