"""An evasion corpus: PII written the way people, and people evading a filter, write it, and
look-alikes of each kind. Every sentence is labelled with its evasion class.

Rows as corpus.py writes them ({"id", "kind", "text", "entities": [{"type", "start", "end",
"format"}], "lookalike"}), plus "evasion": the class. A positive row holds one value of one type,
its span in the text as written (the invisible characters inside a value are inside its span); a
negative row holds look-alikes of its class only, so anything found there is a false positive.

Classes, and the types each covers:

- zero-width, soft-hyphen, bidi: 1-3 invisible characters inside the value (zero-width space,
  non-joiner, joiner, word joiner, BOM; U+00AD; bidi marks, or a stretch wrapped in an embedding,
  override or isolate); EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, DATE_OF_BIRTH.
- fullwidth: the value's ASCII in fullwidth forms (U+FF01-FF5E); the same six types.
- ligature: an email address with `ff`, `fi`, `fl`, `ffi` or `ffl` in one character (U+FB00-FB04).
- iban-lower-case: an IBAN in lower case, grouped or not.
- dob-written: a date of birth with the month in words (14 March 1987, March 14, 1987, 14th of
  March, 1987, Mar. 3rd, 1990, 14-Mar-1987) after birth context (born, DOB, date of birth, birthday).
- dob-numeric: the same with the month in digits (14/03/1987, 03/14/1987, 1987-03-14, 14.03.87).
- card-brand-mismatch: a Luhn-valid number of 13-19 digits after card context whose prefix's
  network has no card of that length (an Amex prefix with 16 digits, a Visa one with 17), or whose
  network has no length rule at all (UnionPay 62, Maestro 50, Mir 2200-2204).
- separator-space, -dot, -dash, -slash, -none: the groups of a card number, an SSN, a US phone
  number or an IBAN joined by that separator.
- unicode-space, unicode-dash: the same joined by a no-break, thin, figure or ideographic space,
  or by a hyphen, en dash, minus sign, fullwidth or small hyphen-minus.

Negatives, per class: cards that fail Luhn, SSNs never issued, IBANs failing mod 97, dates that are
not birthdays (or not days: 31 February) with birth context, Luhn-valid brand mismatches without
card context, card-context numbers of 12 digits, version numbers, order and ticket ids, ISBNs; each
written with the class's evasion (invisible characters, fullwidth, the separator). Every positive
value is valid by construction and checked (Luhn, `stdnum`, `phonenumbers`, `datetime`), every
negative invalid where that is decidable.

Needs no Faker (only `random`, python-stdnum and phonenumbers, the gateway's own dependencies), so
tests generate samples with the same code: tests/integration/test_pii_evasion.py.

    .venv/bin/python bench/pii/evasion.py [--per-class 150] [--negatives 60] [--seed 11] [--out bench/pii/evasion.jsonl]
"""

from __future__ import annotations

import argparse
import datetime
import random
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.us import ssn as std_ssn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # corpus.py beside it, also when imported from tests/

from corpus import (  # noqa: E402
    BRANDS,
    FILLERS,
    TEMPLATES,
    Sentence,
    bad_ssn,
    grouped,
    intl_phone,
    luhn_number,
    not_luhn,
    ssn_digits,
    us_phone,
    write,
)

DEFAULT_OUT = HERE / "evasion.jsonl"
TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "DATE_OF_BIRTH")
INVISIBLE = {
    "zero-width": ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"),
    "soft-hyphen": ("\u00ad",),
    "bidi": ("\u200e", "\u200f", "\u061c"),  # LRM, RLM, ALM; and the pairs below
}
BIDI_PAIRS = (("\u202a", "\u202c"), ("\u202b", "\u202c"), ("\u202d", "\u202c"), ("\u202e", "\u202c"),
              ("\u2066", "\u2069"), ("\u2067", "\u2069"), ("\u2068", "\u2069"))  # fmt: skip
