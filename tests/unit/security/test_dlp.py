from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.errors import Forbidden
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.security.dlp import DlpStage, Policy
from interlock.security.pii.detector import Entity, PatternDetector
from interlock.security.pii.detokenize import TOKEN
from interlock.security.pii.vault import MemoryVaultStore, TokenVault
from interlock.security.roles import DEFAULT_ROLES, OPEN, Identity
from tests.support.clock import Clock
from tests.support.context import context, reaches_the_rest


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


class Fixed:
    """A second detector (as NER is) that finds what it is told to: (type, text, score)."""

    name = "fixed"

    def __init__(self, *found: tuple[str, str, float]) -> None:
        self.found = found

    def load(self) -> None: ...

    def detect(self, text: str) -> list[Entity]:
        return [Entity(t, text.index(v), text.index(v) + len(v), s) for t, v, s in self.found if v in text]


async def stage_with(policy: Policy, ner: Fixed) -> DlpStage:
    return DlpStage(PatternDetector(memo=0), {"default": policy}, {}, None, Metrics(CollectorRegistry()), ner)  # type: ignore[arg-type]


async def test_where_two_detectors_overlap_the_strictest_action_wins_and_covers_both() -> None:
    # The entity model's PERSON "Jan" (surer, and allowed) overlaps the date of birth the policy
    # redacts: were the surer finding kept, its action (allow) would let the date through.
    text = "Patient born Jan. 29th, 1961 asked about the results."
    policy = Policy("default", actions={"DATE_OF_BIRTH": "redact"}, ner=True)
    stage = await stage_with(policy, Fixed(("PERSON", "Jan", 0.85)))
    ctx = context({"model": "m", "messages": [{"role": "user", "content": text}]})
    assert await reaches_the_rest(stage, ctx)
    sent = ctx.body["messages"][0]["content"]
    assert "1961" not in sent and "29th" not in sent and "Jan" not in sent
    assert sent == "Patient born [DATE_OF_BIRTH] asked about the results."
    assert ctx.protection.findings == {"DATE_OF_BIRTH": 1}


async def test_a_rewrite_leaves_the_request_as_parsed_untouched() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Write to jane.doe@example.com"}]}
    ctx = context(body, raw_body=orjson.dumps(body))
    stage = DlpStage(PatternDetector(), {"default": Policy("default", actions={"EMAIL": "mask"})}, {}, None,
                     Metrics(CollectorRegistry()))  # fmt: skip
    assert await reaches_the_rest(stage, ctx)
    assert ctx.body["messages"][0]["content"] == "Write to ****.com"  # what leaves the gateway
    assert ctx.request.body["messages"][0]["content"] == "Write to jane.doe@example.com"  # as parsed
    assert ctx.body is ctx.protection.body and ctx.request.body is body


def test_long_text_that_is_not_ascii_is_scanned_off_the_event_loop() -> None:
    policy = Policy("default")
    assert DlpStage._inline(policy, ["a" * 30_000])  # ASCII: inline up to max_inline_chars
    assert not DlpStage._inline(policy, ["a" * 40_000])
    assert DlpStage._inline(policy, ["电话" * 1000])  # 2,000 characters: inline still
    assert not DlpStage._inline(policy, ["电话" * 1500, "ascii"])  # 3,005, some not ASCII: a worker thread


# -- screen_texts: stored documents' chunks ------------------------------------------------------------
def screening_stage(policy: Policy, clock: Clock | None = None) -> tuple[DlpStage, TokenVault]:
    vault = TokenVault(b"k" * 32, MemoryVaultStore(clock=clock or Clock(0.0)), ttl=60)
    return DlpStage(PatternDetector(), {"docs": policy}, {}, vault, Metrics(CollectorRegistry())), vault


async def test_screen_texts_tokenizes_under_the_scope_and_the_values_come_back_from_the_vault() -> None:
    policy = Policy("docs", actions={"EMAIL": "tokenize"}, classify={"EMAIL": "confidential"})
    stage, vault = screening_stage(policy)
    screened = await stage.screen_texts("docs", ["Write to alice@example.com today.", "nothing here"], "t:vs:1")
    assert "alice@example.com" not in screened.texts[0] and screened.texts[1] == "nothing here"
    assert screened.findings == {"EMAIL": 1} and screened.data_class == "confidential" and not screened.refused
    token = TOKEN.search(screened.texts[0])
    assert token is not None
    assert await vault.recall("t:vs:1", [token.group(0)]) == {token.group(0): "alice@example.com"}
    assert await vault.recall("t:vs:2", [token.group(0)]) == {}  # another store's scope


async def test_screen_texts_keeps_tokens_for_the_ttl_it_is_given_not_the_vaults() -> None:
    clock = Clock(0.0)
    stage, vault = screening_stage(Policy("docs", actions={"EMAIL": "tokenize"}), clock)
    kept = (await stage.screen_texts("docs", ["alice@example.com"], "long", ttl=3600)).texts[0]
    default = (await stage.screen_texts("docs", ["alice@example.com"], "short")).texts[0]
    clock.now = 3000.0
    assert await vault.recall("long", [kept]) == {kept: "alice@example.com"}
    assert await vault.recall("short", [default]) == {}


