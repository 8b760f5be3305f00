"""The retrieval stage: chat completions that answer with chunks of vector stores.

A chat request retrieves when it names `vector_store_ids` (the official client's `extra_body`)
or its model group is configured with `retrieval: {vector_store_ids: [...], max_results: 4}`
(the request's ids win). The stage embeds the last user turn, searches the stores of the
caller's tenant, renders the retrieval template (`prompts/templates.py`: the built-in
`retrieval`, or the one `retrieval.template` names) with the chunks as `sources` (and the turn
as `question`, when the template names it) and writes the body that leaves the gateway
(`ctx.retrieval.body`): the system part first, the user part in place of the last user turn,
`vector_store_ids` removed. The answer carries the chunks it was given as `citations` (file id,
filename, chunk index, score, store id; never text), a stream in its first event.

Where it sits (app.py): after the limits and after DLP, before the caches.
- After DLP: the turn it embeds is the one DLP left (a tokenized value is searched as its
  token), and the chunks it adds were screened when they were ingested, under the retrieval
  policy; DLP's restoring of tokens in the answer wraps this stage, so the citations pass
  through it. Chunk text is never de-tokenized into a prompt: the model sees what the index
  holds. The tokens of the chunks that come back in the answer are put back for a caller with
  `read_pii` (retrieval/service.py's rule), by DLP's own restoring, stream or not.
- Before the caches: they key on the body with the chunks in it, so a cached answer is reused
  only for the same chunks; a cache hit still gets its citations from this stage.
- The stores' data classes: the request takes the highest of them (`ctx.retrieval.data_class`;
  `RequestContext.data_class` is the higher of that and DLP's), so the router sends chunks of a
  restricted store only to deployments cleared for restricted, and fails closed without one. A
  store above the caller's `max_class` is not found (404, as another tenant's) before anything is
  read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..cache.semantic_keys import last_user_turn
from ..config import GroupRetrieval
from ..errors import ConfigError
from ..pipeline.context import Endpoint, RequestContext, Retrieval
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import MappedStream
from ..prompts.templates import TemplateBook
from ..security.dlp import restore_tokens
from ..security.roles import class_rank
from .service import VectorStores
from .types import Hit

DEFAULT_TEMPLATE = "retrieval"
DEFAULT_SYSTEM = (
    "Answer the user's question from the numbered sources below. Cite a source by its number, "
    "as [1]. If the sources do not hold the answer, say so.\n\n{{ sources }}"
)
VARIABLES = frozenset({"sources", "question"})


def sources_text(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{i}] {h.filename} (chunk {h.chunk_index})\n{h.text}" for i, h in enumerate(hits, 1))


def citation(hit: Hit) -> dict[str, Any]:
    return {"vector_store_id": hit.store_id, "file_id": hit.file_id, "filename": hit.filename,
            "chunk_index": hit.chunk_index, "score": round(hit.score, 6)}  # fmt: skip


def with_citations(result: Result, citations: list[dict[str, Any]]) -> Result:
    """`citations` in the answer (a field beside `choices`) or in a stream's first event."""
    if isinstance(result, Completion):
        if result.status != 200:
            return result
        answer = orjson.loads(result.body)
        answer["citations"] = citations
        return Completion(orjson.dumps(answer), result.status, result.headers)
    first = True

    def add(payload: bytes) -> bytes:
        nonlocal first
        if not first or payload.startswith(b"["):  # `[DONE]`
            return payload
        first = False
        event = orjson.loads(payload)
        if isinstance(event, dict):
            event["citations"] = citations
            return orjson.dumps(event)
        return payload

    return StreamResult(MappedStream(result.events, add), result.headers)


class RetrievalStage:
    def __init__(
        self,
        service: VectorStores,
        groups: Mapping[str, GroupRetrieval],
        templates: TemplateBook,
        template: str = DEFAULT_TEMPLATE,
        max_results: int = 4,
    ) -> None:
        names = templates.variables(template)
        if names is None:
            raise ConfigError(f"$.retrieval.template: unknown template {template!r}")
        if "sources" not in names or not names <= VARIABLES:
            raise ConfigError(
                f"$.templates.{template}: a retrieval template names `sources` (and may name `question`), nothing else"
            )
        self._service = service
        self._groups = dict(groups)
        self._templates = templates
        self._template = template
        self._names = names
        self._max_results = max_results

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        request = ctx.request
        if request.endpoint is not Endpoint.CHAT:
            return await call_next(ctx)
        body = ctx.body
        asked = body.get("vector_store_ids")
        group = self._groups.get(request.model)
        if asked is None and group is None:
            return await call_next(ctx)
        store_ids = list(asked) if asked else list(group.vector_store_ids if group else ())
        k = group.max_results if group is not None else self._max_results
        threshold = group.score_threshold if group is not None else 0.0
        turn = last_user_turn(body)
        out = {key: value for key, value in body.items() if key != "vector_store_ids"}
        if turn is None:  # nothing to search with: the request goes on without the field
            ctx.retrieval = Retrieval(body=out)
            return await call_next(ctx)
        stores, hits = await self._service.search(
            request.identity, store_ids, [turn], k, score_threshold=threshold, reveal=False, kind="chat"
        )
        data_class = max((s.data_class for s in stores), key=class_rank)
        out["messages"] = self._prompt(body["messages"], turn, hits)
        citations = [citation(h) for h in hits]
        ctx.retrieval = Retrieval(body=out, data_class=data_class, citations=citations)
        mapping = await self._service.values(request.identity, hits)
        result = await call_next(ctx)
        return with_citations(restore_tokens(result, mapping) if mapping else result, citations)

    def _prompt(self, messages: list[Any], turn: str, hits: list[Hit]) -> list[Any]:
        variables = {"sources": sources_text(hits), "question": turn}
        rendered = self._templates.render(self._template, {k: v for k, v in variables.items() if k in self._names})
        out = list(messages)
        if rendered.user is not None:
            out[-1] = {**out[-1], "content": rendered.user}
        if rendered.system is not None:
            out.insert(0, {"role": "system", "content": rendered.system})
        return out