SEPARATORS = {
    "separator-space": " ",
    "separator-dot": ".",
    "separator-dash": "-",
    "separator-slash": "/",
    "separator-none": "",
}
UNICODE_SPACES = ("\u00a0", "\u2009", "\u2007", "\u202f", "\u3000")
UNICODE_DASHES = ("\u2010", "\u2011", "\u2013", "\u2212", "\uff0d", "\ufe63")
NUMBER_TYPES = ("CREDIT_CARD", "US_SSN", "PHONE", "IBAN")
CLASSES: dict[str, tuple[str, ...]] = {
    **{name: TYPES for name in (*INVISIBLE, "fullwidth")},
    "ligature": ("EMAIL",),
    "iban-lower-case": ("IBAN",),
    "dob-written": ("DATE_OF_BIRTH",),
    "dob-numeric": ("DATE_OF_BIRTH",),
    "card-brand-mismatch": ("CREDIT_CARD",),
    **{name: NUMBER_TYPES for name in (*SEPARATORS, "unicode-space", "unicode-dash")},
}

FIRST = ("maria", "li", "oliver", "fiona", "florian", "raffaella", "wei", "jane", "griffin", "aoife",
         "steffi", "filip", "ahmed", "priya", "sofia", "mateo", "chloe", "duffy", "olaf", "yuki")  # fmt: skip
LAST = ("garcia", "wei", "smith", "mcduff", "offermann", "schaffer", "flores", "nguyen", "obrien",
        "kowalski", "fischer", "ruffo", "sato", "patel", "moffat", "hoffman", "larsen", "silva")  # fmt: skip
DOMAINS = ("contoso.com", "fabrikam.io", "mail.northwind.co.uk", "adatum.de", "proton.me", "gmail.com",
           "outlook.com", "office.example.org", "fieldwork.net", "staff.tailspin.fr")  # fmt: skip
NAMES = ("Maria Garcia", "Li Wei", "Oliver Smith", "Aoife O'Brien", "Priya Patel", "Mateo Silva")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
LIGATURES = {"ffi": "\ufb03", "ffl": "\ufb04", "ff": "\ufb00", "fi": "\ufb01", "fl": "\ufb02"}

# ISO 13616 national formats: n digits, a upper-case letters, c either. Check digits by stdnum.
IBAN_FORMATS = {"DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n", "IT": "1a10n12c",
                "PL": "24n", "FI": "14n", "AT": "16n", "CH": "5n12c", "BE": "12n", "PT": "21n"}  # fmt: skip

BIRTH = ("I was born on {v}.", "DOB: {v}", "Date of birth: {v}", "date of birth {v}, place of birth Leeds",
         "Her birthday is {v}.", "Patient {name}, born {v}, was admitted.", "D.O.B. {v}", "Born {v} in Ohio.",
         "birthdate {v}", "{name} (born {v}) joined in spring.")  # fmt: skip
NOT_BIRTH = ("The invoice dated {v} is overdue.", "We met on {v} at the fair.", "The contract runs until {v}.",
             "Shipped on {v}, arrived late.", "The release of {v} fixed the crash.", "Deadline: {v}",
             "The meeting on {v} moved to the third floor.", "Prices change from {v}.")  # fmt: skip
CARD_CONTEXT = ("Card number: {v}", "My card number is {v}, expiry 04/27.", "Please charge my credit card {v}.",
                "Debit card {v} was declined.", "Card: {v}", "Pay with the card {v} today.")  # fmt: skip
NO_CARD_CONTEXT = ("Reference {v} for the parcel.", "Parcel id {v} is in the depot.", "Our file number is {v}.",
                   "Batch {v} passed the checks.")  # fmt: skip
CONTEXT = {"CREDIT_CARD": "Card number: {v}", "US_SSN": "SSN: {v}", "IBAN": "IBAN: {v}", "PHONE": "Phone: {v}"}


@dataclass(frozen=True)
class Value:
    """A value as groups (joined by a separator) or as one piece (groups of one)."""

    groups: tuple[str, ...]
    sep: str = " "
    label: str = ""

    def text(self, sep: str | None = None) -> str:
        return (self.sep if sep is None else sep).join(self.groups)


# ---------------------------------------------------------------------------------------------
# Valid values


def email(rnd: random.Random) -> Value:
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    local = rnd.choice((f"{first}.{last}", f"{first}_{last}", f"{first[0]}{last}", f"{first}+billing"))
    return Value((f"{local}@{rnd.choice(DOMAINS)}",), label="email")


