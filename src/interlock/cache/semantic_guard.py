"""Does a near neighbour really ask the same thing? The check applied before a semantic-cache hit.

A sentence embedding measures how much two texts are *about* the same thing, not whether they ask
for the same answer. all-MiniLM-L6-v2 scores "how do I enable 2FA" against "how do I disable 2FA"
higher than against most true paraphrases, and "capital of France" is close to "capital of
Germany": the words that flip the answer are one token among many. No threshold separates them,
so a neighbour above the threshold must also pass these checks, which look only at those tokens:

- negation: one text negates (not, never, no, without, any "n't") more often than the other;
- question: one asks who, the other when or where;
- opposites: a word in one text whose opposite is in the other and not in the first
  (enable/disable, add/remove, before/after, ...; `_OPPOSITES`), in any inflection, or the same
  word with a negating prefix (install/uninstall, valid/invalid, like/dislike);
- numbers: the numbers differ (digits, and number words read as digits: "two" is 2);
- quoted strings: what is quoted differs;
- entities: a named thing in one text is missing from the other. Named things are capitalised
  words not at a sentence start, all-capitals and mixed letter-digit tokens (2FA, S3, iPhone),
  code-like tokens (snake_case, dotted.names, paths) and `_NAMED`'s lower-case things that
  people swap (languages, formats, units, countries, colours, days). An acronym counts as
  present when the other text spells it out ("2FA" and "two-factor authentication");
- direction: both texts name the same things in another order around a directional word
  ("Celsius to Fahrenheit" and "Fahrenheit to Celsius", "is A better than B").

Each check errs towards "different": a false "different" costs one upstream call, a false "same"
serves a wrong answer. `bench/semantic/run.py` measures both on a labelled set of pairs.

Pure and I/O-free, a few tens of microseconds per pair; `mismatch` names the check that failed
(a fixed word, safe as a metric label), `same_question` is its boolean.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import MappingProxyType

_TOKEN = re.compile(r"[\w][\w'+#\-./]*[\w+#]|[\w]")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|`([^`]+)`|(?<![\w])'([^']+)'(?![\w])")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_LETTER = re.compile(r"[^\W\d_]")
_CODE_LIKE = re.compile(r"\d|.[_./#+]")
_SENTENCE_ENDS = frozenset(".?!:;\n")


def _words(text: str) -> list[str]:
    return text.split()


_NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without"}
    | {"cannot", "except", "excluding", "lacking"}
)

# Pairs whose members flip an answer. Each word also matches its inflections (`_forms`).
_PAIRS = (
    "enable disable|activate deactivate|add remove|add delete|create delete|create destroy|insert delete|"
    "install uninstall|increase decrease|increase reduce|raise lower|grow shrink|before after|earlier later|"
    "early late|open close|start stop|start end|begin end|begin finish|buy sell|import export|upload download|"
    "encrypt decrypt|encode decode|compress decompress|serialize deserialize|lock unlock|block unblock|"
    "allow deny|allow block|allow forbid|accept reject|approve reject|grant revoke|include exclude|"
    "subscribe unsubscribe|login logout|connect disconnect|attach detach|mount unmount|show hide|"
    "expand collapse|maximize minimize|maximum minimum|max min|first last|on off|up down|in out|push pull|"
    "send receive|win lose|hire fire|borrow lend|love hate|like dislike|agree disagree|legal illegal|"
    "possible impossible|valid invalid|safe dangerous|safe unsafe|cheap expensive|rich poor|true false|"
    "positive negative|high low|more less|more fewer|most least|many few|all none|always never|better worse|"
    "best worst|fast slow|hot cold|warm cool|big small|large small|long short|tall short|heavy light|old new|"
    "old young|ascending descending|above below|over under|inside outside|input output|debit credit|"
    "income expense|profit loss|pros cons|advantage disadvantage|benefit risk|north south|east west|"
    "left right|top bottom|front back|male female|man woman|men women|boy girl|he she|his her|him her|"
    "husband wife|father mother|father son|mother daughter|brother sister|parent child|king queen|"
    "arrive depart|arrival departure|enter exit|join leave|merge split|pack unpack|zip unzip|freeze unfreeze|"
    "follow unfollow|pause resume|online offline|public private|visible hidden|forward backward|"
    "upgrade downgrade|upstream downstream|inbound outbound|import export|sunrise sunset|summer winter|"
    "spring autumn|day night|morning evening|dark light|wet dry|full empty|strong weak|win loss|pass fail|"
    "success failure|succeed fail|include omit|present absent|sync async|synchronous asynchronous|"
    "client server|read write|encrypted unencrypted|compile decompile|serialize parse|yes no|same different|"
    "similar different|cause effect|hardest easiest|hard easy|difficult easy|simple complex|minimal maximal|"
    "inner outer|internal external|horizontal vertical|uppercase lowercase|celsius fahrenheit|lighter darker|"
    "plus minus|multiply divide|sum difference|numerator denominator|asleep awake|alive dead|birth death|"
    "war peace|past future|previous next|prefix suffix|head tail|source destination|sender recipient|"
    "buyer seller|employer employee|landlord tenant|teacher student|predator prey|import export|"
    # Added after the first run on bench/semantic/pairs.jsonl showed these missing (README there).
    "inhale exhale|strengthen weaken|strength weakness|lengthen shorten|tighten loosen|heat cool|warm cold|"
    "bright dark|brighten darken|accept decline|gain lose|enlarge shrink|enlarge reduce|rise set|"
    "accelerate brake|accelerate decelerate|speed slow|widen narrow|wide narrow|thick thin|fat thin|"
    "deep shallow|rough smooth|soft hard|loud quiet|mute unmute|arm disarm|pin unpin|bold unbold|"
    "charge discharge|inflate deflate|hire dismiss|marry divorce|appear disappear|remember forget|"
    "expensive affordable|minimize maximize|underestimate overestimate|undercook overcook|overpaid underpaid|"
    "sunny rainy|asc desc|min max|import export|credit debit|deposit withdraw|deposit withdrawal|"
    "enroll unenroll|register unregister|opt-in opt-out|whitelist blacklist|allowlist blocklist|"
    "quit join|love dislike|like hate|ally enemy|friend enemy|victory defeat|winner loser|rich broke|"
    "abundant scarce|import export|include remove|make remove|put remove|turn-on turn-off|uphill downhill"
)

# Forms that an inflection rule would make but that are other words.
_NOT_FORMS = frozenset({"news", "ones", "lastly", "downer", "upper", "outer", "inner", "dies", "lefts", "ins"})

_NEGATING_PREFIXES = (("un", 3), ("dis", 3), ("non", 4), ("de", 5), ("in", 5), ("im", 5), ("il", 5), ("ir", 5))

# Who asked against when or where is another question; what, which and how often say the same.
_STRICT_QUESTIONS = frozenset({"who", "whom", "whose", "when", "where"})

_NUMBER_WORDS = MappingProxyType(
    {
        w: str(i)
        for i, w in enumerate(
            _words(
                "zero - two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty"
            )
        )
        if w != "-"
    }
    | {w: str(10 * i) for i, w in enumerate(_words("thirty forty fifty sixty seventy eighty ninety"), start=3)}
    | {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000", "dozen": "12"}
    | {"twice": "2", "thrice": "3", "triple": "3"}
    | {"third": "3rd", "fourth": "4th", "fifth": "5th", "tenth": "10th"}
)
# "one", "once", "single", "first", "second", "half" are more often not numbers ("which one").

# Lower-case things people swap in an otherwise identical question.
_NAMED = frozenset(
    _words(
        "python java javascript typescript rust golang ruby php kotlin swift scala perl haskell c++ c# sql "
        "bash powershell html css json yaml xml csv pdf markdown excel docx png jpg jpeg gif svg mp3 mp4 "
        "windows linux macos android ios ubuntu debian chrome firefox safari docker kubernetes git "
        "postgres postgresql mysql redis mongodb sqlite aws azure gcp react vue angular django flask "
        "english french spanish german italian portuguese russian chinese japanese korean arabic hindi dutch "
        "celsius fahrenheit kelvin km kilometers kilometres miles meters metres feet inches kg kilograms "
        "pounds grams ounces liters litres gallons dollars euros yen rupees bitcoin usd eur gbp "
        "seconds minutes hours days weeks months years "
        "france germany spain italy japan china india brazil canada mexico russia australia egypt "
        "england britain ireland scotland usa america paris london berlin madrid rome tokyo beijing "
        "red blue green yellow black white orange purple pink brown grey gray "
        "monday tuesday wednesday thursday friday saturday sunday january february april june "
        "july august september october november december"
    )
)  # not "may" or "march": more often verbs

_DIRECTIONAL = frozenset({"to", "into", "from", "than", "over", "per", "vs", "versus", "towards", "onto"})

# Capitalised words that name nothing.
_NOT_ENTITIES = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "a", "an", "the"})


def _forms(word: str) -> Iterable[str]:
    yield word
    if len(word) <= 2:
        return
    stem = word[:-1] if word.endswith("e") else word
    doubled = word + word[-1] if re.fullmatch(r".*[^aeiou][aeiou][bdgklmnprt]", word) else word
    yield from (word + "s", word + "es", stem + "ed", stem + "ing", stem + "er", stem + "est")
    yield from (doubled + "ed", doubled + "ing", doubled + "er", doubled + "est")
    if word.endswith("y"):
        yield from (word[:-1] + "ies", word[:-1] + "ied", word[:-1] + "ier", word[:-1] + "iest")


def _opposites() -> MappingProxyType[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for pair in _PAIRS.split("|"):
        a, b = pair.split()
        table.setdefault(a, set()).add(b)
        table.setdefault(b, set()).add(a)
    return MappingProxyType({k: frozenset(v) for k, v in table.items()})


def _lemmas() -> MappingProxyType[str, frozenset[str]]:
    """Every form of a word of `_OPPOSITES` to the words it may be a form of ("lower": low, lower)."""
    table: dict[str, set[str]] = {}
    for word in _OPPOSITES:
        for form in _forms(word):
            if form not in _NOT_FORMS:
                table.setdefault(form, set()).add(word)
    return MappingProxyType({k: frozenset(v) for k, v in table.items()})


_OPPOSITES = _opposites()
_LEMMAS = _lemmas()


class _Text:
    """The parts of one text the checks compare, worked out once per text."""

    __slots__ = ("acronyms", "entities", "lemmas", "negations", "numbers", "questions", "quoted", "relations", "words")

    def __init__(self, text: str) -> None:
        text = text.replace("\u2019", "'")  # a typographic apostrophe
        self.quoted = frozenset(next(g for g in m.groups() if g).strip().lower() for m in _QUOTED.finditer(text))
        raw: list[tuple[str, bool]] = []  # (token, at a sentence start)
        end = 0
        for m in _TOKEN.finditer(text):
            initial = end == 0 or not _SENTENCE_ENDS.isdisjoint(text[end : m.start()])
            end = m.end()
            token = m.group().rstrip(".'")
            if token.lower().endswith("'s"):
                token = token[:-2]
            if token:
                raw.append((token, initial))
        lowered = [t.lower() for t, _ in raw]
        # Title Case or ALL CAPS text says nothing by its capitals.
        inner = [t for t, initial in raw if not initial and len(t) > 1 and t.isalpha()]
        capitals_mean_names = len(inner) < 3 or sum(t[0].isupper() for t in inner) <= 0.6 * len(inner)
        words = set(lowered)
        self.negations = sum(t in _NEGATIONS or t.endswith("n't") for t in lowered)
        self.numbers = frozenset(_NUMBER_WORDS.get(t, t.replace(",", "")) for t in lowered if _number(t))
        self.lemmas = frozenset(lemma for t in lowered for lemma in _lemmas_of(t))
        self.questions = frozenset(t for t in lowered if t in _STRICT_QUESTIONS)
        entities = []
        anchors: list[str | None] = []  # per token: the entity, number or opposite it names, if any
        for (token, initial), low in zip(raw, lowered, strict=True):
            if _number(low):
                anchors.append(_NUMBER_WORDS.get(low, low))
            elif low not in _NOT_ENTITIES and (low in _NAMED or _looks_named(token, initial, capitals_mean_names)):
                entities.append(low)
                anchors.append(low)
            elif low in _LEMMAS:
                anchors.append(low)  # "uppercase to lowercase" against "lowercase to uppercase"
            else:
                anchors.append(None)
        self.entities = frozenset(entities)
        self.relations = _relations(lowered, anchors)
        self.words = frozenset(words | {p for t in lowered for p in re.split(r"[\-/.]", t) if p})
        self.acronyms = _initials(lowered)


def _relations(lowered: list[str], anchors: list[str | None]) -> frozenset[tuple[str, str]]:
    """(x, y) for each directional word with anchor x before it and y after it (the nearest four
    on each side): "is Python faster than Java" gives (python, java) and (faster, java)."""
    out: set[tuple[str, str]] = set()
    for i, token in enumerate(lowered):
        if token in _DIRECTIONAL:
            before = [a for a in reversed(anchors[:i]) if a is not None][:4]
            after = [a for a in anchors[i + 1 :] if a is not None][:4]
            out.update((x, y) for x in before for y in after if x != y)
    return frozenset(out)


def _lemmas_of(token: str) -> Iterable[str]:
    """The words of `_OPPOSITES` a token may be a form of; British -ise spellings as -ize."""
    found = _LEMMAS.get(token)
    if found is None and "is" in token:
        found = _LEMMAS.get(re.sub(r"is(e|es|ed|ing|er)$", r"iz\1", token))
    return found if found is not None else (token,)


def _number(token: str) -> bool:
    return bool(_NUMBER.match(token)) or token in _NUMBER_WORDS


def _looks_named(token: str, initial: bool, capitals_mean_names: bool) -> bool:
    if not _LETTER.search(token):
        return False
    if _CODE_LIKE.search(token):
        return True  # 2FA, S3, python3.11, snake_case, a.b.c, /etc/hosts, C#
    rest = token[1:]
    if rest != rest.lower():
        return True  # AWS, iPhone, macOS, PostgreSQL
    return capitals_mean_names and token[0].isupper() and not initial


def _initials(lowered: list[str]) -> str:
    parts = [p for t in lowered for p in t.split("-") if p]
    return "".join(
        _NUMBER_WORDS.get(p, p)[0] for p in parts if not _NUMBER_WORDS.get(p, "x").endswith(("st", "nd", "rd", "th"))
    )


def _missing(mine: _Text, other: _Text) -> set[str]:
    """My entities the other text does not name, not even spelt out as an acronym's words."""
    return {e for e in mine.entities - other.words if not (2 <= len(e) <= 6 and e.isalnum() and e in other.acronyms)}


