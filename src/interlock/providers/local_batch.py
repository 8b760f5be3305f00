"""Batched decoding for the embedded model: several sequences in one `llama_decode`.

llama-cpp-python's high-level `Llama` decodes one sequence at a time. This scheduler owns a second
llama.cpp context over the same weights with `n_seq_max = parallel` and one KV cache cell range
per sequence (`kv_unified` off, so each sequence has the deployment's whole `n_ctx`). It runs on
one thread of its own; each step it

1. admits waiting jobs into free sequences (continuous batching: a new request does not wait for
   the batch in flight to finish), rendering and tokenizing their prompts there, off the loop;
2. frees the sequence of every job that was cancelled (`llama_memory_seq_rm`) before decoding;
3. builds one batch: the last sampled token of every generating sequence, then prompt tokens of
   newly admitted ones up to `n_batch` in all (long prompts are prefilled over several steps, so
   they do not stall the sequences already generating);
4. decodes once and samples each sequence that asked for logits with its own sampler chain.

Sampling copies the chain llama-cpp-python builds (`Llama._init_sampler`: penalties, then greedy
at temperature 0, else top-k 40, typical 1, top-p, min-p 0.05, temperature, seeded dist), and chat
prompts are rendered with the same `Jinja2ChatFormatter` over the GGUF's chat template, so at
temperature 0 the batched and single paths give the same text (tests/integration/test_local_batch.py).

What it does not do, left to the single-sequence path: logprobs, tools, response_format (grammar),
logit_bias, echo and suffix (`batchable()` says which requests it takes).
"""

from __future__ import annotations

import ctypes
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import BadRequest, UpstreamError
from ..pipeline.context import Endpoint

# Request fields only the single-sequence path implements.
_UNBATCHED = ("logprobs", "top_logprobs", "tools", "tool_choice", "functions", "function_call",
              "response_format", "logit_bias", "echo", "suffix")  # fmt: skip
_TOP_K = 40  # llama-cpp-python's defaults for create_completion / create_chat_completion
_MIN_P = 0.05
_TYPICAL_P = 1.0
_PENALTY_LAST_N = 64  # Llama.last_n_tokens_size


def batchable(body: dict[str, Any]) -> bool:
    """Whether the scheduler can serve this request the way the single path would."""
    return not any(body.get(k) for k in _UNBATCHED)


def prompt_text(body: dict[str, Any]) -> str:
    """The one prompt string of a completions request (the local model takes no token lists)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("the local model takes a single prompt string", param="prompt")
    return prompt


class StopText:
    """Turns token pieces into text deltas, holding back what may still become a stop string.

    The text it lets out up to a stop string is what llama-cpp-python's `create_completion`
    returns: the completion up to the first stop string, incomplete UTF-8 at the end dropped.
    """

    __slots__ = ("_held", "_raw", "_stops")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self._raw = b""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """The text that is safe to send after this piece, and whether a stop string was met."""
        self._raw += piece
        try:
            text, self._raw = self._raw.decode(), b""
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # a character split across tokens
                text, self._raw = self._raw[: exc.start].decode(errors="replace"), self._raw[exc.start :]
            else:
                text, self._raw = self._raw.decode(errors="replace"), b""
        buf = self._held + text
        found = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if found:
            self._held = ""
            return buf[: min(found)], True
        keep = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(buf)), keep, -1):
                if buf.endswith(stop[:k]):
                    keep = k
                    break
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """What is left when generation ends without a stop string."""
        rest = self._held + self._raw.decode(errors="ignore")
        self._held, self._raw = "", b""
        return rest


Emit = Callable[[str, Any], None]  # ("event", bytes) | ("end", None) | ("error", exc), thread-safe


@dataclass(eq=False)
class BatchJob:
    """One request for the scheduler. `future` holds the whole answer (a dict) when `emit` is
    None; for a stream it is resolved with None once the last event was emitted. Either way it
    is done when the job no longer holds a sequence, so admission can count on it."""

    endpoint: Endpoint
    body: dict[str, Any]
    cancel: threading.Event
    emit: Emit | None = None
    future: Future[Any] = field(default_factory=Future)


class _Seq:
    """A job holding one of the context's sequences."""

    __slots__ = ("answer", "generated", "job", "logit", "max_tokens", "n_prompt", "pending", "pos",
                 "sampler", "seq_id", "stop", "text")  # fmt: skip

    def __init__(self, job: BatchJob, seq_id: int, tokens: list[int], max_tokens: int, sampler: Any) -> None:
        self.job = job
        self.seq_id = seq_id
        self.pending = tokens  # tokens still to decode: the prompt, then each sampled token
        self.n_prompt = len(tokens)
        self.pos = 0
        self.max_tokens = max_tokens
        self.sampler = sampler
        self.generated = 0
        self.logit = -1  # index in the current batch of this sequence's logits, if it asked
        stops = job.body.get("stop") or []
        self.stop = StopText([stops] if isinstance(stops, str) else list(stops))
        self.text: list[str] = []
        self.answer = _Answer(job)


