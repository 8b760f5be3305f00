"""Deciding candidates with well-kept libraries instead of hand-written checksums."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn


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


def iban_number(text: str) -> bool:
    return bool(iban.is_valid(text.replace(" ", "")))


def us_ssn(text: str) -> bool:
    return bool(ssn.is_valid(_digits(text)))


def phone(text: str) -> bool:
    digits = _digits(text)
    if not 7 <= len(digits) <= 15:
        return False
    if text.startswith("00"):  # the international prefix written out: 0044 ... is +44 ...
        text = "+" + text[2:]
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


def date(text: str) -> bool:
    parts = [p for p in text.replace("/", "-").replace(".", "-").split("-") if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return False
    numbers = [int(p) for p in parts]
    year = next((n for n in numbers if n > 31), None)
    return (year is not None and 1900 <= year <= 2100) or (len(parts[0]) <= 2 and len(parts[2]) in (2, 4))


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "CREDIT_CARD": credit_card,
    "IBAN": iban_number,
    "US_SSN": us_ssn,
    "PHONE": phone,
    "IP_ADDRESS": ip_address,
    "DATE_OF_BIRTH": date,
}