def card(rnd: random.Random) -> Value:
    brand, prefixes, lengths, groups = rnd.choice(BRANDS)
    digits = luhn_number(rnd, rnd.choice(prefixes), rnd.choice(lengths))
    return Value(tuple(grouped(digits, groups, " ").split(" ")), label=f"{brand}-{len(digits)}")


def ssn(rnd: random.Random) -> Value:
    digits = ssn_digits(rnd)
    return Value((digits[:3], digits[3:5], digits[5:]), "-", "ssn")


def phone(rnd: random.Random) -> Value:
    if rnd.random() < 0.6:
        a, e, n = us_phone(rnd)
        return Value((str(a), str(e), f"{n:04d}"), rnd.choice((" ", "-", ".")), "us")
    text, label = intl_phone(rnd)  # +44 20 7946 0958, +442079460958 or 0044 20 7946 0958
    return Value(tuple(text.split(" ")), label=label)


def iban(rnd: random.Random, country: str | None = None) -> Value:
    while True:
        cc = country or rnd.choice(sorted(IBAN_FORMATS))
        bban = "".join(_chars(rnd, int(spec[:-1]), spec[-1]) for spec in _specs(IBAN_FORMATS[cc]))
        value = cc + std_iban.calc_check_digits(cc + "00" + bban) + bban
        if std_iban.is_valid(value):  # and any national check (Belgium's, Spain's, France's key)
            return Value(tuple(value[i : i + 4] for i in range(0, len(value), 4)), label=cc)


def _specs(fmt: str) -> list[str]:
    out, number = [], ""
    for c in fmt:
        number += c
        if not c.isdigit():
            out.append(number)
            number = ""
    return out


def _chars(rnd: random.Random, n: int, kind: str) -> str:
    alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + string.ascii_uppercase}[kind]
    return "".join(rnd.choice(alphabet) for _ in range(n))


def birth_date(rnd: random.Random) -> datetime.date:
    return datetime.date(1930, 1, 1) + datetime.timedelta(days=rnd.randrange(80 * 365))


def written_date(rnd: random.Random, day: datetime.date, garbled: bool = False) -> Value:
    """The month in words, in one of the ways English writes it."""
    month = MONTHS[day.month - 1]
    short = "Sept" if month == "September" and rnd.random() < 0.5 else month[:3]
    name = rnd.choice((month, short, short + "."))
    d = 31 if garbled else day.day  # garbled: the 31st of a month without one
    if garbled:
        name = rnd.choice(("February", "April", "June", "September", "November", "Feb", "Apr", "Jun", "Nov"))
    nth = f"{d}{'th' if 11 <= d <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"
    forms = (
        (f"{d} {name} {day.year}", "d-month-y"), (f"{nth} of {name}, {day.year}", "nth-of-month-y"),
        (f"{name} {d}, {day.year}", "month-d-y"), (f"{name} {nth}, {day.year}", "month-nth-y"),
        (f"{nth} {name} {day.year}", "nth-month-y"), (f"{d}-{name.rstrip('.')}-{day.year}", "d-mon-y"),
        (f"{name} {d} {day.year}", "month-d-y-no-comma"),
    )  # fmt: skip
    text, label = rnd.choice(forms)
    return Value(tuple(text.split(" ")), label=label)


def numeric_date(rnd: random.Random, day: datetime.date, garbled: bool = False) -> Value:
    d, m, y = day.day, day.month, day.year
    if garbled:  # a day above 31 and a month above 12: no reading of it is a day
        d, m = rnd.randint(32, 39), rnd.randint(13, 19)
    forms = (
        (f"{d:02d}/{m:02d}/{y}", "dd/mm/yyyy"), (f"{m:02d}/{d:02d}/{y}", "mm/dd/yyyy"), (f"{y}-{m:02d}-{d:02d}", "iso"),
        (f"{d:02d}.{m:02d}.{y}", "dd.mm.yyyy"), (f"{d}/{m}/{y}", "d/m/yyyy"), (f"{d:02d}-{m:02d}-{y}", "dd-mm-yyyy"),
        (f"{y}/{m:02d}/{d:02d}", "yyyy/mm/dd"), (f"{d:02d}.{m:02d}.{y % 100:02d}", "dd.mm.yy"),
    )  # fmt: skip
    text, label = rnd.choice(forms)
    return Value((text,), label=label)


