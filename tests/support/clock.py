"""A clock the test moves by hand: `clock.now += 60`; components take it where they take
`time.time` or `time.monotonic`."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
