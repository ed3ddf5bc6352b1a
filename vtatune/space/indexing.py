"""Vectorised index arithmetic of ``ConfigSpace`` (AutoTVM's mixed-radix flat index, first
knob least significant), for tuners and feature extractors that handle many configurations
at once.  ``ConfigSpace.point2knob``/``knob2point`` are the scalar forms of the same rule."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .config import ConfigSpace


def index_strides(dims: Sequence[int]) -> np.ndarray:
    """Place value of each knob digit in the flat index (first knob = least significant)."""
    strides = np.ones(len(dims), dtype=np.int64)
    for k in range(1, len(dims)):
        strides[k] = strides[k - 1] * dims[k - 1]
    return strides


def check_vectorisable(space: "ConfigSpace", who: str) -> None:
    """Vectorised code holds indices in int64: refuse spaces that do not fit."""
    if space.size >= 2 ** 62:
        raise ConfigurationError("space", f"{who} needs a space of fewer than 2**62 "
                                          f"configurations, this one has {space.size}")


def digits_of(indices: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """``point2knob`` for an array of indices: an ``(m, len(dims))`` int64 digit matrix."""
    idx = np.asarray(indices, dtype=np.int64).copy()
    out = np.empty((idx.shape[0], len(dims)), dtype=np.int64)
    for k, d in enumerate(dims):
        out[:, k] = idx % d
        idx //= d
    return out


def indices_of(digits: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """``knob2point`` for a digit matrix: the flat indices (int64)."""
    return np.asarray(digits, dtype=np.int64) @ index_strides(dims)


def knob_value_table(space: "ConfigSpace") -> list[np.ndarray]:
    """Per knob, the numeric value of each candidate (its position if not numeric)."""
    tables = []
    for knob in space.knobs.values():
        vals = list(knob.candidates)
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               for v in vals):
            tables.append(np.asarray(vals, dtype=np.float64))
        else:
            tables.append(np.arange(len(vals), dtype=np.float64))
    return tables
