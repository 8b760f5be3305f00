"""POST /v1/chat/completions, /v1/completions, /v1/embeddings and their Azure-style twins.

The handler parses (`parse.py`), builds the context, runs the pipeline and sends the answer;
once it is over, every recorder gets the request's record (observe/record.py). It holds no
knowledge of what the stages or the recorders do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..errors import InterlockError
from ..observe.metrics import UNKNOWN_MODEL
from ..observe.record import Finished, Recorder
from ..observe.tracing import Tracing
from ..pipeline.context import Endpoint, RequestContext
from ..pipeline.result import Completion, StreamResult
from ..pipeline.runner import Pipeline
from ..pipeline.streams import aclose_quietly
from ..security.roles import DATA_CLASSES
from .exchange import Exchange
from .http import ClientGone
from .parse import RequestParser
from .sse import first_event

CLIENT_CLOSED = 499  # nginx's code for "client closed the request", used in metrics only


class InferenceHandler:
    def __init__(
        self,
        parser: RequestParser,
        pipeline: Pipeline,
        recorders: Sequence[Recorder],
        tracing: Tracing | None = None,
    ) -> None:
        self._parser = parser
        self._pipeline = pipeline
        self._recorders = tuple(recorders)
        self._tracing = tracing
        self._span_names = {e: f"POST /v1/{e.value}" for e in Endpoint}

    async def __call__(self, ex: Exchange, endpoint: Endpoint, deployment: str | None = None) -> None:
        started = time.perf_counter()
        trace = None if self._tracing is None else self._tracing.start_request(self._span_names[endpoint], ex.headers)
        ctx: RequestContext | None = None
        status, outcome, answer = 500, "served", None
        error: BaseException | None = None
        try:
            request = await self._parser.parse(ex, endpoint, deployment, started)
            ctx = RequestContext(request, trace, ex.arm_disconnect_watch)
            result = await self._pipeline.run(ctx)
            headers = answer_headers(ctx)
            if isinstance(result, Completion):
                status = result.status
                await ex.json(status, result.body, headers)
                answer = result.body if status == 200 else None
            else:
                status, error = await _send_stream(ex, result, headers)
        except InterlockError as exc:
            status, outcome, error = exc.status, exc.code or exc.type, exc
            if not ex.started:
                await ex.error(exc)
        except ClientGone:  # it left while we read its body: nothing to answer, nothing of ours failed
            ex.client_gone = True
            raise
        except Exception as exc:  # counted as ours, then the edge answers 500 with the request id
            error = exc
            raise
        finally:
            if ex.client_gone:
                status, outcome, error = CLIENT_CLOSED, "client_closed", None
            done = Finished(ex.request_id, ex.identity, endpoint, ex.model or UNKNOWN_MODEL, ctx, status, outcome,
                            error, started, time.perf_counter(), answer, trace)  # fmt: skip
            for recorder in self._recorders:
                recorder.record(done)
            error = done.error = None  # no cycle: exception -> traceback -> this frame -> exception


async def _send_stream(
    ex: Exchange, result: StreamResult, headers: list[tuple[bytes, bytes]]
) -> tuple[int, InterlockError | None]:
    """Send the stream; 200, or the status of the error that broke it after it started (told
    in-band: the caller has its 200 already)."""
    try:
        first = await first_event(result.events)
        broken = await ex.stream(first, result.events, headers)
    finally:
        await aclose_quietly(result.events)
    return (200, None) if broken is None else (broken.status, broken)


# The headers most answers carry, made once (a cache hit's and its data class).
_CACHE_HEADERS = {status: (b"x-interlock-cache", status.encode()) for status in ("hit", "miss")}
_DATA_CLASS_HEADERS = {name: (b"x-interlock-data-class", name.encode()) for name in DATA_CLASSES}


def answer_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    extra = ctx.response_headers
    semantic = ctx.semantic
    if semantic is not None:
        extra.append((b"x-interlock-cache", b"semantic"))
        extra.append((b"x-interlock-similarity", f"{semantic.similarity:.4f}".encode()))
        extra.append((b"x-interlock-semantic-entry", semantic.entry_id.encode()))
    elif ctx.cache_status is not None:
        status = ctx.cache_status
        extra.append(_CACHE_HEADERS.get(status) or (b"x-interlock-cache", status.encode()))
    routing = ctx.routing
    if routing.deployment is not None:
        extra.append((b"x-interlock-deployment", routing.deployment.encode()))
    data_class = ctx.data_class
    if data_class is not None:
        extra.append(_DATA_CLASS_HEADERS.get(data_class) or (b"x-interlock-data-class", data_class.encode()))
    if routing.served_model is not None and routing.served_model != ctx.request.model:
        extra.append((b"x-interlock-fallback", routing.served_model.encode()))
    return extra
