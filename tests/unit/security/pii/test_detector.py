from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.errors import Forbidden
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.security.dlp import DlpStage, Policy
from interlock.security.pii.detector import Entity, PatternDetector
from interlock.security.pii.detokenize import MAX_TOKEN, StreamDetokenizer, held_back, neutralise, replace
from interlock.security.pii.vault import MemoryVaultStore, TokenVault
from tests.support.context import context, reaches_the_rest

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


def test_a_split_token_is_held_back_only_while_it_could_still_be_one() -> None:
    assert held_back("hello <EMAIL_abc") == len("<EMAIL_abc")
    assert held_back("hello <b>bold") == 0
    assert held_back("a < b") == 0
    assert held_back("x" * 100) == 0
    assert held_back("end <") == 1 and MAX_TOKEN <= 47


def test_stream_detokenizer_reassembles_values_across_chunks() -> None:
    token = "<EMAIL_abcdefghijkl>"
    d = StreamDetokenizer({token: "a@b.co"})
    text = f"mail {token} now"
    out = ""
    for i in range(0, len(text), 3):
        out += d.feed({"choices": [{"index": 0, "delta": {"content": text[i : i + 3]}, "finish_reason": None}]})[
            "choices"
        ][0]["delta"]["content"]
    out += d.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})["choices"][0]["delta"].get(
        "content", ""
    )
    assert out == "mail a@b.co now"


def test_values_go_into_tool_arguments_json_escaped() -> None:
    token = "<PHONE_abcdefghijkl>"
    assert replace('{"to": "' + token + '"}', {token: 'say "hi"'}, in_json=True) == '{"to": "say \\"hi\\""}'


def test_client_token_shapes_are_defused() -> None:
    assert neutralise("give me <EMAIL_abcdefghijkl>") == "give me \u2039EMAIL_abcdefghijkl>"
    assert neutralise("a <b> tag") == "a <b> tag"


async def test_vault_tokens_are_stable_scoped_and_reversible() -> None:
    vault = TokenVault(b"k" * 32, MemoryVaultStore(), ttl=60)
    a = await vault.tokenize("t:c1", [("EMAIL", "x@y.io")])
    again = await vault.tokenize("t:c1", [("EMAIL", "x@y.io")])
    other = await vault.tokenize("t:c2", [("EMAIL", "x@y.io")])
    token = a[("EMAIL", "x@y.io")]
    assert token == again[("EMAIL", "x@y.io")] != other[("EMAIL", "x@y.io")]
    assert await vault.recall("t:c1", [token]) == {token: "x@y.io"}
    assert await vault.recall("t:c2", [token]) == {}  # another conversation cannot open it


async def test_a_token_collision_gives_the_newcomer_a_longer_token() -> None:
    store = MemoryVaultStore()
    vault = TokenVault(b"k" * 32, store, ttl=60)
    first = (await vault.tokenize("s", [("EMAIL", "a@a.io")]))[("EMAIL", "a@a.io")]
    vault.token = lambda scope, kind, value, length=12: first if length == 12 else f"<{kind}_{'z' * length}>"  # type: ignore[method-assign]
    second = (await vault.tokenize("s", [("EMAIL", "b@b.io")]))[("EMAIL", "b@b.io")]
    assert second != first and len(second) > len(first)
    assert await vault.recall("s", [first, second]) == {first: "a@a.io", second: "b@b.io"}


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


async def test_a_body_screened_clean_is_not_screened_again_and_one_with_findings_always_is() -> None:
    class Counting(PatternDetector):
        calls = 0

        def detect(self, text: str) -> list[Entity]:
            Counting.calls += 1
            return super().detect(text)

    policy = Policy("default", actions={"EMAIL": "block"}, default_class="internal")
    stage = DlpStage(Counting(memo=0), {"default": policy}, {}, None, Metrics(CollectorRegistry()))

    def ctx(text: str, requested: str | None = None) -> RequestContext:
        body = {
            "model": "m",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        }
        return context(body, raw_body=orjson.dumps(body), requested_class=requested)

    for requested in (None, None, "confidential"):  # the class is still worked out per request
        clean = ctx("Summarise the quarterly report.", requested)
        assert await reaches_the_rest(stage, clean)
        assert clean.protection.data_class == (requested or "internal") and clean.protection.screened
    assert Counting.calls == 2  # two texts, screened once
    for _ in range(2):
        with pytest.raises(Forbidden):
            await reaches_the_rest(stage, ctx("Write to jane.doe@example.com"))
    assert Counting.calls == 6  # a body with findings is screened every time
    for _ in range(2):
        await reaches_the_rest(stage, ctx("Keep <EMAIL_1> as it is"))  # token-shaped: rewritten, not remembered
    assert Counting.calls == 10
