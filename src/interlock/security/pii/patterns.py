"""Candidate patterns for PII and secrets: one table, compiled once into one scanner.

A pattern only proposes a candidate; `validate.py` decides (checksums, phone metadata, address
parsing) and context words move the score. Patterns stay within what both Hyperscan and Python's
`re` accept: no look-around, no back-references.
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

PATTERNS: tuple[Pattern, ...] = (
    Pattern("EMAIL", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b", 0.9),
    Pattern("PHONE", r"(\+|\b)[0-9][0-9 ().-]{6,18}[0-9]\b", 0.3),
    Pattern("CREDIT_CARD", r"\b[0-9]{4}([ -]?[0-9]{2,4}){2,4}[ -]?[0-9]{1,4}\b", 0.3),
    Pattern("IBAN", r"\b[A-Z]{2}[0-9]{2}( ?[A-Z0-9]{4}){2,7}( ?[A-Z0-9]{1,4})?\b", 0.4),
    Pattern("US_SSN", r"\b[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}\b", 0.3),
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
    *(Pattern("PROMPT_INJECTION", regex, 0.8, True) for regex in INJECTION),
)

# Words near a candidate that make it likelier (or less likely) to be what it looks like.
CONTEXT_BOOST: dict[str, tuple[str, ...]] = {
    "PHONE": ("phone", "call", "tel", "mobile", "cell", "fax", "whatsapp"),
    "US_SSN": ("ssn", "social security", "social-security"),
    "CREDIT_CARD": ("card", "visa", "mastercard", "amex", "credit", "debit"),
    "DATE_OF_BIRTH": ("born", "birth", "dob", "birthday"),
    "IBAN": ("iban", "account", "bank", "transfer"),
}
CONTEXT_DAMPEN: dict[str, tuple[str, ...]] = {
    "PHONE": ("order", "invoice", "ticket", "version", "serial", "isbn"),
    "US_SSN": ("order", "invoice", "ticket", "serial", "phone"),
    "CREDIT_CARD": ("order", "invoice", "tracking"),
}
CONTEXT_WINDOW = 40  # characters before a candidate searched for context words
