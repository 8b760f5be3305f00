"""all-MiniLM-L6-v2 as a deployment: `/v1/embeddings` served in process, through the gateway's
embedding service (the precomputed store, then the micro-batched model; `embeddings/`).

The answer is OpenAI's embeddings object. `dimensions` is honoured as OpenAI does for its
text-embedding-3 models: the vector is cut to its first `dimensions` components and scaled back
to unit length (MiniLM was not trained for that, so a shorter vector loses more meaning than
text-embedding-3's would; the full 384 are the default). `encoding_format: base64` sends the
little-endian float32 bytes, as OpenAI does and the official client decodes.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson

from ..config import MiniLmDeployment
from ..embeddings.service import EmbeddingService
from ..errors import BadRequest
from ..pipeline.context import Endpoint
from .base import UpstreamAnswer

MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("input must be a string or a non-empty array of strings", param="input")
    if len(inputs) > MAX_INPUTS:
        raise BadRequest(f"input may hold at most {MAX_INPUTS} strings", param="input")
    for text in inputs:
        if not isinstance(text, str):
            raise BadRequest("this model embeds text: input must be strings, not token arrays", param="input")
        if not text:
            raise BadRequest("input must not contain empty strings", param="input")
    return inputs


def _dimensions(body: dict[str, Any], full: int) -> int:
    wanted = body.get("dimensions")
    if wanted is None:
        return full
    if not isinstance(wanted, int) or isinstance(wanted, bool) or not 1 <= wanted <= full:
        raise BadRequest(f"dimensions must be an integer from 1 to {full}", param="dimensions")
    return wanted


def _encoding(body: dict[str, Any]) -> str:
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("encoding_format must be 'float' or 'base64'", param="encoding_format")
    return str(encoding)


class MiniLmProvider:
    kind = "minilm"

    def __init__(self, spec: MiniLmDeployment, service: EmbeddingService) -> None:
        self.id = spec.id
        self._service = service

    async def start(self) -> None:
        return None  # the service is started (and closed) by the gateway, which shares it

    async def close(self) -> None:
        return None

    async def ready(self) -> bool:
        return self._service.ready

    def queue_depth(self) -> int:
        return self._service.queued

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamAnswer:
        if endpoint is not Endpoint.EMBEDDINGS:
            raise BadRequest(f"{body.get('model')} is an embeddings model: call /v1/embeddings", param="model")
        inputs = _inputs(body)
        size = _dimensions(body, self._service.dimensions)
        encoding = _encoding(body)
        vectors, tokens = await self._service.embed_counted(inputs)
        if size < vectors.shape[1]:
            vectors = vectors[:, :size]
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.float32(1e-12))
        data: list[dict[str, Any]] = []
        for i, vector in enumerate(vectors):
            if encoding == "base64":
                embedding: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                embedding = vector.tolist()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        used = sum(tokens)
        answer = {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
        return UpstreamAnswer(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        raise BadRequest("embeddings cannot be streamed", param="stream")
