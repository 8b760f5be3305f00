"""The cost of `RequestStats.record()` / `Window.record()`, the rolling windows' hot-path call.

    PYTHONPATH=src python bench/experiments/window_record.py

Prints the best of 7 runs of 1,000,000 calls each, per call, for each form of the call.
"""

from __future__ import annotations

import timeit

from interlock.observe.window import RequestStats

N = 1_000_000


def main() -> None:
    stats = RequestStats(3600.0, 5.0)
    window = stats.window("chat", "v1")
    assert window is not None
    cases = {
        "RequestStats.record: latency, TTFT, confidence": lambda: stats.record("chat", "v1", 0.123, None, 0.05, -0.4),
        "RequestStats.record: latency only": lambda: stats.record("chat", "v1", 0.123),
        "RequestStats.record: latency and an error": lambda: stats.record("chat", "v1", 0.123, "upstream"),
        "Window.record: latency, TTFT, confidence": lambda: window.record(0.123, None, 0.05, -0.4),
        "Window.record: latency only": lambda: window.record(0.123),
        "an empty lambda (the loop's own cost)": lambda: None,
    }
    for name, call in cases.items():
        best = min(timeit.repeat(call, number=N, repeat=7)) / N
        print(f"{best * 1e6:6.3f} µs  {name}")


if __name__ == "__main__":
    main()
