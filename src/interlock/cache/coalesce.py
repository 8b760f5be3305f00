"""Identical requests in flight at the same time go upstream once.

The first request for a key leads; requests that arrive while it runs wait on its future. The
leader resolves the future with its answer or with its error. If the leader goes away without an
answer (its caller disconnected), waiters are resolved with None and make the call themselves.
The future is created only when a second request joins, so a lone failing request leaves no
unretrieved exception behind.
"""

from __future__ import annotations

import asyncio

from .entry import CachedAnswer


class _Flight:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[CachedAnswer | None] | None = None


class Coalescer:
    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str) -> asyncio.Future[CachedAnswer | None] | None:
        """The future to wait on if a leader is in flight, or None (the caller then leads)."""
        flight = self._flights.get(key)
        if flight is None:
            self._flights[key] = _Flight()
            return None
        if flight.future is None:
            flight.future = asyncio.get_running_loop().create_future()
            # Waiters may all be gone when an error arrives; mark it retrieved so asyncio does not
            # log "exception was never retrieved" for an error every live waiter did receive.
            flight.future.add_done_callback(_retrieve)
        return flight.future

    def finish(self, key: str, answer: CachedAnswer | None = None, error: BaseException | None = None) -> None:
        flight = self._flights.pop(key, None)
        if flight is None or flight.future is None or flight.future.done():
            return
        if error is not None:
            flight.future.set_exception(error)
        else:
            flight.future.set_result(answer)


def _retrieve(future: asyncio.Future[CachedAnswer | None]) -> None:
    if not future.cancelled():
        future.exception()