def dob(rnd: random.Random) -> Value:
    day = birth_date(rnd)
    return written_date(rnd, day) if rnd.random() < 0.5 else numeric_date(rnd, day)


# (prefix, lengths): a network's prefix at lengths it never issues, or a network without a rule.
MISMATCHED = (
    ("34", (16, 17), "amex-prefix"), ("37", (13, 16), "amex-prefix"), ("4", (14, 15, 17, 18), "visa-prefix"),
    ("51", (15, 17, 18), "mastercard-prefix"), ("55", (14, 19), "mastercard-prefix"),
    ("62", (16, 17, 18, 19), "unionpay"), ("50", (16, 18), "maestro"), ("2200", (16,), "mir"),
    ("2204", (16,), "mir"),
)  # fmt: skip


def mismatched_card(rnd: random.Random) -> Value:
    prefix, lengths, label = rnd.choice(MISMATCHED)
    digits = luhn_number(rnd, prefix, rnd.choice(lengths))
    groups = tuple(digits[i : i + 4] for i in range(0, len(digits), 4))
    return Value(groups if rnd.random() < 0.7 else (digits,), label=f"{label}-{len(digits)}")


VALUES: dict[str, Callable[[random.Random], Value]] = {
    "EMAIL": email, "PHONE": phone, "CREDIT_CARD": card, "IBAN": iban, "US_SSN": ssn, "DATE_OF_BIRTH": dob,
}  # fmt: skip


def check(kind: str, text: str) -> None:
    """Every positive value is valid by construction; this says so before it is written."""
    compact = "".join(c for c in text if c.isalnum()).upper()
    if kind == "CREDIT_CARD":
        assert 13 <= len(compact) <= 19 and luhn.is_valid(compact), text
    elif kind == "IBAN":
        assert std_iban.is_valid(compact), text
    elif kind == "US_SSN":
        assert std_ssn.is_valid(compact), text
    elif kind == "PHONE":
        number = "+" + text[2:] if text.startswith("00") else text
        assert phonenumbers.is_valid_number(phonenumbers.parse(number, None if number.startswith("+") else "US")), text


# ---------------------------------------------------------------------------------------------
# Evasions: each turns the text of a value into the text as written


def hide(rnd: random.Random, text: str, evasion: str) -> str:
    """1-3 invisible characters of the class at interior positions (never first or last)."""
    if len(text) < 3:
        return text
    if evasion == "bidi" and rnd.random() < 0.5:
        opening, closing = rnd.choice(BIDI_PAIRS)
        i = rnd.randrange(1, len(text) - 1)
        j = rnd.randrange(i + 1, len(text))
        return text[:i] + opening + text[i:j] + closing + text[j:]
    positions = sorted(rnd.sample(range(1, len(text)), min(rnd.randint(1, 3), len(text) - 1)), reverse=True)
    for i in positions:
        text = text[:i] + rnd.choice(INVISIBLE[evasion]) + text[i:]
    return text


def fullwidth(text: str, rnd: random.Random | None = None) -> str:
    """ASCII in its fullwidth forms; a space stays a space, or (half the time) becomes U+3000."""
    wide_space = rnd is not None and rnd.random() < 0.5
    return "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " and wide_space else c) for c in text
    )


def ligature(rnd: random.Random) -> str:
    while True:
        text = email(rnd).text()
        pairs = [(k, text.index(k)) for k in LIGATURES if k in text]
        if pairs:
            k, i = rnd.choice(pairs)
            return text[:i] + LIGATURES[k] + text[i + len(k) :]


