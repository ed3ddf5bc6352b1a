"""Cost-model features that need nothing but the space: ``"knob"`` features (AutoTVM
``ConfigEntity.get_flatten_feature``): one column per knob, the knob's value (a split's inner
factor, a ``define_knob`` value; the candidate position for non-numeric candidates).

A ``FeatureFn`` maps a digit matrix to a feature matrix; backends hand their own (e.g. the
VTA loop-nest features of ``vtatune.autotune.features``) to the tuners.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..space.indexing import digits_of, knob_value_table

if TYPE_CHECKING:
    from ..space.config import ConfigSpace

#: Feature sets every space has.
FEATURE_TYPES = ("knob",)

FeatureFn = Callable[[np.ndarray], np.ndarray]
"""Maps an ``(m, n_knobs)`` digit matrix to an ``(m, n_features)`` float32 matrix."""


def knob_feature_fn(space: ConfigSpace) -> FeatureFn:
    """Vectorised ``"knob"`` features of ``space``'s configurations."""
    tables = knob_value_table(space)

    def fn(digits: np.ndarray) -> np.ndarray:
        out = np.empty((digits.shape[0], len(tables)), dtype=np.float32)
        for j, t in enumerate(tables):
            out[:, j] = t[digits[:, j]]
        return out
    return fn


def space_features(space: ConfigSpace, indices, fn: FeatureFn) -> np.ndarray:
    """Features of the configurations at ``indices`` (any int sequence)."""
    return fn(digits_of(np.asarray(indices, dtype=np.int64), space.dims))
