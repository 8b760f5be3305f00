"""Candidate patterns for PII and secrets: one table, compiled once into one scanner.

A pattern only proposes a candidate; `validate.py` decides (checksums, phone metadata, calendar
dates) and context words move the score. Patterns stay within what both Hyperscan and Python's
`re` accept: no look-around, no back-references. They run on text that `normalize.py` folded
(NFKC, invisible characters dropped, dashes made `-`), so they name ASCII characters only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pattern:
    entity: str
    regex: str
    score: float  # before validation and context
    case_insensitive: bool = False


# Prompt injection: phrasings seen in public jailbreak and injection collections. A match is a
# finding like any other: a policy flags it (allow: counted in metrics and the audit trail) or
# blocks it. Kept deliberately specific; extend the list as new phrasings appear.
INJECTION = (
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier|preceding)\s+(instructions|prompts?|rules|directions)",
    r"\b(reveal|print|show|repeat|output)\s+(me\s+)?(your|the)\s+(system\s+prompt|hidden\s+instructions|initial\s+instructions)",
    r"\byou\s+are\s+now\s+(DAN|in\s+developer\s+mode|jailbroken|unfiltered)",
    r"\bdo\s+anything\s+now\b",
    r"\b(act|pretend|behave)\s+(as\s+if\s+you\s+are|as|to\s+be)\s+(an?\s+)?(unfiltered|uncensored|jailbroken|unrestricted)",
    r"</?\s*(system|im_start|im_end)\s*>",
    r"\b(begin|end)\s+(system|developer)\s+(prompt|message|instructions)\b",
    r"\bnew\s+instructions\s*:",
)

# What people put between the groups of a card number, an SSN, a phone number or an IBAN: a space,
# a dot, a dash, a slash, or nothing. One class for all four, so they agree; `validate.py` strips
# the same characters (SEPARATORS) before it checks a number.
SEPARATORS = " ./-"
SEP = "[ ./-]"

# Dates written in words, in English: "14 March 1987", "14th of March, 1987", "14-Mar-1987",
# "March 14, 1987", "Mar. 14th 1987". Any date is only a candidate: it needs birth context (born,
# DOB, date of birth, birthday) to reach the threshold, and a real calendar day to be valid.
MONTH = (
    r"(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?"
    r"|nov(ember)?|dec(ember)?)"
)
DAY = r"[0-9]{1,2}(st|nd|rd|th)?"
DATE_SEP = r"[ ,./-]{1,3}"  # "14 March", "March 14, 1987", "Mar. 14", "14-Mar-1987"

PATTERNS: tuple[Pattern, ...] = (
    Pattern("EMAIL", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b", 0.9),
    Pattern("PHONE", r"(\+|\b)[0-9][0-9 ()./-]{6,18}[0-9]\b", 0.3),
    Pattern("CREDIT_CARD", rf"\b[0-9]{{4}}({SEP}?[0-9]{{2,4}}){{2,4}}{SEP}?[0-9]{{1,4}}\b", 0.3),
    # Any case: "de89 3704 ..." is as much an IBAN (the validator upper-cases it).
    Pattern("IBAN", rf"\b[A-Z]{{2}}[0-9]{{2}}({SEP}?[A-Z0-9]{{4}}){{2,7}}({SEP}?[A-Z0-9]{{1,4}})?\b", 0.4, True),
    Pattern("US_SSN", rf"\b[0-9]{{3}}{SEP}?[0-9]{{2}}{SEP}?[0-9]{{4}}\b", 0.3),
    Pattern("IP_ADDRESS", r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b", 0.5),
    Pattern("IP_ADDRESS", r"\b[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{0,4}){2,7}", 0.3),  # may end in "::"
    Pattern("URL_CREDENTIALS", r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@[^\s/]+", 0.95, True),
    Pattern("SECRET", r"\bAKIA[0-9A-Z]{16}\b", 0.95),  # AWS access key id
    Pattern("SECRET", r"-----BEGIN [A-Z ]*PRIVATE KEY-----", 0.99),
    Pattern("SECRET", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}", 0.95),  # JWT
    Pattern("SECRET", r"\bbearer [A-Za-z0-9._~+/-]{20,}=*", 0.9, True),
    Pattern("SECRET", r"\b(sk|rk)-[A-Za-z0-9_-]{20,}\b", 0.9),  # OpenAI-style keys
    Pattern("SECRET", r"\b(ghp|gho|ghu|ghs|github_pat)_[A-Za-z0-9_]{20,}\b", 0.95),
    Pattern("SECRET", r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", 0.95),  # Slack
    Pattern("SECRET", r"\bik_[A-Za-z0-9_-]{32,}\b", 0.99),  # our own API keys
    Pattern("DATE_OF_BIRTH", r"\b[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}\b", 0.1),
    Pattern("DATE_OF_BIRTH", rf"\b{DAY}(\s+of)?{DATE_SEP}{MONTH}{DATE_SEP}[0-9]{{4}}\b", 0.1, True),
    Pattern("DATE_OF_BIRTH", rf"\b{MONTH}{DATE_SEP}{DAY}{DATE_SEP}[0-9]{{4}}\b", 0.1, True),
    *(Pattern("PROMPT_INJECTION", regex, 0.8, True) for regex in INJECTION),
)

# Words near a candidate that make it likelier (or less likely) to be what it looks like. Each is
# matched at the start of a word, in any case: "born" is not in "stubborn", nor "dob" in "Adobe";
# "birth" is in "birthday" and "birthdate".
CONTEXT_BOOST: dict[str, tuple[str, ...]] = {
    "PHONE": ("phone", "call", "tel", "mobile", "cell", "fax", "whatsapp"),
    "US_SSN": ("ssn", "social security", "social-security"),
    "CREDIT_CARD": ("card", "visa", "mastercard", "amex", "credit", "debit"),
    "DATE_OF_BIRTH": ("born", "birth", "dob", "d.o.b"),
    "IBAN": ("iban", "account", "bank", "transfer"),
}
CONTEXT_DAMPEN: dict[str, tuple[str, ...]] = {
    "PHONE": ("order", "invoice", "ticket", "version", "serial", "isbn", "iban"),  # digits inside an IBAN
    "US_SSN": ("order", "invoice", "ticket", "serial", "phone"),
    "CREDIT_CARD": ("order", "invoice", "tracking"),
}
CONTEXT_WINDOW = 40  # characters before a candidate searched for context words