def write_value(rnd: random.Random, evasion: str, kind: str) -> tuple[str, str, str]:
    """(value as written, its plain form before the evasion, format label) for a positive."""
    if evasion == "ligature":
        text = ligature(rnd)
        return text, text, "ligature"
    if evasion == "card-brand-mismatch":
        value = mismatched_card(rnd)
        return value.text(), value.text(), value.label
    if evasion == "dob-written":
        value = written_date(rnd, birth_date(rnd))
        return value.text(), value.text(), value.label
    if evasion == "dob-numeric":
        value = numeric_date(rnd, birth_date(rnd))
        return value.text(), value.text(), value.label
    value = VALUES[kind](rnd)
    if evasion == "iban-lower-case":
        plain = value.text(rnd.choice((" ", "")))
        return plain.lower(), plain, value.label
    if evasion in SEPARATORS:
        plain = value.text(SEPARATORS[evasion])
        return plain, plain, value.label
    if evasion in ("unicode-space", "unicode-dash"):
        sep = rnd.choice(UNICODE_SPACES if evasion == "unicode-space" else UNICODE_DASHES)
        return value.text(sep), value.text(), f"{value.label}-U+{ord(sep):04X}"
    plain = value.text()
    if evasion == "fullwidth":
        return fullwidth(plain, rnd), plain, value.label
    return hide(rnd, plain, evasion), plain, value.label


def template_for(rnd: random.Random, evasion: str, kind: str) -> str:
    if kind == "DATE_OF_BIRTH":
        return rnd.choice(BIRTH)
    if evasion == "card-brand-mismatch":
        return rnd.choice(CARD_CONTEXT)
    return rnd.choice(TEMPLATES[kind])


def positive(i: int, rnd: random.Random, evasion: str, kind: str) -> Sentence:
    written, plain, label = write_value(rnd, evasion, kind)
    check(kind, plain)
    before, _, after = template_for(rnd, evasion, kind).partition("{v}")
    name = rnd.choice(NAMES)
    before, after = before.replace("{name}", name), after.replace("{name}", name)
    prefix = f"{rnd.choice(FILLERS)} " if rnd.random() < 0.3 else ""
    s = Sentence(i, "positive", evasion=evasion)
    start = len(prefix) + len(before)
    s.text = prefix + before + written + after
    s.entities.append({"type": kind, "start": start, "end": start + len(written), "format": label})
    return s


# ---------------------------------------------------------------------------------------------
# Look-alikes: (text before the evasion is applied to its number, the number, label)


def _digits(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(string.digits) for _ in range(n))


def _bad_iban(rnd: random.Random) -> str:
    value = iban(rnd).text("")
    check_digits = int(value[2:4])
    while True:
        broken = value[:2] + f"{(check_digits + rnd.randint(1, 50)) % 97 + 2:02d}" + value[4:]
        if not std_iban.is_valid(broken):
            return broken


def _bad_luhn(rnd: random.Random, prefix: str, length: int) -> str:
    """Fails Luhn, as does every number of 13 digits or more that it starts with: a validator
    that drops a trailing group must not find a card in it either."""
    while True:
        digits = not_luhn(rnd, prefix, length)
        if not any(luhn.is_valid(digits[:n]) for n in range(13, length)):
            return digits


def _four(text: str, sep: str) -> str:
    return sep.join(text[i : i + 4] for i in range(0, len(text), 4))


