"""An early verdict on a rate from the candidate's own answers: Wald's sequential probability ratio
test (SPRT). Pure.

Why: at a 1-10 % weight an analysis interval may hold fewer candidate answers than
`min_requests`, and a fixed window then says only "inconclusive". But a candidate that refuses 6
answers out of 6 has already shown it is bad: waiting for 20 costs callers. For a condition on a
rate (`error_rate < 0.05`, `shadow_refusal_rate <= stable + 0.05`, ...) with threshold `t`, the
test weighs two hypotheses about the candidate's true rate over the answers seen so far:

- H0, acceptable: the rate is `t / 2`; H1, bad: the rate is `t`.
- After `k` events in `n` answers the log-likelihood ratio is
  `k ln(p1 / p0) + (n - k) ln((1 - p1) / (1 - p0))`; it is Failed once that reaches
  `ln((1 - beta) / alpha)` (Wald's bound), else "not yet": the measurement stays Inconclusive
  for lack of traffic, as before.

Only an early failure is taken. An early pass would need far more answers than `min_requests` at
these rates (about 110 event-free answers for `t = 0.05`), so passing stays with the ordinary
measurement, and a quiet candidate is never called healthy. `alpha` bounds how often a candidate
whose rate is only `t / 2` is failed early (1 %); a candidate with no events can never be.
The message says how much evidence there was: `k` of `n`, the ratio and the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.01  # chance of failing early a candidate at the acceptable rate t / 2
BETA = 0.05  # chance of missing a bad one early (it is then judged at min_requests)


@dataclass(frozen=True, slots=True)
class Evidence:
    events: int
    n: int
    llr: float  # log-likelihood ratio of "rate = t" against "rate = t / 2"
    bound: float  # ln((1 - BETA) / ALPHA): at or above it, the candidate fails

    @property
    def failed(self) -> bool:
        return self.llr >= self.bound

    def __str__(self) -> str:
        return f"SPRT: {self.events} of {self.n}, log-likelihood ratio {self.llr:.2f} vs bound {self.bound:.2f}"


def rate_evidence(events: int, n: int, threshold: float, alpha: float = ALPHA, beta: float = BETA) -> Evidence | None:
    """The evidence `events` in `n` answers give that the rate is at `threshold` rather than half
    of it; None when the test does not apply (no answers, or a threshold outside (0, 1))."""
    if n <= 0 or not 0 < threshold < 1:
        return None
    p1, p0 = threshold, threshold / 2
    llr = events * math.log(p1 / p0) + (n - events) * math.log((1 - p1) / (1 - p0))
    return Evidence(events, n, llr, math.log((1 - beta) / alpha))
