"""The telemetry stage: what a deployment generated, observed on its way out.

It is the innermost stage, after the cache, so it sees only answers a deployment produced (never
a cache replay, which would count a popular answer again) and hits never pay for it:

- finish reasons, from every generated answer;
- streams: time to first token (from the request's arrival to the first event that carries
  text, tool-call arguments or a refusal: what the caller waits for), and inter-token latency,
  one observation per stream of the mean gap between such events plus one of the longest gap.
  Observing every gap would cost a histogram update (a lock) per token and weigh long answers
  more; the mean and the maximum per stream give the decode speed across requests and its
  stalls, for two updates per stream. Per event the cost is two regex searches and a clock read;
- confidence (mean and minimum token logprob, perplexity) when the answer has logprobs,
  published on `ctx.telemetry.confidence` for the recorders.

Logprob sampling: for `logprobs_sample` of chat requests whose caller did not ask for logprobs,
the router asks the backend for them (`observe.confidence.with_logprobs`) and this stage removes
them again (each choice's `logprobs` back to null, as the backend answers when not asked) before
anything outward sees the answer. Because this stage sits inside the cache stage, the cache keys
on the caller's request (without the added field) and stores the answer after it was stripped:
a later caller who did not ask never gets the sampled logprobs, and a caller who did ask has
another cache key.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..pipeline.context import Endpoint, RequestContext
from ..pipeline.result import Completion, Result, StreamResult
from ..pipeline.runner import Next
from ..pipeline.streams import MappedStream, StreamTap
from .confidence import LogprobTally, strip_logprobs
from .metrics import NONE, Metrics

# A key whose value is a non-empty string: an event that carries part of the answer. An escaped
# quote inside text (\") cannot end a key here, so text never looks like a key.
_TOKEN = re.compile(rb'"(?:content|text|arguments|refusal|reasoning_content|reasoning)"\s*:\s*"[^"]')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([A-Za-z_]{1,32})"')


def _decoded(body: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


class TelemetryStage:
    def __init__(
        self,
        metrics: Metrics,
        logprobs_sample: float = 0.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._metrics = metrics
        self._sample = logprobs_sample
        self._rng = rng or random.Random()
        self._clock = clock

    async def __call__(self, ctx: RequestContext, call_next: Next) -> Result:
        request = ctx.request
        if request.endpoint is Endpoint.EMBEDDINGS:
            return await call_next(ctx)
        if (
            self._sample
            and request.endpoint is Endpoint.CHAT
            and not request.body.get("logprobs")
            and "top_logprobs" not in request.body  # without logprobs it is the caller's 400 to get
            and self._rng.random() < self._sample
        ):
            ctx.telemetry.logprobs_sampled = True
        result = await call_next(ctx)
        if isinstance(result, Completion):
            return self._completion(ctx, result)
        observer = StreamObserver(ctx, self._metrics, self._clock)
        events = result.events
        if ctx.logprobs_sampled:
            events = MappedStream(events, observer.strip)
        return StreamResult(StreamTap(events, observer.on_event, observer.on_end), result.headers)

    def _completion(self, ctx: RequestContext, result: Completion) -> Completion:
        if result.status != 200:
            return result
        labels = _labels(ctx)
        telemetry = ctx.telemetry
        reasons: list[str] = []
        sampled = ctx.logprobs_sampled
        answer = _decoded(result.body) if sampled or ctx.request.body.get("logprobs") else None
        if answer is None:
            reasons = [r.decode() for r in _FINISH.findall(result.body)]
        else:
            choices = answer.get("choices")
            tally = LogprobTally()
            tally.add_choices(choices)
            telemetry.confidence = tally.result(sampled)
            if telemetry.confidence is not None:
                self._metrics.confidence(*labels, telemetry.confidence)
            for choice in choices if isinstance(choices, list) else ():
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if isinstance(reason, str):
                    reasons.append(reason)
            if sampled and strip_logprobs(choices):
                result = Completion(orjson.dumps(answer), result.status, result.headers)
        for reason in reasons:
            self._metrics.finished(*labels, reason)
        if reasons:
            telemetry.finish_reason = reasons[0]
        return result


def _labels(ctx: RequestContext) -> tuple[str, str, str]:
    routing = ctx.routing
    return routing.served_model or ctx.request.model, routing.deployment or NONE, routing.version or NONE


class StreamObserver:
    """Times and reads the events of one generated stream as they go out."""

    __slots__ = (
        "_clock", "_ctx", "_first", "_last", "_longest", "_metrics", "_parse", "_reasons", "_sampled", "_tally",
        "_tokens",
    )  # fmt: skip

    def __init__(self, ctx: RequestContext, metrics: Metrics, clock: Callable[[], float]) -> None:
        self._ctx = ctx
        self._metrics = metrics
        self._clock = clock
        self._tokens = 0  # events that carried part of the answer
        self._first = self._last = self._longest = 0.0
        self._reasons: list[str] = []
        # Logprobs the caller asked for are read as they pass; sampled ones in `strip`.
        self._sampled = ctx.logprobs_sampled
        self._parse = bool(ctx.request.body.get("logprobs")) and not self._sampled
        self._tally = LogprobTally() if self._parse or self._sampled else None

    def strip(self, event: bytes) -> bytes:
        """Sampled streams: read the chunk's logprobs, then send it on as if none were asked for."""
        chunk = _decoded(event)
        if chunk is None:
            return event
        choices = chunk.get("choices")
        if self._tally is not None:
            self._tally.add_choices(choices)
        return orjson.dumps(chunk) if strip_logprobs(choices) else event

    def on_event(self, event: bytes) -> None:
        if self._parse and self._tally is not None:
            chunk = _decoded(event)
            if chunk is not None:
                self._tally.add_choices(chunk.get("choices"))
        if _TOKEN.search(event) is not None:
            now = self._clock()
            if self._tokens:
                gap = now - self._last
                if gap > self._longest:
                    self._longest = gap
            else:
                self._first = now
                ctx = self._ctx
                ttft = ctx.telemetry.ttft_s = now - ctx.request.started
                self._metrics.first_token(*_labels(ctx), ttft)
            self._last = now
            self._tokens += 1
        finish = _FINISH.search(event)
        if finish is not None:
            self._reasons.append(finish.group(1).decode())

    def on_end(self, error: BaseException | None) -> None:
        if error is not None:
            return  # a broken or abandoned stream: counted as an error, not as an answer
        ctx = self._ctx
        labels = _labels(ctx)
        metrics = self._metrics
        if self._tokens > 1:
            metrics.inter_token(*labels, (self._last - self._first) / (self._tokens - 1), self._longest)
        for reason in self._reasons:
            metrics.finished(*labels, reason)
        telemetry = ctx.telemetry
        if self._reasons:
            telemetry.finish_reason = self._reasons[0]
        if self._tally is not None:
            telemetry.confidence = self._tally.result(self._sampled)
            if telemetry.confidence is not None:
                metrics.confidence(*labels, telemetry.confidence)
