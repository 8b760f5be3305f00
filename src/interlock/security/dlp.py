"""The DLP stage: find PII and secrets in a request, classify it, and allow, mask, redact,
tokenize or block by policy; put tokenized values back into the answer on the way out.

Fail closed: if detection errors or times out, or tokens cannot be stored, the request is
blocked (unless the policy says `on_error: allow`); it is never sent on raw. Errors name the
policy and the entity types, never a value.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson
from redis.exceptions import RedisError

from ..errors import Forbidden, Unavailable
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import MappedStream
from .pii.detector import Entity, PatternDetector, surest, without_overlaps
from .pii.detokenize import StreamDetokenizer, decode_event, detokenize_answer, neutralise
from .pii.ner import NerDetector
from .pii.presidio import PresidioDetector
from .pii.vault import TokenVault, vault_scope
from .roles import class_rank

MAX_CLEAN_BODIES = 4096  # per policy
NON_ASCII_INLINE_CHARS = 2048  # beyond this, text that is not all ASCII is scanned on a worker thread
STRICTNESS = {"allow": 0, "mask": 1, "tokenize": 2, "redact": 3, "block": 4}  # how little of a value leaves


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    actions: Mapping[str, str] = field(default_factory=dict)  # entity type -> action
    default_action: str = "allow"
    classify: Mapping[str, str] = field(default_factory=dict)  # entity type -> data class
    default_class: str = "internal"
    on_error: str = "block"
    max_inline_chars: int = 32_768  # larger requests are scanned on a worker thread
    scan_timeout_s: float = 2.0
    ner: bool = False
    presidio: bool = False
    log_clean_text: bool = False  # the redacted request log writes the text of requests with no findings


@dataclass(frozen=True, slots=True)
class Screened:
    """`DlpStage.screen_texts`'s outcome: the texts as they may be kept, and what was in them."""

    texts: list[str]
    findings: dict[str, int]  # entity type -> count
    data_class: str  # the class the findings make the texts
    refused: tuple[str, ...]  # entity types the policy blocks that were found: keep none of it


def mask(value: str) -> str:
    visible = value[-4:] if len(value) > 8 else ""
    return "****" + visible


Slot = tuple[Any, Any]  # a string inside the request body: `holder[key]`