def lookalike(rnd: random.Random, evasion: str) -> tuple[str, str, str]:
    """A template with {v}, the look-alike that goes there (before the class's evasion), a label."""
    sep = SEPARATORS.get(evasion, " ")
    if evasion in ("dob-written", "dob-numeric"):
        written = evasion == "dob-written"
        make = written_date if written else numeric_date
        if rnd.random() < 0.7:  # a real date, not a birthday
            day = datetime.date(1990, 1, 1) + datetime.timedelta(days=rnd.randrange(40 * 365))
            return rnd.choice(NOT_BIRTH), make(rnd, day).text(), "date-not-birthday"
        return rnd.choice(BIRTH), make(rnd, birth_date(rnd), garbled=True).text(), "no-such-day"
    if evasion == "card-brand-mismatch":
        choice = rnd.random()
        if choice < 0.4:
            prefix, lengths, _ = rnd.choice(MISMATCHED)
            return rnd.choice(CARD_CONTEXT), _four(_bad_luhn(rnd, prefix, rnd.choice(lengths)), " "), "bad-luhn"
        if choice < 0.7:
            return rnd.choice(NO_CARD_CONTEXT), mismatched_card(rnd).text(), "mismatch-without-card-context"
        return rnd.choice(CARD_CONTEXT), _four(luhn_number(rnd, "9", 12), " "), "luhn-12-digits"
    if evasion == "iban-lower-case":
        if rnd.random() < 0.6:
            return (
                "The IBAN {v} failed its checksum.",
                _four(_bad_iban(rnd), rnd.choice((" ", ""))).lower(),
                "bad-check",
            )
        while True:  # two letters, two digits, then letters and digits: an IBAN's shape, not one
            word = "".join(rnd.choice(string.ascii_lowercase) for _ in range(2)) + _digits(rnd, 2)
            word += "".join(rnd.choice(string.ascii_lowercase + string.digits) for _ in range(rnd.randint(12, 20)))
            if not std_iban.is_valid(word.upper()):
                return "Commit {v} fixed the build.", word, "hash-like"
    if evasion == "ligature":
        return "Meet at the {v} @ 10 in room five.", rnd.choice(("o\ufb03ce", "sta\ufb00", "\ufb01eld")), "no-address"
    kind = rnd.randrange(8)
    if kind == 0:
        prefix = rnd.choice(("4", "51", "55", "37", "6011"))
        digits = not_luhn(rnd, prefix, 15 if prefix == "37" else 16)
        return CONTEXT["CREDIT_CARD"], grouped(digits, (4, 4, 4, 4), sep), "card-bad-luhn"
    if kind == 1:
        return CONTEXT["US_SSN"], bad_ssn(rnd, sep if evasion in SEPARATORS else "-"), "ssn-never-issued"
    if kind == 2:
        return CONTEXT["IBAN"], _four(_bad_iban(rnd), sep), "iban-bad-check"
    if kind == 3:
        return "Order number {v} shipped on time.", sep.join(_digits(rnd, 4) for _ in range(3)), "order-id"
    if kind == 4:
        v = ".".join(str(rnd.randint(0, n)) for n in (20, 30, 2030, 999))
        return "Upgrade to version {v} before the release.", v, "version-number"
    if kind == 5:
        return "Ticket {v} was closed.", sep.join((_digits(rnd, 3), _digits(rnd, 3), _digits(rnd, 3))), "ticket-id"
    if kind == 6:
        day = datetime.date(1990, 1, 1) + datetime.timedelta(days=rnd.randrange(40 * 365))
        return rnd.choice(NOT_BIRTH), numeric_date(rnd, day).text(), "date-not-birthday"
    isbn = sep.join(("978", str(rnd.randint(0, 9)), _digits(rnd, 2), _digits(rnd, 6), str(rnd.randint(0, 9))))
    return "ISBN {v} is out of print.", isbn, "isbn"


def negative(i: int, rnd: random.Random, evasion: str) -> Sentence:
    template, value, label = lookalike(rnd, evasion)
    if evasion in INVISIBLE:
        value = hide(rnd, value, evasion)
    elif evasion == "fullwidth":
        value = fullwidth(value, rnd)
    elif evasion in ("unicode-space", "unicode-dash"):
        value = value.replace(" ", rnd.choice(UNICODE_SPACES if evasion == "unicode-space" else UNICODE_DASHES))
    s = Sentence(i, "negative", lookalike=label, evasion=evasion)
    prefix = f"{rnd.choice(FILLERS)} " if rnd.random() < 0.3 else ""
    s.text = prefix + template.replace("{name}", rnd.choice(NAMES)).replace("{v}", value)
    return s


def generate(per_class: int = 150, negatives: int = 60, seed: int = 11) -> list[Sentence]:
    """`per_class` positives for each class (its types in turn) and `negatives` look-alikes."""
    rnd = random.Random(seed)
    out: list[Sentence] = []
    for evasion, kinds in CLASSES.items():
        for n in range(per_class):
            out.append(positive(len(out), rnd, evasion, kinds[n % len(kinds)]))
        for _ in range(negatives):
            out.append(negative(len(out), rnd, evasion))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--negatives", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    corpus = generate(args.per_class, args.negatives, args.seed)
    write(args.out, corpus)
    size = sum(len(s.text.encode()) for s in corpus)
    positives = sum(1 for s in corpus if s.kind == "positive")
    print(f"{args.out}: {len(corpus)} sentences ({positives} positive) in {len(CLASSES)} classes, {size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
