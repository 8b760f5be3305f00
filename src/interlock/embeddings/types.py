"""What a caller of embeddings depends on; imports nothing of ours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from numpy.typing import NDArray


class TextEmbedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out, in order."""

    @property
    def model(self) -> str:
        """The name vectors are keyed and served under (`all-minilm-l6-v2`)."""
        ...

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> NDArray[Any]:
        """Shape (len(texts), dimensions). Raises TimeoutError when the model cannot answer in
        time; callers that may degrade (the semantic cache) treat that as a miss."""
        ...