def _slots(body: dict[str, Any]) -> list[Slot]:
    slots: list[Slot] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            slots.append((message, "content"))
        elif isinstance(content, list):
            slots += [(p, "text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                slots.append((function, "arguments"))
    for name in ("prompt", "input"):
        value = body.get(name)
        if isinstance(value, str):
            slots.append((body, name))
        elif isinstance(value, list):
            slots += [(value, i) for i, item in enumerate(value) if isinstance(item, str)]
    return slots


class DlpStage:
    def __init__(
        self,
        detector: PatternDetector,
        policies: Mapping[str, Policy],
        group_policy: Mapping[str, str],
        vault: TokenVault | None,
        metrics: Metrics,
        ner: NerDetector | None = None,
        presidio: PresidioDetector | None = None,
    ) -> None:
        self._ner = ner
        self._presidio = presidio
        self._detector = detector
        self._policies = dict(policies)
        self._group_policy = dict(group_policy)
        self._vault = vault
        self._metrics = metrics
        # Per policy, BLAKE2b digests of recent request bodies in which that policy's detectors
        # found nothing (and no token-shaped text): the same body again, as every cache hit is,
        # is not screened again. A digest, never the body.
        self._clean: dict[str, dict[bytes, None]] = {name: {} for name in self._policies}
        # The slower detectors each policy adds to the patterns, worked out once.
        self._extra = {p.name: self._extra_for(p) for p in self._policies.values()}
        self._rank = {p.name: self._strictest_first(p) for p in self._policies.values()}
        # Per policy, what a request in which nothing was found comes to, by (class asked for,
        # the identity's max class): its data class, and whether the identity may send it. A
        # few entries (the classes are a short list), worked out on first use.
        self._clean_outcomes: dict[str, dict[tuple[str | None, str], tuple[str, bool]]] = {
            name: {} for name in self._policies
        }

    def _extra_for(self, policy: Policy) -> list[NerDetector | PresidioDetector]:
        pairs = ((self._ner, policy.ner), (self._presidio, policy.presidio))
        return [d for d, on in pairs if on and d is not None]

    @staticmethod
    def _inline(policy: Policy, texts: list[str]) -> bool:
        """Short texts are scanned on the event loop. Text that is not ASCII is folded first
        (pii/normalize.py, about 75 µs per KB of Chinese here), so less of it stays inline.
        (`str.isascii` reads a flag the string already has.)"""
        size = sum(map(len, texts))
        if size > policy.max_inline_chars:
            return False
        return size <= NON_ASCII_INLINE_CHARS or all(t.isascii() for t in texts)

    async def _scan(self, policy: Policy, texts: list[str]) -> list[list[Entity]] | None:
        """Entities per text: inline for short texts the patterns alone scan, else on a thread."""
        extra = self._extra[policy.name]
        if not extra and self._inline(policy, texts):
            return self._scan_inline(policy, texts)
        return await self._scan_threaded(policy, texts, extra)

    def _scan_inline(self, policy: Policy, texts: list[str]) -> list[list[Entity]] | None:
        """Entities per text, found by the patterns on the event loop: for short texts, which
        take microseconds (and a remembered text less)."""
        try:
            detect = self._detector.detect
            return [detect(text) for text in texts]
        except Exception:  # any detector failure is a policy decision: block or let through
            self._failed(policy)
            return None

    async def _scan_threaded(
        self, policy: Policy, texts: list[str], extra: list[NerDetector | PresidioDetector]
    ) -> list[list[Entity]] | None:
        """The same on a worker thread, with the policy's slower detectors and a timeout."""
        try:
            async with asyncio.timeout(policy.scan_timeout_s):
                return await asyncio.to_thread(self._scan_all, policy, texts, extra)
        except Exception:
            self._failed(policy)
            return None

    def _failed(self, policy: Policy) -> None:
        """Detection failed: count it, and block the request unless the policy lets it through."""
        self._metrics.dlp_error(policy.name)
        if policy.on_error == "allow":
            return None
        raise Unavailable(
            f"PII detection failed; the request was blocked by DLP policy `{policy.name}`",
            code="dlp_unavailable",
            retry_after=1,
        ) from None

    def _scan_all(
        self, policy: Policy, texts: list[str], extra: list[NerDetector | PresidioDetector]
    ) -> list[list[Entity]]:
        found = [self._detector.detect(text) for text in texts]
        rank = self._rank[policy.name]
        for detector in extra:  # merged: where two findings overlap, the one the policy treats strictest wins
            found = [without_overlaps(f + detector.detect(text), rank) for f, text in zip(found, texts, strict=True)]
        return found

    @staticmethod
    def _strictest_first(policy: Policy) -> Callable[[Entity], tuple[Any, ...]]:
        """Overlapping findings of two detectors: keep the one whose action is the strictest, then
        the surest. A PERSON the policy allows must not win over the date of birth it tokenizes and
        let the date through (the span kept grows over both either way)."""

        def rank(e: Entity) -> tuple[Any, ...]:
            return (-STRICTNESS[policy.actions.get(e.type, policy.default_action)], *surest(e))

        return rank

    async def start(self) -> None:
        """Load the slow detectors (made only when a policy uses them) before the first request."""
        if self._ner is not None:
            await asyncio.to_thread(self._ner.load)
        if self._presidio is not None:
            await asyncio.to_thread(self._presidio.load)

    def __call__(self, ctx: RequestContext, call_next: Next) -> Awaitable[Result]:
        # A body screened clean lately (every cache hit's) is settled here, without a coroutine
        # of its own: nothing to scan, no tokens to restore in the answer.
        request = ctx.request
        policy = self._policies[self._group_policy.get(request.model, "default")]
        raw = request.raw_body
        digest = blake2b(raw, digest_size=16).digest() if raw else None
        if digest is not None and digest in self._clean[policy.name]:
            self._nothing_found(ctx, policy)
            return call_next(ctx)
        return self._screened_call(ctx, call_next, policy, digest)

    async def _screened_call(
        self, ctx: RequestContext, call_next: Next, policy: Policy, digest: bytes | None
    ) -> Result:
        mapping = await self._screen(ctx, policy, digest)
        result = await call_next(ctx)
        return result if not mapping else restore_tokens(result, mapping)

    async def _screen(self, ctx: RequestContext, policy: Policy, digest: bytes | None) -> dict[str, str] | None:
        """Find, classify and act on a body not remembered clean (`digest`: of its raw bytes, if
        any): a block raises; a rewrite becomes `ctx.protection.body`. The tokens given out, with
        the values they stand for, are returned for the answer."""
        request = ctx.request
        protection = ctx.protection
        clean = self._clean[policy.name]
        texts = [holder[key] for holder, key in _slots(request.body)]
        angled = neutralised = False  # a text with `<` is screened every time, never remembered clean
        for i, text in enumerate(texts):
            if "<" in text:  # a client's token-shaped text never resolves to anyone's values
                angled = True
                texts[i] = neutralise(text)
                neutralised = neutralised or texts[i] != text
        found = await self._scan(policy, texts)
        if found is None or not any(found):  # the common case: nothing to act on
            if neutralised:
                protection.body = _rewritten(request.body, texts)
            elif found is not None and digest is not None and not angled:
                if len(clean) >= MAX_CLEAN_BODIES:
                    del clean[next(iter(clean))]  # the oldest
                clean[digest] = None
            self._nothing_found(ctx, policy, scanned=found is not None)
            return None
        counts = Counter(e.type for entities in found for e in entities)
        protection.findings = dict(counts)
        for kind, n in counts.items():
            self._metrics.pii_found(kind, n)
        self._classify(ctx, policy, counts)
        blocked = sorted(t for t in counts if policy.actions.get(t, policy.default_action) == "block")
        if blocked:
            self._metrics.dlp_blocked(policy.name)
            raise Forbidden(
                f"Request blocked by DLP policy `{policy.name}`: it contains {', '.join(blocked)}",
                code="dlp_blocked",
            )
        tokens = await self._tokenize(self._scope(ctx), policy, texts, found)
        rewritten = [self._apply(policy, text, entities, tokens) for text, entities in zip(texts, found, strict=True)]
        if neutralised or rewritten != texts:
            protection.body = _rewritten(request.body, rewritten)
        protection.screened = True
        # The text may be logged only when every value found in it was masked, redacted or
        # tokenized: a value the policy allows stays in it as it was sent.
        protection.loggable = all(policy.actions.get(t, policy.default_action) != "allow" for t in counts)
        return {token: value for (_, value), token in tokens.items()} if tokens else None

    def _nothing_found(self, ctx: RequestContext, policy: Policy, scanned: bool = True) -> None:
        """Nothing to act on; `scanned` false: detection failed and the policy let the request
        through unscanned (`on_error: allow`), so nothing is known of its text. As `_classify`
        with no findings would decide, from the policy's remembered outcomes."""
        request = ctx.request
        asked = request.requested_class
        max_class = request.identity.max_class
        outcomes = self._clean_outcomes[policy.name]
        outcome = outcomes.get((asked, max_class))
        if outcome is None:
            outcome = outcomes[(asked, max_class)] = _clean_outcome(policy, asked, max_class)
        protection = ctx.protection
        data_class = protection.data_class = outcome[0]
        if not outcome[1]:
            raise Forbidden(f"This identity may not send {data_class} data", code="data_class_forbidden")
        protection.screened = scanned
        protection.loggable = scanned and policy.log_clean_text

    @staticmethod
    def _classify(ctx: RequestContext, policy: Policy, found: Iterable[str]) -> None:
        """The request's data class: the highest of the policy's default, the classes of the
        entity types found and the class the caller asked for; refused when it is above what the
        caller may send."""
        request = ctx.request
        data_class = ctx.protection.data_class = _data_class(policy, found, request.requested_class)
        if class_rank(data_class) > class_rank(request.identity.max_class):
            raise Forbidden(f"This identity may not send {data_class} data", code="data_class_forbidden")

    async def _tokenize(
        self, scope: str, policy: Policy, texts: list[str], found: list[list[Entity]], ttl: int | None = None
    ) -> dict[tuple[str, str], str]:
        """Tokens for the values the policy tokenizes, from the vault: (type, value) -> token."""
        pairs = [
            (e.type, text[e.start : e.end])
            for text, entities in zip(texts, found, strict=True)
            for e in entities
            if policy.actions.get(e.type, policy.default_action) == "tokenize"
        ]
        if not pairs:
            return {}
        if self._vault is None:
            raise Unavailable(f"DLP policy `{policy.name}` tokenizes, but no vault is configured")
        try:
            return await self._vault.tokenize(scope, pairs, ttl)
        except (RedisError, OSError, TimeoutError):
            self._metrics.dlp_error(policy.name)
            raise Unavailable(
                f"Tokens cannot be stored; the request was blocked by DLP policy `{policy.name}`",
                code="dlp_unavailable",
                retry_after=1,
            ) from None

    @property
    def vault(self) -> TokenVault | None:
        return self._vault

    async def screen_texts(self, policy_name: str, texts: list[str], scope: str, ttl: int | None = None) -> Screened:
        """Texts that are not a request (a document's chunks, at ingestion) screened under a
        policy as a request's are: found, classified, and masked, redacted or tokenized (tokens
        in the vault under `scope`, kept `ttl` seconds). Nothing is rewritten when an entity type
        the policy blocks is found: `refused` names the types, and the caller refuses the text.
        Detection failing raises `Unavailable` unless the policy says `on_error: allow`."""
        policy = self._policies[policy_name]
        texts = [neutralise(t) for t in texts]
        found = await self._scan(policy, texts)
        if found is None or not any(found):
            return Screened(texts, {}, policy.default_class, ())
        counts = Counter(e.type for entities in found for e in entities)
        for kind, n in counts.items():
            self._metrics.pii_found(kind, n)
        classes = [policy.default_class, *(policy.classify[t] for t in counts if t in policy.classify)]
        data_class = max(classes, key=class_rank)
        refused = tuple(sorted(t for t in counts if policy.actions.get(t, policy.default_action) == "block"))
        if refused:
            return Screened(texts, dict(counts), data_class, refused)
        tokens = await self._tokenize(scope, policy, texts, found, ttl)
        rewritten = [self._apply(policy, text, entities, tokens) for text, entities in zip(texts, found, strict=True)]
        return Screened(rewritten, dict(counts), data_class, ())

    @staticmethod
    def _apply(policy: Policy, text: str, entities: list[Entity], tokens: Mapping[tuple[str, str], str]) -> str:
        """The text with each entity masked, redacted or tokenized as the policy says."""
        for e in reversed(entities):  # from the end, so earlier offsets stay valid
            action = policy.actions.get(e.type, policy.default_action)
            value = text[e.start : e.end]
            if action == "mask":
                new = mask(value)
            elif action == "redact":
                new = f"[{e.type}]"
            elif action == "tokenize":
                new = tokens[(e.type, value)]
            else:
                continue
            text = text[: e.start] + new + text[e.end :]
        return text

    @staticmethod
    def _scope(ctx: RequestContext) -> str:
        """A request's vault scope, `<tenant>:rq:<conversation or request id>`: its own namespace,
        apart from stored documents' `<tenant>:vs:<store>` (`retrieval.ingest.token_scope`), so a
        conversation named `vs:<store>` never reaches a store's tokens."""
        request = ctx.request
        return vault_scope(request.tenant, "rq", request.conversation or request.request_id)


def _data_class(policy: Policy, found: Iterable[str], requested: str | None) -> str:
    """The highest of the policy's default class, the classes of the entity types found and the
    class asked for (the first of them on a tie)."""
    classes = [policy.default_class, *(policy.classify[t] for t in found if t in policy.classify)]
    if requested is not None:
        classes.append(requested)
    return max(classes, key=class_rank)


def _clean_outcome(policy: Policy, requested: str | None, max_class: str) -> tuple[str, bool]:
    """What `_classify` decides when nothing was found: the data class, and whether an identity
    whose max class is `max_class` may send it."""
    data_class = _data_class(policy, (), requested)
    return data_class, class_rank(data_class) <= class_rank(max_class)


def _rewritten(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A copy of `body` with its texts (in `_slots` order) replaced; the parsed body stays as it
    was. orjson's round trip is a deep copy of plain JSON data, and the fastest one at hand."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(body))
    for (holder, key), text in zip(_slots(copy), texts, strict=True):
        holder[key] = text
    return copy


def restore_tokens(result: Result, mapping: Mapping[str, str]) -> Result:
    """Tokenized values put back into the answer, whole or as its stream goes by."""
    if isinstance(result, Completion):
        answer = decode_event(result.body)
        if answer is None:
            return result
        detokenize_answer(answer, mapping)
        return Completion(orjson.dumps(answer), result.status, result.headers)
    detokenizer = StreamDetokenizer(mapping)

    def restore(payload: bytes) -> bytes:
        event = decode_event(payload)
        return payload if event is None else orjson.dumps(detokenizer.feed(event))

    return StreamResult(MappedStream(result.events, restore), result.headers)


def policy_from(name: str, raw: Any) -> Policy:
    return Policy(
        name=name,
        actions=dict(raw.actions),
        default_action=raw.default_action,
        classify=dict(raw.classify),
        default_class=raw.default_class,
        on_error=raw.on_error,
        max_inline_chars=raw.max_inline_chars,
        scan_timeout_s=raw.scan_timeout_s,
        ner=raw.ner,
        presidio=raw.presidio,
        log_clean_text=raw.log_clean_text,
    )