class _Answer:
    """The OpenAI-shaped output of one job, in the shapes llama-cpp-python gives (chat or text
    completion, whole or as chunks), so the two paths are indistinguishable to a client."""

    __slots__ = ("_chat", "_created", "_id", "_job", "_model", "_started")

    def __init__(self, job: BatchJob) -> None:
        self._job = job
        self._chat = job.endpoint is Endpoint.CHAT
        self._id = ("chatcmpl-" if self._chat else "cmpl-") + str(uuid.uuid4())
        self._created = int(time.time())
        self._model = job.body.get("model")
        self._started = False

    def _chunk(self, text: str | None, finish: str | None) -> dict[str, Any]:
        if self._chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if not self._started:
                delta = {"role": "assistant", **delta}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        self._started = True
        return {"id": self._id, "object": obj, "created": self._created, "model": self._model, "choices": [choice]}

    def delta(self, text: str) -> None:
        if text and self._job.emit is not None:
            self._job.emit("event", orjson.dumps(self._chunk(text, None)))

    def finish(self, text: str, reason: str, prompt_tokens: int, completion_tokens: int) -> None:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
        emit = self._job.emit
        if emit is None:
            if self._chat:
                message = {"role": "assistant", "content": text}
                choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
                obj = "text_completion"
            answer = {"id": self._id, "object": obj, "created": self._created, "model": self._model,
                      "choices": [choice], "usage": usage}  # fmt: skip
            self._job.future.set_result(answer)
            return
        last = self._chunk(None, reason)
        emit("event", orjson.dumps(last))
        if (self._job.body.get("stream_options") or {}).get("include_usage"):
            emit("event", orjson.dumps({**last, "choices": [], "usage": usage}))
        emit("end", None)
        self._job.future.set_result(None)


