"""Sentence embeddings, served and used by the gateway itself.

`minilm.py` is the model (all-MiniLM-L6-v2 in numpy). `batcher.py` gathers concurrent callers into
one forward pass off the event loop; `store.py` keeps vectors already computed (precomputed from a
file of common queries, then filled as traffic flows), in memory and in Redis; `service.py` joins
them into the one `TextEmbedder` that `/v1/embeddings`, the semantic cache, drift and shadow
comparison all embed through.
"""

from .types import TextEmbedder

__all__ = ["TextEmbedder"]
