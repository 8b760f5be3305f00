"""Request bodies of the Files and Vector Stores API (`edge/files.py`, `edge/vector_stores.py`),
with OpenAI's bounds. `data_class` on a new store is ours. A chunking strategy and a filter are
checked by their own parsers (`retrieval/chunking.py`, `retrieval/filters.py`), which name the
field that is wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Metadata = Annotated[dict[Key, Annotated[str, msgspec.Meta(max_length=512)]], msgspec.Meta(max_length=16)]
Attribute = Annotated[str, msgspec.Meta(max_length=512)] | float | bool
Attributes = Annotated[dict[Key, Attribute], msgspec.Meta(max_length=16)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
DataClass = Literal["public", "internal", "confidential", "restricted"]  # as security.roles
MAX_QUERIES = 16


class _Body(msgspec.Struct, kw_only=True):
    """Unknown fields are accepted and ignored, as OpenAI's newer fields may be sent."""


class CreateStore(_Body, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    file_ids: Annotated[list[Id], msgspec.Meta(max_length=500)] = []
    metadata: Metadata | None = None
    chunking_strategy: dict[str, Any] | None = None  # retrieval/chunking.py's parse_strategy
    expires_after: dict[str, Any] | None = None  # accepted; stores here do not expire
    description: str | None = None
    data_class: DataClass | None = None


class UpdateStore(_Body, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    metadata: Metadata | None = None
    expires_after: dict[str, Any] | None = None


class AttachFile(_Body, kw_only=True):
    file_id: Id
    attributes: Attributes | None = None
    chunking_strategy: dict[str, Any] | None = None  # retrieval/chunking.py's parse_strategy


class RankingOptions(_Body, kw_only=True):
    ranker: str | None = None
    score_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0


class SearchRequest(_Body, kw_only=True):
    query: (
        Annotated[str, msgspec.Meta(min_length=1)]
        | Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_QUERIES)]
    )
    max_num_results: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    filters: dict[str, Any] | None = None  # retrieval/filters.py's parse_filter
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False  # accepted; the query is searched as it was sent


class BatchFile(_Body, kw_only=True):
    file_id: Id
    attributes: Attributes | None = None
    chunking_strategy: dict[str, Any] | None = None


class CreateBatch(_Body, kw_only=True):
    """`file_ids` with one `attributes` and `chunking_strategy` for all, or `files` each with its own."""

    file_ids: Annotated[list[Id], msgspec.Meta(max_length=500)] = []
    files: Annotated[list[BatchFile], msgspec.Meta(max_length=500)] = []
    attributes: Attributes | None = None
    chunking_strategy: dict[str, Any] | None = None