class BatchScheduler:
    """One llama.cpp context decoding up to `parallel` sequences per step, on its own thread."""

    def __init__(self, llm: Any, parallel: int, n_ctx: int, name: str, n_threads: int | None = None) -> None:
        import llama_cpp

        self._c = llama_cpp
        self._llm = llm
        self._parallel = parallel
        self._n_ctx = n_ctx  # per sequence
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        # The single path's context parameters (flash attention off, its threads, rope and yarn
        # settings), so both compute alike. llama.cpp uses n_threads_batch for any batch of more
        # than one token, so a step of several sequences gets every core, unless the deployment
        # names its threads: then they are the threads of every step.
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        if n_threads is not None:
            params.n_threads = params.n_threads_batch = n_threads
        params.n_ctx = n_ctx * parallel
        params.n_seq_max = parallel
        params.n_batch = params.n_ubatch = self._n_batch = 512
        params.kv_unified = False
        self._ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if self._ctx is None:
            raise RuntimeError("llama.cpp could not create the batched context")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self._format = self._chat_formatter(llm)
        self._waiting: deque[BatchJob] = deque()  # under _cond; the rest is the thread's own
        self._free = list(range(parallel - 1, -1, -1))
        self._active: list[_Seq] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"interlock-{name}-batch", daemon=True)
        self._thread.start()

    @staticmethod
    def _chat_formatter(llm: Any) -> Any:
        """The formatter llama-cpp-python builds from the GGUF's `tokenizer.chat_template`."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llm.metadata.get("tokenizer.chat_template")
        if template is None:
            return None
        eos, bos = llm.token_eos(), llm.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )

    @property
    def parallel(self) -> int:
        return self._parallel

    def submit(self, job: BatchJob) -> Future[Any]:
        with self._cond:
            if self._closing:
                raise RuntimeError("the batch scheduler is closed")
            self._waiting.append(job)
            self._cond.notify()
        return job.future

    def close(self) -> None:
        """Stop the thread (after the step in flight), fail what is left, free the context."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        for job in self._waiting:
            job.future.cancel()
        self._c.llama_batch_free(self._batch)
        self._c.llama_free(self._ctx)

    # -- the scheduler thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._active and not self._waiting:
                    self._cond.wait()
                if self._closing:
                    break
                admitted = []
                while self._waiting and self._free:
                    job = self._waiting.popleft()
                    if job.future.set_running_or_notify_cancel():
                        admitted.append((job, self._free.pop()))
            try:
                for job, seq_id in admitted:
                    self._admit(job, seq_id)
                for seq in [s for s in self._active if s.job.cancel.is_set()]:
                    self._end(seq, None)
                if self._active:
                    self._step()
            except Exception as exc:  # the loop must outlive one bad step: its sequences fail, not hang
                for seq in list(self._active):
                    self._end(seq, UpstreamError(f"local model failed ({type(exc).__name__})"))
        for seq in list(self._active):
            self._end(seq, None)

    def _admit(self, job: BatchJob, seq_id: int) -> None:
        try:
            tokens = self._tokens(job)
            if len(tokens) >= self._n_ctx:
                raise BadRequest(
                    "This model's context window is too small for the prompt and max_tokens",
                    code="context_length_exceeded",
                )
            room = self._n_ctx - len(tokens)
            default = None if job.endpoint is Endpoint.CHAT else 16
            wanted = job.body.get("max_tokens")
            wanted = default if wanted is None else wanted
            max_tokens = room if wanted is None or wanted <= 0 or wanted > room else int(wanted)
            sampler = self._sampler(job.body)
        except Exception as exc:  # a bad request, told to its caller alone; the batch goes on
            self._free.append(seq_id)
            self._fail(job, exc)
            return
        self._c.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
        self._active.append(_Seq(job, seq_id, tokens, max_tokens, sampler))

    def _tokens(self, job: BatchJob) -> list[int]:
        """The prompt as the single path tokenizes it (create_chat_completion or create_completion)."""
        if job.endpoint is Endpoint.CHAT:
            if self._format is None:
                raise BadRequest("this model has no chat template", param="messages")
            rendered = self._format(messages=job.body["messages"])
            return list(self._llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True))
        return list(self._llm.tokenize(prompt_text(job.body).encode(), add_bos=True, special=True))

    def _sampler(self, body: dict[str, Any]) -> Any:
        c = self._c
        chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
        add = c.llama_sampler_chain_add
        # Called exactly as llama-cpp-python's add_penalties calls it, so both paths penalise alike.
        frequency, presence = float(body.get("frequency_penalty") or 0.0), float(body.get("presence_penalty") or 0.0)
        add(chain, c.llama_sampler_init_penalties(self._n_vocab, _PENALTY_LAST_N, 1.0, frequency, presence))
        temperature = float(body.get("temperature", 1.0))
        seed = body.get("seed")
        seed = c.LLAMA_DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF
        if temperature < 0:
            add(chain, c.llama_sampler_init_dist(seed))
        elif temperature == 0:
            add(chain, c.llama_sampler_init_greedy())
        else:
            top_p = body.get("top_p")
            add(chain, c.llama_sampler_init_top_k(_TOP_K))
            add(chain, c.llama_sampler_init_typical(_TYPICAL_P, 1))
            add(chain, c.llama_sampler_init_top_p(0.95 if top_p is None else float(top_p), 1))
            add(chain, c.llama_sampler_init_min_p(_MIN_P, 1))
            add(chain, c.llama_sampler_init_temp(temperature))
            add(chain, c.llama_sampler_init_dist(seed))
        return chain

    def _step(self) -> None:
        batch = self._batch
        batch.n_tokens = 0
        # Generating sequences first (one token each), then prompt chunks in what room is left.
        for seq in sorted(self._active, key=lambda s: s.generated == 0):
            take = min(len(seq.pending), self._n_batch - batch.n_tokens)
            if take <= 0:
                seq.logit = -1
                continue
            for k in range(take):
                i = batch.n_tokens
                batch.token[i] = seq.pending[k]
                batch.pos[i] = seq.pos + k
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq.seq_id
                batch.logits[i] = 0
                batch.n_tokens += 1
            del seq.pending[:take]
            seq.pos += take
            if seq.pending:
                seq.logit = -1
            else:
                seq.logit = batch.n_tokens - 1
                batch.logits[seq.logit] = 1
        rc = self._c.llama_decode(self._ctx, batch)
        if rc != 0:
            for seq in list(self._active):
                self._end(seq, UpstreamError(f"local model failed (llama_decode returned {rc})"))
            return
        for seq in list(self._active):
            if seq.logit >= 0:
                self._next(seq, self._c.llama_sampler_sample(seq.sampler, self._ctx, seq.logit))

    def _next(self, seq: _Seq, token: int) -> None:
        if self._c.llama_vocab_is_eog(self._vocab, token):
            self._finish(seq, "stop", seq.stop.flush())
            return
        seq.generated += 1
        n = self._c.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        text, stopped = seq.stop.feed(self._piece.raw[: max(n, 0)])
        if stopped:
            self._finish(seq, "stop", text)
        elif seq.generated >= seq.max_tokens:
            self._finish(seq, "length", text + seq.stop.flush())
        else:
            seq.text.append(text)
            seq.answer.delta(text)
            seq.pending.append(token)

    def _finish(self, seq: _Seq, reason: str, tail: str) -> None:
        seq.text.append(tail)
        seq.answer.delta(tail)
        self._release(seq)
        seq.answer.finish("".join(seq.text), reason, seq.n_prompt, seq.generated)

    def _end(self, seq: _Seq, error: BaseException | None) -> None:
        """A sequence that ends without an answer: cancelled (error None) or failed."""
        self._release(seq)
        if error is None:
            if seq.job.emit is not None:
                seq.job.emit("end", None)
            seq.job.future.set_result(None)
        else:
            self._fail(seq.job, error)

    def _release(self, seq: _Seq) -> None:
        self._active.remove(seq)
        self._c.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
        self._c.llama_sampler_free(seq.sampler)
        self._free.append(seq.seq_id)

    @staticmethod
    def _fail(job: BatchJob, exc: BaseException) -> None:
        if job.emit is not None:
            job.emit("error", exc)
            job.future.set_result(None)
        else:
            job.future.set_exception(exc)
