"""Backend-agnostic helpers of the One-Shot predictors (VTA: ``autotune/oneshot.py``;
MetaSchedule: ``backends/tvm/oneshot.py``): label-frequency-balanced sample weights and
Kendall's tau-b for held-out ranking quality."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError


def balanced_weights(labels, bins: int = 100) -> np.ndarray:
    """Label-frequency-balanced sample weights (the original trains with weights inverse to
    the label-histogram bin count, 100 bins): ``bins`` equal-width bins over
    ``[min, max]`` of the labels (``numpy.histogram``'s edges; the last bin is closed), each
    sample weighted ``n / (B * count of its bin)`` with ``B`` the number of non-empty bins,
    so every non-empty bin carries the same total weight and the weights sum to ``n``."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if y.size == 0:
        return np.zeros(0)
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ConfigurationError("bins", f"must be a positive integer, got {bins!r}")
    counts, edges = np.histogram(y, bins=int(bins))
    b = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, int(bins) - 1)
    nonempty = int((counts > 0).sum())
    return y.size / (nonempty * counts[b].astype(np.float64))


def kendall_tau(a, b) -> float:
    """Kendall's τ-b of two equally long sequences (ties handled as scipy.stats.kendalltau's
    default variant); NaN when either is constant or shorter than 2."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ConfigurationError("b", f"{y.size} values for {x.size}")
    n = x.size
    if n < 2:
        return float("nan")
    conc = 0.0       # concordant - discordant pairs
    n1 = n2 = 0      # pairs not tied in x / not tied in y
    step = max(1, 1_000_000 // n)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        dx = np.sign(x[lo:hi, None] - x[None, :])
        dy = np.sign(y[lo:hi, None] - y[None, :])
        rows = np.arange(lo, hi)[:, None]
        upper = np.arange(n)[None, :] > rows   # each pair once
        conc += float((dx * dy)[upper].sum())
        n1 += int(((dx != 0) & upper).sum())
        n2 += int(((dy != 0) & upper).sum())
    if n1 == 0 or n2 == 0:
        return float("nan")
    return conc / np.sqrt(float(n1) * float(n2))
