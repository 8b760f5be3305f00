"""A labelled PII corpus: ordinary sentences with entity values mixed in at known character spans.

Deterministic for a given seed (Faker and `random` are both seeded). Each line of the output is
one JSON object: {"id", "kind": "positive"|"negative", "text", "entities": [{"type", "start",
"end", "format"}]}. Entity types: EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS. Negative
sentences hold look-alikes only (order and invoice numbers, version strings, Luhn-invalid cards,
invalid SSNs and IBANs, dates, times, MAC addresses, ...): anything found there is a false positive.

Every positive value is valid by construction and checked: cards pass Luhn and carry a real
brand prefix and length, IBANs pass `stdnum.iban` (mod 97 and the national format), SSNs pass
`stdnum.us.ssn`, phone numbers pass `phonenumbers.is_valid_number` for their region, IP addresses
parse with `ipaddress`. Negatives are checked the other way where that is decidable.

    .venv/bin/python bench/pii/corpus.py [--sentences 2000] [--seed 7] [--out bench/pii/corpus.jsonl]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.us import ssn as std_ssn

if TYPE_CHECKING:  # imported where a corpus is generated: evasion.py, which imports this module, needs no Faker
    from faker import Faker

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "corpus.jsonl"
TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS")

FILLERS = (
    "Thanks for getting back to me so quickly.",
    "Please summarise the thread below for the weekly report.",
    "I will be out of the office until Monday.",
    "Can you draft a polite reply?",
    "The meeting moved to the small room on the third floor.",
    "Let me know if anything is missing.",
    "We talked about this at the offsite last month.",
    "Translate the following note into French.",
    "Here is the customer's message, unedited.",
    "Please keep the tone friendly but firm.",
    "The shipment left the warehouse this morning.",
    "Our team reviewed the proposal and has a few questions.",
    "Could you check the details and confirm?",
    "This is the second reminder about the renewal.",
    "Write a short apology for the delay.",
    "The invoice was paid in full yesterday.",
    "I am forwarding this from the support queue.",
    "Rewrite this paragraph in plain English.",
    "Nothing else has changed since the last update.",
    "Please route this to the right department.",
)

# ---------------------------------------------------------------------------------------------
# Entity values: (text, format label)


def email(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    user = fake.user_name()
    choice = rnd.random()
    if choice < 0.35:
        return fake.email(), "faker"
    if choice < 0.55:
        first, last = fake.first_name().lower(), fake.last_name().lower()
        ascii_only = "".join(c for c in f"{first}.{last}" if c in string.ascii_lowercase + ".")
        return f"{ascii_only or user}@{rnd.choice(['gmail.com', 'outlook.com', 'yahoo.co.uk', 'proton.me'])}", "free"
    if choice < 0.75:
        return f"{user}+{rnd.choice(['news', 'billing', 'test1'])}@{fake.domain_name()}", "plus-tag"
    if choice < 0.9:
        return f"{user}@mail.{fake.domain_word()}.co.uk", "subdomain"
    return f"{user.upper()}@{fake.domain_name().upper()}", "upper-case"


_US_AREA = (201, 202, 206, 212, 213, 303, 305, 312, 404, 415, 469, 503, 512, 617, 646, 702, 718, 773, 858, 917)
_US_FORMATS = (
    ("({a}) {e}-{n}", "us-paren"),
    ("{a}-{e}-{n}", "us-dash"),
    ("{a}.{e}.{n}", "us-dot"),
    ("{a} {e} {n}", "us-space"),
    ("+1 {a} {e} {n}", "us-+1-space"),
    ("+1-{a}-{e}-{n}", "us-+1-dash"),
    ("+1 ({a}) {e}-{n}", "us-+1-paren"),
    ("1-{a}-{e}-{n}", "us-1-dash"),
    ("{a}{e}{n}", "us-digits"),
    ("+1{a}{e}{n}", "us-e164"),
)
_INTL_REGIONS = ("GB", "DE", "FR", "IN", "BR", "JP", "AU", "ES", "IT", "NL", "CH", "SE", "MX", "SG", "ZA", "IE")


def us_phone(rnd: random.Random) -> tuple[int, int, int]:
    """A valid US number: (area code, exchange, line)."""
    while True:
        a, e, n = rnd.choice(_US_AREA), rnd.randint(200, 999), rnd.randint(0, 9999)
        if e == 555 or e % 100 == 11:  # fictional range, N11 service codes
            continue
        if phonenumbers.is_valid_number(phonenumbers.parse(f"+1{a}{e}{n:04d}")):
            return a, e, n


def phone(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    if rnd.random() < 0.5:
        a, e, n = us_phone(rnd)
        template, label = rnd.choice(_US_FORMATS)
        return template.format(a=a, e=e, n=f"{n:04d}"), label
    return intl_phone(rnd)


def intl_phone(rnd: random.Random) -> tuple[str, str]:
    region = rnd.choice(_INTL_REGIONS)
    kind = rnd.choice((phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    assert example is not None
    national = str(example.national_number)
    for _ in range(200):  # vary the subscriber digits, keep the valid prefix
        tail = "".join(rnd.choice(string.digits) for _ in range(4))
        candidate = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
        if phonenumbers.is_valid_number(candidate):
            break
    else:
        candidate = example
    style = rnd.random()
    if style < 0.6:
        fmt = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return fmt, f"intl-{region}"
    if style < 0.85:
        return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164), f"e164-{region}"
    intl = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return "00" + intl[1:], f"00-{region}"


# (brand, prefixes, lengths, grouping for separators)
BRANDS: tuple[tuple[str, tuple[str, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    ("visa", ("4",), (16, 16, 16, 13, 19), (4, 4, 4, 4, 3)),
    ("mastercard", ("51", "52", "53", "54", "55", "2221", "2500", "2720"), (16,), (4, 4, 4, 4)),
    ("amex", ("34", "37"), (15,), (4, 6, 5)),
    ("discover", ("6011", "65", "644", "649"), (16,), (4, 4, 4, 4)),
    ("jcb", ("3528", "3558", "3589"), (16,), (4, 4, 4, 4)),
    ("diners", ("36", "300", "305", "38"), (14,), (4, 6, 4)),
)


def luhn_number(rnd: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rnd.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def grouped(digits: str, groups: tuple[int, ...], sep: str) -> str:
    if len(digits) not in (16, 15, 14) or sum(groups) != len(digits):
        groups = tuple([4] * (len(digits) // 4) + ([len(digits) % 4] if len(digits) % 4 else []))
    out, i = [], 0
    for g in groups:
        out.append(digits[i : i + g])
        i += g
    return sep.join(out)


def credit_card(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    brand, prefixes, lengths, groups = rnd.choice(BRANDS)
    digits = luhn_number(rnd, rnd.choice(prefixes), rnd.choice(lengths))
    assert luhn.is_valid(digits)
    sep = rnd.choice(("", " ", "-"))
    text = digits if not sep else grouped(digits, groups, sep)
    return text, f"{brand}-{len(digits)}-{ {'': 'plain', ' ': 'spaces', '-': 'dashes'}[sep] }"


_IBAN_LOCALES = ("de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES", "it_IT", "pl_PL", "fi_FI", "no_NO", "pt_PT", "de_AT")


def iban(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    while True:
        locale = rnd.choice(_IBAN_LOCALES)
        value = fake[locale].iban()
        if std_iban.is_valid(value):
            break
    if rnd.random() < 0.5:
        return value, f"compact-{value[:2]}"
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)), f"spaced-{value[:2]}"


def ssn_digits(rnd: random.Random) -> str:
    while True:
        area, group, serial = rnd.randint(1, 899), rnd.randint(1, 99), rnd.randint(1, 9999)
        digits = f"{area:03d}{group:02d}{serial:04d}"
        if std_ssn.is_valid(digits):
            return digits


def us_ssn(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    digits = ssn_digits(rnd)
    sep = rnd.choice(("-", "-", " ", ""))
    label = {"-": "dashes", " ": "spaces", "": "digits"}[sep]
    return f"{digits[:3]}{sep}{digits[3:5]}{sep}{digits[5:]}", label


def ip_address(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    choice = rnd.random()
    if choice < 0.35:
        return fake.ipv4_public(), "v4-public"
    if choice < 0.6:
        return fake.ipv4_private(), "v4-private"
    if choice < 0.8:
        return fake.ipv6(), "v6-full"
    groups = [f"{rnd.randint(0, 0xFFFF):x}" for _ in range(8)]
    zero_from = rnd.randint(2, 5)
    for i in range(zero_from, zero_from + rnd.randint(2, 3)):
        groups[i] = "0"
    value = ipaddress.IPv6Address(":".join(groups)).compressed
    return value, "v6-compressed"


GENERATORS: dict[str, Callable[[Faker, random.Random], tuple[str, str]]] = {
    "EMAIL": email,
    "PHONE": phone,
    "CREDIT_CARD": credit_card,
    "IBAN": iban,
    "US_SSN": us_ssn,
    "IP_ADDRESS": ip_address,
}

# How a value sits in a sentence: with the words people use around it, or bare.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "EMAIL": (
        "You can reach {name} at {v}.",
        "Send the signed copy to {v} before Friday.",
        "Her address changed to {v} last week",
        "cc: {v}",
        "Reply-To: {v}",
        "{v} wrote: the numbers look off.",
    ),
    "PHONE": (
        "Call me at {v} after five.",
        "My mobile is {v}.",
        "Phone: {v}",
        "You can reach {name} on {v} during office hours.",
        "{name} left a voicemail from {v}.",
        "Reach the front desk at {v} or by email.",
        "Contact {v} for the keys.",
    ),
    "CREDIT_CARD": (
        "My card number is {v}, expiry 04/27.",
        "Please charge the card with the number {v}.",
        "Card: {v}",
        "{name} paid with {v} and wants a refund.",
        "The payment failed on {v} again.",
        "Use {v} for the deposit.",
    ),
    "IBAN": (
        "Please wire the balance to IBAN {v}.",
        "Bank account: {v}",
        "{name} asked us to refund to {v}.",
        "The transfer to {v} bounced.",
        "Account {v} is the new payroll account.",
    ),
    "US_SSN": (
        "My SSN is {v}.",
        "Social security number: {v}",
        "{name}'s social security number is {v}, please update the file.",
        "SSN {v} was entered twice.",
        "The form lists {v} as the taxpayer id.",
        "Applicant {name}, {v}, born in Ohio.",
    ),
    "IP_ADDRESS": (
        "The login came from {v} at midnight.",
        "Block {v} on the firewall.",
        "Server IP: {v}",
        "{name} connected from {v} twice.",
        "Ping {v} and report the latency.",
        "Requests from {v} were rate limited.",
    ),
}


def not_luhn(rnd: random.Random, prefix: str, length: int) -> str:
    while True:
        digits = prefix + "".join(rnd.choice(string.digits) for _ in range(length - len(prefix)))
        if not luhn.is_valid(digits):
            return digits


def bad_ssn(rnd: random.Random, sep: str = "-") -> str:
    while True:
        kind = rnd.randrange(5)
        area = (0, 666, rnd.randint(900, 999), rnd.randint(1, 665), rnd.randint(1, 665))[kind]
        group = 0 if kind == 3 else rnd.randint(1, 99)
        serial = 0 if kind == 4 else rnd.randint(1, 9999)
        digits = f"{area:03d}{group:02d}{serial:04d}"
        if not std_ssn.is_valid(digits):
            return f"{digits[:3]}{sep}{digits[3:5]}{sep}{digits[5:]}"


def _bad_iban(fake: Faker, rnd: random.Random) -> str:
    while True:
        value, _ = iban(fake, rnd)
        compact = value.replace(" ", "")
        check = int(compact[2:4])
        broken = compact[:2] + f"{(check + rnd.randint(1, 50)) % 97 + 2:02d}" + compact[4:]
        if not std_iban.is_valid(broken):
            return broken


def negative(fake: Faker, rnd: random.Random) -> tuple[str, str]:
    """One look-alike sentence; returns (text, look-alike label)."""
    kind = rnd.randrange(16)
    d = lambda n: "".join(rnd.choice(string.digits) for _ in range(n))  # noqa: E731
    if kind == 0:
        return f"Order #{d(10)} shipped on time.", "order-10-digits"
    if kind == 1:
        return f"Your order number is {d(4)}-{d(4)}-{d(4)}.", "order-4-4-4"
    if kind == 2:
        return f"Invoice INV-{rnd.randint(2019, 2026)}-{d(6)} is overdue.", "invoice"
    if kind == 3:
        return f"Tracking number 1Z{d(3)}AA{d(10)} shows a delay.", "ups-tracking"
    if kind == 4:
        v = f"{rnd.randint(1, 20)}.{rnd.randint(0, 20)}.{rnd.randint(0, 99999)}.{rnd.randint(0, 999)}"
        return f"Upgrade to version {v} before the release.", "version-4-part"
    if kind == 5:
        return (
            f"Build {rnd.randint(1, 9)}.{rnd.randint(0, 30)}.{rnd.randint(0, 300)} fixed the crash.",
            "version-3-part",
        )
    if kind == 6:
        prefix = rnd.choice(("4", "51", "55", "37", "6011"))
        digits = not_luhn(rnd, prefix, 15 if prefix == "37" else 16)
        return f"The card {grouped(digits, (4, 4, 4, 4), ' ')} was declined as invalid.", "card-bad-luhn"
    if kind == 7:
        return f"Reference {not_luhn(rnd, rnd.choice(('4', '5')), 16)} is not a card.", "16-digits-bad-luhn"
    if kind == 8:
        return f"The form rejected {bad_ssn(rnd)} as malformed.", "ssn-invalid"
    if kind == 9:
        return f"The IBAN {_bad_iban(fake, rnd)} failed its checksum.", "iban-bad-check"
    if kind == 10:
        return (
            f"Address {rnd.randint(256, 999)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)} is not valid.",
            "ip-out-of-range",
        )
    if kind == 11:
        return (
            f"The report for {fake.date(pattern='%Y-%m-%d')} ran at {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.",
            "date-time",
        )
    if kind == 12:
        mac = ":".join(f"{rnd.randint(0, 255):02X}" for _ in range(6))
        return f"The device MAC is {mac}.", "mac-address"
    if kind == 13:
        return (
            f"Total due: ${rnd.randint(1, 999)},{d(3)},{d(3)}.{d(2)} by {fake.date(pattern='%d.%m.%Y')}.",
            "money-date",
        )
    if kind == 14:
        return f"ISBN 978-{rnd.randint(0, 9)}-{d(2)}-{d(6)}-{rnd.randint(0, 9)} is out of print.", "isbn"
    return f"Ticket {d(9)} was closed; see case {d(7)}.", "ticket-9-digits"


@dataclass
class Sentence:
    id: int
    kind: str
    text: str = ""
    entities: list[dict[str, object]] = field(default_factory=list)
    lookalike: str | None = None
    evasion: str | None = None  # evasion.py: the class of evasion (or of look-alike) it holds

    def add(self, piece: str) -> None:
        self.text = f"{self.text} {piece}" if self.text else piece


def _positive(i: int, fake: Faker, rnd: random.Random, counts: dict[str, int]) -> Sentence:
    s = Sentence(i, "positive")
    if rnd.random() < 0.5:
        s.add(rnd.choice(FILLERS))
    n_entities = 1 if rnd.random() < 0.75 else 2
    for _ in range(n_entities):
        kind = min(TYPES, key=lambda t: (counts[t], rnd.random()))  # keep the types balanced
        counts[kind] += 1
        value, label = GENERATORS[kind](fake, rnd)
        template = rnd.choice(TEMPLATES[kind])
        before, _, after = template.partition("{v}")
        name = fake.name()
        before, after = before.replace("{name}", name), after.replace("{name}", name)
        prefix = f"{s.text} " if s.text else ""
        start = len(prefix) + len(before)
        s.text = prefix + before + value + after
        s.entities.append({"type": kind, "start": start, "end": start + len(value), "format": label})
    if rnd.random() < 0.5:
        s.add(rnd.choice(FILLERS))
    return s


def generate(sentences: int, seed: int) -> list[Sentence]:
    from faker import Faker

    fake = Faker(["en_US", *(loc for loc in _IBAN_LOCALES if loc != "en_US")])
    Faker.seed(seed)
    rnd = random.Random(seed)
    counts = dict.fromkeys(TYPES, 0)
    out: list[Sentence] = []
    for i in range(sentences):
        if rnd.random() < 0.25:
            s = Sentence(i, "negative")
            text, label = negative(fake, rnd)
            s.text = f"{rnd.choice(FILLERS)} {text}" if rnd.random() < 0.5 else text
            s.lookalike = label
        else:
            s = _positive(i, fake, rnd, counts)
        out.append(s)
    return out


def write(path: Path, corpus: list[Sentence]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for s in corpus:
            row = {"id": s.id, "kind": s.kind, "text": s.text, "entities": s.entities}
            if s.lookalike:
                row["lookalike"] = s.lookalike
            if s.evasion:
                row["evasion"] = s.evasion
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    corpus = generate(args.sentences, args.seed)
    write(args.out, corpus)
    entities = sum(len(s.entities) for s in corpus)
    size = sum(len(s.text.encode()) for s in corpus)
    print(f"{args.out}: {len(corpus)} sentences, {entities} entities, {size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
