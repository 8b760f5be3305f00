"""A clock the test moves by hand: `clock.now += 60`; components take it where they take
`time.time` or `time.monotonic`."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SleepingClock(Clock):
    """A Clock with an async `sleep` that moves it at once and remembers each wait, for code that
    takes a clock and a sleep function (the router)."""

    def __init__(self, now: float = 100.0) -> None:
        super().__init__(now)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
