"""Per-deployment circuit breaker. Pure: the caller passes the time.

closed    -> open       after `failures` failures within `window` seconds
open      -> half-open  once `cooldown` seconds have passed; exactly one probe is let through
half-open -> closed     when the probe succeeds; back to open when it fails
"""

from __future__ import annotations

import enum
from collections import deque


class CircuitState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    __slots__ = ("_cooldown", "_failures", "_limit", "_opened_at", "_probing", "_window", "state")

    def __init__(self, failures: int, window: float, cooldown: float) -> None:
        self._limit = failures
        self._window = window
        self._cooldown = cooldown
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False
        self.state = CircuitState.CLOSED

    def available(self, now: float) -> bool:
        """Whether a request could be sent now (does not claim the half-open probe)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            return now - self._opened_at >= self._cooldown
        return not self._probing

    def acquire(self, now: float) -> bool:
        """Claim the right to send one request. In half-open, only one caller gets it."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self._opened_at < self._cooldown:
                return False
            self.state = CircuitState.HALF_OPEN
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if self.state is not CircuitState.CLOSED:
            self.state = CircuitState.CLOSED
            self._failures.clear()
        self._probing = False

    def failure(self, now: float) -> None:
        self._probing = False
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return
        failures = self._failures
        failures.append(now)
        while failures and now - failures[0] > self._window:
            failures.popleft()
        if self.state is CircuitState.CLOSED and len(failures) >= self._limit:
            self._open(now)

    def release(self) -> None:
        """The request ended without a verdict (the caller went away): free the probe."""
        self._probing = False

    def _open(self, now: float) -> None:
        self.state = CircuitState.OPEN
        self._opened_at = now
        self._failures.clear()