async def test_screen_texts_refuses_with_the_types_and_rewrites_nothing() -> None:
    stage, _ = screening_stage(Policy("docs", actions={"EMAIL": "block", "US_SSN": "redact"}))
    screened = await stage.screen_texts("docs", ["alice@example.com and 078-05-1120"], "s")
    assert screened.refused == ("EMAIL",)
    assert screened.texts == ["alice@example.com and 078-05-1120"]


async def test_screen_texts_defuses_token_shaped_text_of_the_document() -> None:
    stage, _ = screening_stage(Policy("docs"))
    screened = await stage.screen_texts("docs", ["see <EMAIL_abcdefghijkl>"], "s")
    assert TOKEN.search(screened.texts[0]) is None


async def test_a_request_cannot_tokenize_in_a_stores_scope_by_naming_its_conversation_so() -> None:
    # A stored document's tokens live in `<tenant>:vs:<store>`; a conversation named `vs:<store>`
    # must not reach that scope (it would tell whether a guessed value is in the store, and cut
    # the stored mapping's TTL to the request's).
    clock = Clock(0.0)
    vault = TokenVault(b"k" * 32, MemoryVaultStore(clock=clock), ttl=60)
    policies = {name: Policy(name, actions={"EMAIL": "tokenize"}) for name in ("default", "docs")}
    stage = DlpStage(PatternDetector(), policies, {}, vault, Metrics(CollectorRegistry()))
    scope = f"{OPEN.tenant}:vs:vs_1"  # retrieval.ingest.token_scope
    stored = (await stage.screen_texts("docs", ["alice@example.com"], scope, ttl=10**8)).texts[0]
    ctx = context({"model": "m", "messages": [{"role": "user", "content": "alice@example.com"}]},
                  conversation="vs:vs_1")  # fmt: skip
    assert await reaches_the_rest(stage, ctx)
    sent = ctx.body["messages"][0]["content"]
    assert TOKEN.fullmatch(sent) and sent != stored
    clock.now = 3600.0  # the request's TTL (60 s) is long past; the store's mapping stays
    assert await vault.recall(scope, [stored]) == {stored: "alice@example.com"}


def identity(max_class: str, subject: str = "k") -> Identity:
    return Identity(subject, "key", "t", ("user",), DEFAULT_ROLES["user"], max_class=max_class)


async def test_a_body_remembered_clean_is_still_classified_and_refused_per_request() -> None:
    # The remembered-clean path (every cache hit's) decides the data class as a scan would: the
    # policy's default, raised (never lowered) by the class asked for, refused above what the
    # identity may send; a body remembered under one identity is refused to another allowed less.
    policy = Policy("default", actions={"EMAIL": "block"}, default_class="confidential", log_clean_text=True)
    detector = PatternDetector(memo=0)
    stage = DlpStage(detector, {"default": policy}, {}, None, Metrics(CollectorRegistry()))
    body = {"model": "m", "messages": [{"role": "user", "content": "Summarise the quarterly report."}]}

    def ctx(who: Identity, requested: str | None = None) -> RequestContext:
        return context(body, raw_body=orjson.dumps(body), identity=who, requested_class=requested)

    first = ctx(identity("restricted", "a"))
    assert await reaches_the_rest(stage, first)  # scanned, and remembered clean
    assert (first.protection.data_class, first.protection.screened, first.protection.loggable) == (
        "confidential", True, True
    )  # fmt: skip

    def no_more_scans(text: str) -> list[Entity]:
        raise AssertionError("a body remembered clean was scanned again")

    detector.detect = no_more_scans  # type: ignore[method-assign]
    for requested, expected in ((None, "confidential"), ("public", "confidential"), ("restricted", "restricted")):
        again = ctx(identity("restricted", "a"), requested)
        assert await reaches_the_rest(stage, again)
        assert (again.protection.data_class, again.protection.screened, again.protection.loggable) == (
            expected, True, True
        )  # fmt: skip
    lower = ctx(identity("internal", "b"))
    with pytest.raises(Forbidden) as err:
        await reaches_the_rest(stage, lower)
    assert err.value.code == "data_class_forbidden" and "confidential" in err.value.message
    assert lower.protection.data_class == "confidential" and not lower.protection.screened
    above = ctx(identity("confidential", "c"), "restricted")
    with pytest.raises(Forbidden) as err:
        await reaches_the_rest(stage, above)
    assert err.value.code == "data_class_forbidden" and "restricted" in err.value.message
    assert above.protection.data_class == "restricted" and not above.protection.screened
    assert await reaches_the_rest(stage, ctx(identity("confidential", "c"), "confidential"))
