"""Whether a tuning run has converged: the check the transfer-tuning benchmark asserts
before it calls a run's result "the maximum" (issue 16; methods.md §B.4)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import ConfigurationError


@dataclass(frozen=True)
class Convergence:
    converged: bool
    gain: float          # relative improvement of the best latency over the last fraction
    trials: int
    window: int          # trials in the last fraction

    def describe(self) -> str:
        verdict = "converged" if self.converged else "NOT converged"
        return (f"{verdict}: the best latency improved {100 * self.gain:.1f} % over the last "
                f"{self.window} of {self.trials} trials")


def convergence(latencies: Sequence[float], *, last: float = 0.25,
                tol: float = 0.03) -> Convergence:
    """``latencies``: every trial's measured latency in trial order (failures as inf or
    NaN).  Converged when the best-so-far latency improved by less than ``tol`` (relative)
    over the last ``last`` fraction of the trials."""
    if not 0 < last < 1:
        raise ConfigurationError("last", f"must be in (0, 1), got {last}")
    if tol < 0:
        raise ConfigurationError("tol", f"must be >= 0, got {tol}")
    xs = [x if (isinstance(x, (int, float)) and math.isfinite(x) and x > 0) else math.inf
          for x in latencies]
    n = len(xs)
    window = max(1, int(round(n * last)))
    if n <= window:
        raise ConfigurationError("latencies", f"{n} trials are too few to judge convergence")
    best_before = min(xs[:n - window])
    best_after = min(xs)
    if math.isinf(best_after):
        raise ConfigurationError("latencies", "no trial succeeded")
    gain = 0.0 if math.isinf(best_before) else (best_before - best_after) / best_before
    if math.isinf(best_before):  # nothing valid before the window: still searching
        gain = 1.0
    return Convergence(gain < tol, gain, n, window)
