"""Deciding candidates with well-kept libraries instead of hand-written checksums and calendars."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime

import phonenumbers
from dateutil import parser as dateparser
from stdnum import iban, luhn
from stdnum.us import ssn

from .patterns import SEPARATORS

_UNSEPARATED = str.maketrans("", "", SEPARATORS)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


# (prefixes, allowed lengths) of the card networks: Visa, Mastercard, Amex, Discover, JCB, Diners.
_CARD_BRANDS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("4",), (13, 16, 19)),
    (tuple(str(n) for n in (*range(51, 56), *range(2221, 2721))), (16,)),
    (("34", "37"), (15,)),
    (("6011", "65", *(str(n) for n in range(644, 650))), (16, 17, 18, 19)),
    (("35",), (16, 17, 18, 19)),
    (("36", "38", "39", *(str(n) for n in range(300, 306))), (14, 15, 16, 17, 18, 19)),
)


def credit_card(text: str) -> bool:
    digits = _digits(text)
    if not luhn.is_valid(digits):
        return False
    return any(digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in _CARD_BRANDS)


def card_number(text: str) -> bool:
    """Any Luhn-valid number of 13 to 19 digits, whatever its prefix: what a card number is when
    the words before it say so ("Card number: ..."). The brands' rules miss new ranges and
    networks (UnionPay, Maestro, Mir, RuPay), and a DLP filter should not let one through."""
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and bool(luhn.is_valid(digits))


def iban_number(text: str) -> bool:
    return bool(iban.is_valid(text.translate(_UNSEPARATED).upper()))


def us_ssn(text: str) -> bool:
    return bool(ssn.is_valid(_digits(text)))


def phone(text: str) -> bool:
    digits = _digits(text)
    if not 7 <= len(digits) <= 15:
        return False
    if text.startswith("00"):  # the international prefix written out: 0044 ... is +44 ...
        text = "+" + text[2:]
    # Without a country code it is read as a US number: ten digits, or eleven after a 1. (Else
    # phonenumbers takes the 1 of 13/10/1950 for the country code and 3101950 for a number.)
    if not text.startswith("+") and len(digits) not in (10, 11):
        return False
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def ip_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_unspecified or (address.version == 6 and text.count(":") < 3))


# dateutil fills what a text leaves out from a default: a text is a whole date when two defaults
# that differ in every field give the same day.
_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))


def date(text: str) -> bool:
    """A whole, real calendar day (no 31 February, no month 13, not "February" alone, which is
    what is left when a trailing group is cut off) between 1900 and 2100, by dateutil, in any of
    the forms the patterns propose: numeric (14/03/1987, 03/14/1987, 1987-03-14, 14.03.87) or with
    the month in words (14th of March, 1987; Mar. 14, 1987)."""
    parts = [p for p in text.replace("/", "-").replace(".", "-").split("-") if p]
    numeric = all(p.isdigit() for p in parts)
    # Numeric dates start with a year of four digits, or end with one of two or four (1/2/3 is none).
    if numeric and (len(parts) != 3 or not (len(parts[0]) == 4 or (len(parts[0]) <= 2 and len(parts[2]) in (2, 4)))):
        return False
    try:  # dateutil reads 14/03/1987 as 14 March: a number above 12 cannot be the month
        first, second = (dateparser.parse(text, default=default) for default in _DEFAULTS)
    except (ValueError, OverflowError):  # dateutil's ParserError is a ValueError
        return False
    return first == second and 1900 <= first.year <= 2100


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": credit_card,
    "IBAN": iban_number,
    "US_SSN": us_ssn,
    "PHONE": phone,
    "IP_ADDRESS": ip_address,
    "DATE_OF_BIRTH": date,
}
# Where the words before a candidate name its type (and none dampen it), a looser test in place
# of the first when that one fails: the fail-safe reading, for a DLP filter.
WITH_CONTEXT: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": card_number,
}
