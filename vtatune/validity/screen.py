"""Screens: which proposals of a tuner are measured (issue 11 item 2).

A screen is the ``autotune.search.Screen`` protocol: ``keep(indices) -> bool mask`` (True =
measure).  What the search loop does with the rest ("screened": never measured, never told to
the tuner, never counted in the budget, stored as ``predicted`` records by the session) is
the loop's business, not the screen's.

``LearnedScreen(model, task, threshold=0.5)``
    Keeps a configuration when the validity classifier's calibrated P(valid) is at least
    ``threshold``.  For spaces of at most ``table_limit`` configurations the probabilities of
    the whole space are computed once, on first use, and looked up afterwards; larger spaces
    are predicted per call (with a per-index memo).

``ExactScreen(task)``
    Keeps a configuration when the compiler's compile-only check accepts it
    (``vtatune.compiler.sweep.verdict``: the lowering's SRAM/DMA/padding checks and the
    runtime's micro-op checks, no instruction stream).  Verdicts are memoised per index.

Both have ``p_valid(indices)`` (``ExactScreen``: 0.0 / 1.0), usable as the validity prior of
``ValidityInit`` and, through ``acquisition_weight()``, as ``XGBTuner``'s
``acquisition_weight`` (a callable digit matrix -> weights in [0, 1]).
"""
from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np

from ..errors import ValidityModelError
from ..space.indexing import indices_of
from .features import check_indices

#: Spaces up to this size get their whole P(valid) table computed once.
TABLE_LIMIT = 1 << 16


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0.0 <= float(threshold) <= 1.0:
        raise ValidityModelError("threshold", f"must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def _check_task(task):
    for attr in ("workload", "hw", "space"):
        if not hasattr(task, attr):
            raise ValidityModelError("task", f"expected a VtaTask (with .{attr}), got "
                                             f"{type(task).__name__}")
    return task


class _ScreenBase(abc.ABC):
    """Shared parts: the threshold rule and the XGB acquisition weight."""

    threshold: float
    task: object

    @abc.abstractmethod
    def p_valid(self, indices) -> np.ndarray:
        """P(valid) of each index."""

    def keep(self, indices) -> np.ndarray:
        """Bool mask over ``indices``: True = measure (P(valid) >= threshold)."""
        return self.p_valid(indices) >= self.threshold

    def acquisition_weight(self) -> Callable[[np.ndarray], np.ndarray]:
        """A digit matrix -> P(valid) callable for ``XGBTuner(acquisition_weight=...)``."""
        dims = self.task.space.dims

        def weight(digits: np.ndarray) -> np.ndarray:
            return self.p_valid(indices_of(np.asarray(digits, dtype=np.int64), dims))
        return weight


class LearnedScreen(_ScreenBase):
    """Keeps configurations whose predicted P(valid) is at least ``threshold``.

    Parameters
    ----------
    model
        A trained ``ValidityModel`` for the task's template (and hardware key, unless
        ``allow_other_hw``).
    task
        The ``VtaTask`` (``.workload``, ``.hw``, ``.space``).
    threshold
        In [0, 1]; 0.5 by default.
    allow_other_hw
        Use a model trained on hardware with other validity fields (cross-hardware runs).
    probabilities
        Optional precomputed P(valid) of the whole space (an array of ``space.size``), e.g.
        computed once per workload by a benchmark; the model is then not called.
    table_limit
        Spaces up to this size are predicted whole on first use.
    """

    def __init__(self, model, task, threshold: float = 0.5, *, allow_other_hw: bool = False,
                 probabilities: np.ndarray | None = None, table_limit: int = TABLE_LIMIT):
        self.task = _check_task(task)
        self.model = model
        self.threshold = _check_threshold(threshold)
        self.allow_other_hw = allow_other_hw
        size = task.space.size
        self._table: np.ndarray | None = None
        self._memo: dict[int, float] = {}
        if probabilities is not None:
            p = np.asarray(probabilities, dtype=np.float64)
            if p.shape != (size,):
                raise ValidityModelError("probabilities", f"expected {size} values (the space), "
                                                          f"got shape {p.shape}")
            if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
                raise ValidityModelError("probabilities", "values must be in [0, 1]")
            self._table = p
        else:
            if model is None or not hasattr(model, "predict_proba"):
                raise ValidityModelError("model", "a LearnedScreen needs a trained ValidityModel "
                                                  "(or probabilities=)")
            model.check(task.workload, task.hw, allow_other_hw)
        self._whole = size <= table_limit

    def _predict(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.task.workload, self.task.hw, idx,
                                                   allow_other_hw=self.allow_other_hw),
                          dtype=np.float64)

    def p_valid(self, indices) -> np.ndarray:
        """Calibrated P(valid) of the configurations at ``indices``."""
        idx = check_indices(self.task.space, indices)
        if self._table is None and self._whole:
            self._table = self._predict(np.arange(self.task.space.size, dtype=np.int64))
        if self._table is not None:
            return self._table[idx]
        missing = np.unique(np.fromiter((i for i in idx.tolist() if i not in self._memo),
                                        dtype=np.int64))
        if missing.size:
            for i, p in zip(missing.tolist(), self._predict(missing).tolist()):
                self._memo[i] = p
        return np.fromiter((self._memo[i] for i in idx.tolist()), dtype=np.float64,
                           count=idx.size)


class ExactScreen(_ScreenBase):
    """Keeps configurations the compiler's compile-only check accepts (threshold 0.5 on a
    0/1 verdict).  ``verdicts`` (optional) is the precomputed bool verdict of the whole
    space, e.g. ``validity.sweep_labels(...).valid``."""

    threshold = 0.5

    def __init__(self, task, *, verdicts: np.ndarray | None = None):
        self.task = _check_task(task)
        self._memo: dict[int, bool] = {}
        self._table: np.ndarray | None = None
        if verdicts is not None:
            v = np.asarray(verdicts)
            if v.shape != (task.space.size,) or v.dtype != bool:
                raise ValidityModelError("verdicts", f"expected {task.space.size} bools (the "
                                                     f"space), got {v.dtype} of shape {v.shape}")
            self._table = v

    def verdict(self, index: int) -> bool:
        """The compile-only verdict of one configuration (memoised)."""
        from ..compiler.sweep import verdict
        index = int(index)
        if self._table is not None:
            return bool(self._table[index])
        v = self._memo.get(index)
        if v is None:
            cfg = self.task.space.get(index)
            v = self._memo[index] = verdict(self.task.workload, cfg.knobs, self.task.hw,
                                            self.task.profile, self.task.sync)[0]
        return v

    def p_valid(self, indices) -> np.ndarray:
        """1.0 where the compiler accepts the configuration, else 0.0."""
        idx = check_indices(self.task.space, indices)
        if self._table is not None:
            return self._table[idx].astype(np.float64)
        return np.fromiter((1.0 if self.verdict(i) else 0.0 for i in idx.tolist()),
                           dtype=np.float64, count=idx.size)
