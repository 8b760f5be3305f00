"""Work sized by its input: done inline when small, on a worker thread when large.

A thread hop costs tens of microseconds, which a small body's work does not repay; a large one's
(multipart parsing of an 8 MiB upload, its copy, AES-GCM over it) would hold the event loop for
milliseconds, stalling every other request meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

INLINE_BYTES = 256 * 1024  # at most this many bytes of input: inline

P = ParamSpec("P")
T = TypeVar("T")


async def sized(size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`, inline when `size` bytes are few, else on a worker thread."""
    if size <= INLINE_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)
