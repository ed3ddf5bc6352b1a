"""Parallel simulated annealing over a cost model (AutoTVM v0.14
``SimulatedAnnealingOptimizer``), vectorised with numpy.

``parallel_size`` chains walk the space at once; one step moves every chain to a random
neighbour (one knob changed to another candidate: the knob is drawn with probability
proportional to ``(d - 1) / d`` and the new candidate uniformly among the other ``d - 1``,
which is exactly the distribution of AutoTVM's ``ConfigSpace.random_walk`` retry loop), scores
all proposals with **one** model call, and accepts each with probability
``exp(min((new - old) / (t + 1e-5), 1))``.  The temperature falls linearly from ``temp[0]``
by ``(temp[0] - temp[1]) / (n_iter + 1)`` per step.  The best ``num`` distinct points seen
that are not in ``exclude`` are kept (AutoTVM's heap; ties keep the earlier point); the walk
stops after ``n_iter`` steps or ``early_stop`` steps without a change of that set.  With
``persistent`` the chains continue from where the previous call left them.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np

from ..space.indexing import index_strides

logger = logging.getLogger("vtatune.tuning")

#: Scores an ``(m, n_knobs)`` digit matrix: higher is better.
ScoreFn = Callable[[np.ndarray], np.ndarray]


class SimulatedAnnealingOptimizer:
    """Finds high-scoring points of a model over a mixed-radix space.

    Parameters
    ----------
    dims
        Candidates per knob (``ConfigSpace.dims``).
    rng
        ``numpy.random.Generator`` for every random choice.
    n_iter, temp, persistent, parallel_size, early_stop
        AutoTVM's defaults: 500, (1, 0), True, 128, 50 (``early_stop=None``: never).
    """

    def __init__(self, dims: Sequence[int], rng: np.random.Generator, *, n_iter: int = 500,
                 temp: float | tuple[float, float] = (1.0, 0.0), persistent: bool = True,
                 parallel_size: int = 128, early_stop: int | None = 50):
        self.dims = np.asarray(dims, dtype=np.int64)
        self.size = int(np.prod(self.dims, dtype=object))
        self.strides = index_strides(list(dims))
        self.rng = rng
        self.n_iter = n_iter
        self.temp = temp
        self.persistent = persistent
        self.parallel_size = min(parallel_size, self.size)
        self.early_stop = early_stop if early_stop else 10 ** 9
        self.points: np.ndarray | None = None  # chain positions (digit matrix)
        self.last_iterations = 0
        self.last_scores = np.empty(0)
        # knob choice of a random step: P(k) ∝ (d_k - 1) / d_k
        w = (self.dims - 1) / self.dims
        self._knob_p = w / w.sum() if w.sum() > 0 else None

    def _random_points(self, m: int) -> np.ndarray:
        idx = self.rng.choice(self.size, size=m, replace=False).astype(np.int64)
        out = np.empty((m, len(self.dims)), dtype=np.int64)
        for k, d in enumerate(self.dims):
            out[:, k] = idx % d
            idx = idx // d
        return out

    def _walk(self, points: np.ndarray) -> np.ndarray:
        m = points.shape[0]
        knob = self.rng.choice(len(self.dims), size=m, p=self._knob_p)
        d = self.dims[knob]
        step = self.rng.integers(1, np.maximum(d, 2))  # d >= 2 for every chosen knob
        new = points.copy()
        rows = np.arange(m)
        new[rows, knob] = (points[rows, knob] + step) % d
        return new

    def find_maximums(self, score: ScoreFn, num: int, exclude: np.ndarray, *,
                      min_score: float | None = None) -> list[int]:
        """Up to ``num`` indices with the highest scores, best first, none in ``exclude``
        (a sorted int64 array).  With ``min_score``, points scoring below it are left out of
        the result (AutoTVM v0.14 drops points with a negative score)."""
        tic = time.perf_counter()
        exclude = np.asarray(exclude, dtype=np.int64)

        def excluded(idx: np.ndarray) -> np.ndarray:
            if exclude.size == 0:
                return np.zeros(idx.shape, dtype=bool)
            pos = np.minimum(np.searchsorted(exclude, idx), exclude.size - 1)
            return exclude[pos] == idx

        if self.persistent and self.points is not None:
            points = self.points
        else:
            points = self._random_points(self.parallel_size)
        scores = np.asarray(score(points), dtype=np.float64)
        top_idx = np.full(num, -1, dtype=np.int64)      # -1: empty slot (score -inf)
        top_s = np.full(num, -np.inf)

        def offer(idx: np.ndarray, s: np.ndarray) -> bool:
            nonlocal top_idx, top_s
            floor = top_s.min()
            keep = (s > floor) & ~excluded(idx) & ~np.isin(idx, top_idx)
            if not keep.any():
                return False
            idx, s = idx[keep], s[keep]
            idx, first = np.unique(idx, return_index=True)  # a point reached by two chains
            s = s[first]
            all_idx = np.concatenate([top_idx, idx])
            all_s = np.concatenate([top_s, s])
            order = np.argsort(-all_s, kind="stable")[:num]
            top_idx, top_s = all_idx[order], all_s[order]
            return True

        offer(points @ self.strides, scores)
        if isinstance(self.temp, (tuple, list, np.ndarray)):
            t = float(self.temp[0])
            cool = (float(self.temp[0]) - float(self.temp[1])) / (self.n_iter + 1)
        else:
            t, cool = float(self.temp), 0.0
        k = k_last_modify = 0
        while self._knob_p is not None and k < self.n_iter and k < k_last_modify + self.early_stop:
            new_points = self._walk(points)
            new_scores = np.asarray(score(new_points), dtype=np.float64)
            ac_prob = np.exp(np.minimum((new_scores - scores) / (t + 1e-5), 1.0))
            accept = self.rng.random(ac_prob.shape[0]) < ac_prob
            points[accept] = new_points[accept]
            scores[accept] = new_scores[accept]
            if offer(new_points @ self.strides, new_scores):
                k_last_modify = k
            k += 1
            t -= cool
        if self.persistent:
            self.points = points
        self.last_iterations = k
        found = top_idx[(top_idx >= 0) & (top_s >= (-np.inf if min_score is None else min_score))]
        self.last_scores = top_s[(top_idx >= 0)]
        logger.debug("SA: %d iterations (last change %d), %d points, %.3f s", k, k_last_modify,
                     found.size, time.perf_counter() - tic)
        return [int(i) for i in found]
