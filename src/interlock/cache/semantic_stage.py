"""The semantic cache stage: answer a request whose last user turn means what an earlier one did.

It runs after the exact cache (which answers identical requests for less) and only for groups
with `cache.semantic` and requests the exact cache would cache (`GroupCache.mode`). The request
is split (cache/semantic_keys.py) into a partition, matched exactly, and the last user turn,
embedded and compared with the partition's entries: the nearest ones at or above the threshold
are offered to the guard (`same_question`: negation, antonyms, entities, numbers) in order, and
the first it accepts answers. "What is the capital of France?" and "...of Germany?" are close
in embedding space; the guard is what keeps one from being served the other's answer.

An embedder that does not answer within `timeout_ms` makes the request a miss (counted as
`timeout`), never an error; so does an embedding service too loaded to take the turn (`busy`).
On a miss the answer is stored when it is a 200 without tool calls; a stream is stored only
when it completed, and a hit for a streamed request is replayed as a stream (the partition
includes `stream`, so a stream is only ever served a stream).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from numpy.typing import NDArray

from ..config import GroupCache, SemanticCacheSettings
from ..embeddings.types import TextEmbedder
from ..errors import Unavailable
from ..observe.metrics import Metrics
from ..pipeline.context import RequestContext, SemanticMatch
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import StreamTap
from .entry import CachedAnswer
from .keys import is_cacheable
from .semantic_entry import Added, SemanticEntry, vector_bytes
from .semantic_guard import same_question
from .semantic_keys import semantic_question
from .semantic_memory import SemanticMemory
from .semantic_share import SemanticShare
from .stage import as_result

Guard = Callable[[str, str], bool]


def has_tool_calls(answer: CachedAnswer) -> bool:
    """Whether a chat answer (a body, or a stream's events) calls a tool or a function."""
    payloads = [answer.body] if answer.kind == "json" else answer.events
    for payload in payloads:
        if b"tool_calls" not in payload and b"function_call" not in payload:
            continue
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True  # cannot tell: never cache it
        choices = data.get("choices") if isinstance(data, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            part = choice.get("message") or choice.get("delta") or {}
            calls = isinstance(part, dict) and (part.get("tool_calls") or part.get("function_call"))
            if calls or choice.get("finish_reason") in ("tool_calls", "function_call"):
                return True
    return False


class SemanticCacheStage:
    name = "semantic_cache"  # its span's name (observe/tracing.py)

    def __init__(
        self,
        policies: Mapping[str, GroupCache],
        memories: Mapping[str, SemanticMemory],
        embedder: TextEmbedder,
        metrics: Metrics,
        share: SemanticShare | None = None,
        max_entry_bytes: int = 1024 * 1024,
        guard: Guard = same_question,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policies = {name: p for name, p in policies.items() if p.semantic is not None and name in memories}
        self._memories = memories
        self._embedder = embedder
        self._metrics = metrics
        self._share = share
        self._max_entry_bytes = max_entry_bytes
        self._guard = guard
        self._clock = clock

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        request = ctx.request
        policy = self._policies.get(request.model)
        control = request.cache_control
        if (
            policy is None
            or (control.no_cache and control.no_store)
            or not is_cacheable(policy, request.endpoint, ctx.body)
        ):
            return await call_next(ctx)
        question = semantic_question(ctx)
        if question is None:
            return await call_next(ctx)
        partition, turn = question
        semantic = policy.semantic
        assert semantic is not None  # only such policies are kept
        started = time.perf_counter()
        vector, failure = await self._embed(turn, semantic.timeout_ms / 1000)
        if vector is None:
            self._metrics.semantic_lookup(request.model, failure, time.perf_counter() - started)
            return await call_next(ctx)
        if not control.no_cache:
            threshold = max(semantic.threshold, control.semantic_threshold or 0.0)
            found, result = self._match(request.model, partition, turn, vector, semantic, threshold)
            self._metrics.semantic_lookup(request.model, result, time.perf_counter() - started)
            if found is not None:
                entry, similarity = found
                ctx.semantic = SemanticMatch(entry.id, similarity)
                return as_result(entry.answer)
        answer = await call_next(ctx)
        if control.no_store:
            return answer
        ttl = control.ttl if control.ttl is not None else policy.ttl
        return self._stored(ctx, answer, partition, turn, vector, ttl)

    async def _embed(self, turn: str, timeout: float) -> tuple[NDArray[Any] | None, str]:
        """The turn's vector, or None and why not: `timeout` (too slow) or `busy` (the embedding
        service's queue is full, or it is shutting down). Either is a miss, never an error."""
        try:
            async with asyncio.timeout(timeout):
                rows = await self._embedder.embed([turn])
        except TimeoutError:
            return None, "timeout"
        except Unavailable:
            return None, "busy"
        row: NDArray[Any] = rows[0]
        return row, "miss"

    def _match(
        self,
        model: str,
        partition: str,
        turn: str,
        vector: NDArray[Any],
        semantic: SemanticCacheSettings,
        threshold: float,
    ) -> tuple[tuple[SemanticEntry, float] | None, str]:
        """The entry that answers, if any, and the lookup's result for the metric."""
        result = "miss"
        for entry, similarity in self._memories[model].search(partition, vector, semantic.candidates, self._clock()):
            if similarity < threshold:
                break
            if self._guard(turn, entry.text):
                return (entry, float(similarity)), "hit"
            result = "guarded"
        return None, result

    def _stored(
        self, ctx: RequestContext, result: Result, partition: str, turn: str, vector: NDArray[Any], ttl: int
    ) -> Result:
        """`result`, its answer kept (a stream's once it completes) when it may be."""
        keep = self._keeper(ctx.request.model, partition, turn, vector, ttl)
        if isinstance(result, Completion):
            if result.status == 200:
                keep(CachedAnswer("json", body=result.body))
            return result
        collected: list[bytes] = []

        def on_end(error: BaseException | None) -> None:
            if error is None and not any(e.startswith(b'{"error"') for e in collected):
                keep(CachedAnswer("sse", events=collected))

        return StreamResult(StreamTap(result.events, collected.append, on_end), result.headers)

    def _keeper(
        self, model: str, partition: str, turn: str, vector: NDArray[Any], ttl: int
    ) -> Callable[[CachedAnswer], None]:
        def keep(answer: CachedAnswer) -> None:
            if ttl <= 0 or answer.size() > self._max_entry_bytes or has_tool_calls(answer):
                return
            entry = SemanticEntry(
                secrets.token_hex(12), model, partition, turn, vector_bytes(vector), answer, self._clock() + ttl
            )
            if self._memories[model].add(entry, self._clock()) and self._share is not None:
                self._share.publish_later(Added(entry))

        return keep

    def invalidate(self, model: str) -> int | None:
        """Forget the group's entries here and, through Redis, in every other process: how many
        this process held, or None when the group has no semantic cache."""
        memory = self._memories.get(model)
        if memory is None:
            return None
        dropped = memory.clear()
        if self._share is not None:
            self._share.drop_later(model)
        return dropped
