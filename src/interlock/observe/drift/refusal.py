"""Refusal detection by a maintained list of phrases.

A model that starts refusing is one of the shifts the drift monitor must catch, and the cheapest
reliable signal is the opening of the answer: refusals lead with a small set of stock phrases
("I'm sorry, but I can't ..."). We look only at the first `WINDOW` characters, because the same
phrases appear harmlessly further into long answers (an explanation of what "as a language
model" means, a quoted error message). A classifier would catch paraphrases; this list catches
the stock ones at a few microseconds a response, which is what a per-response feature can
afford. Extend `REFUSAL_PHRASES` when a model family with new stock phrases is added; the tests
pin the examples that must keep matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Characters of the answer that are searched. Refusals open the answer; see the module docstring.
WINDOW = 240

# Lower case, straight apostrophes: `is_refusal` normalises the text the same way.
REFUSAL_PHRASES: tuple[str, ...] = (
    # English, the stock openings of the common model families
    "i can't help with",
    "i cannot help with",
    "i can't help you with",
    "i can't assist with",
    "i cannot assist with",
    "i can't assist you with",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i'm sorry, i can't",
    "i'm sorry, i cannot",
    "sorry, but i can't",
    "sorry, i can't help",
    "i apologize, but i cannot",
    "i apologize, but i can't",
    "i'm unable to help",
    "i'm unable to assist",
    "i'm unable to provide",
    "i am unable to help",
    "i am unable to assist",
    "i am unable to provide",
    "i'm not able to help",
    "i'm not able to provide",
    "i am not able to provide",
    "i can't provide",
    "i cannot provide",
    "i can't comply",
    "i cannot comply",
    "i can't fulfill",
    "i cannot fulfill",
    "i can't do that",
    "i won't be able to help",
    "i must decline",
    "i have to decline",
    "against my guidelines",
    "as an ai,",
    "as an ai language model",
    "as an ai model",
    "as an ai assistant",
    "as a language model",
    "as an artificial intelligence",
    # French, German, Spanish: the same openings in the other languages the tests exercise
    "je ne peux pas vous aider",
    "je suis désolé, mais je ne peux pas",
    "désolé, mais je ne peux pas",
    "ich kann dir dabei nicht helfen",
    "ich kann ihnen dabei nicht helfen",
    "es tut mir leid, aber ich kann",
    "lo siento, pero no puedo",
    "no puedo ayudarte con",
)


def refusal_pattern(phrases: Iterable[str] = REFUSAL_PHRASES) -> re.Pattern[str]:
    """One regex that finds any of the phrases, built as a trie of their characters. `re` tries
    each branch of an alternation at every position, so the flat `a|b|c` over 46 phrases cost
    15 us on a 240-character answer; sharing prefixes ("i can't ", "i'm ") brings it to 3.5 us."""
    root: _Trie = {}
    for phrase in phrases:
        node = root
        for ch in phrase.lower():
            node = node.setdefault(ch, {})
        node[_END] = {}
    return re.compile(_trie_regex(root))


_Trie = dict[str, "_Trie"]
_END = ""


def _trie_regex(node: _Trie) -> str:
    if _END in node:
        return ""  # a phrase ends here; longer phrases through this node need not be matched
    branches = [re.escape(ch) + _trie_regex(child) for ch, child in sorted(node.items())]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


# Compiled once at import: a constant, not state (a Pattern is immutable).
DEFAULT_PATTERN = refusal_pattern()

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def is_refusal(text: str | None, pattern: re.Pattern[str] = DEFAULT_PATTERN) -> bool:
    """True when the opening of `text` carries a stock refusal phrase. Curly apostrophes count as
    straight ones, since models emit both."""
    if not text:
        return False
    head = text[:WINDOW].lower().translate(_APOSTROPHES)
    return pattern.search(head) is not None