def mismatch(asked: str, cached: str) -> str | None:
    """The first check that tells the two texts apart (`negation`, `question`, `antonym`, `number`,
    `quoted`, `entity`, `direction`), or None when they may ask the same thing."""
    a, b = _Text(asked), _Text(cached)
    if a.negations != b.negations:
        return "negation"
    if a.questions and b.questions and a.questions != b.questions:
        return "question"
    only_a, only_b = a.lemmas - b.lemmas, b.lemmas - a.lemmas
    for word in only_a:
        if _OPPOSITES.get(word, frozenset()) & only_b:
            return "antonym"
    for word in only_a:
        for other in only_b:
            if _prefix_negated(word, other) or _prefix_negated(other, word):
                return "antonym"
    numbers_a = a.numbers - _spelt_in(b, a.numbers)
    numbers_b = b.numbers - _spelt_in(a, b.numbers)
    if numbers_a != numbers_b:
        return "number"
    if a.quoted != b.quoted:
        return "quoted"
    if _missing(a, b) or _missing(b, a):
        return "entity"
    if any((y, x) in b.relations and (x, y) not in b.relations for x, y in a.relations):
        return "direction"
    return None


def same_question(asked: str, cached: str) -> bool:
    """True when nothing tells the texts apart; call it only for neighbours above the threshold."""
    return mismatch(asked, cached) is None


def _spelt_in(other: _Text, numbers: frozenset[str]) -> set[str]:
    """Numbers the other text holds inside an entity (the 2 of "two-factor" in "2FA")."""
    return {n for n in numbers if len(n) == 1 and any(e.startswith(n) and not e.isdigit() for e in other.entities)}


def _prefix_negated(word: str, other: str) -> bool:
    return any(other == prefix + word and len(word) >= base for prefix, base in _NEGATING_PREFIXES)
