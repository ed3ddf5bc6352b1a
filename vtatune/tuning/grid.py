"""``GridSearchTuner``: every configuration in index order (AutoTVM ``GridSearchTuner``)."""
from __future__ import annotations

from .base import Tuner


class GridSearchTuner(Tuner):
    """Proposes indices 0, 1, 2, ... skipping visited ones (e.g. chosen by ``init`` or told
    through ``update``).  ``seed`` is accepted for a uniform interface and only matters for
    the ``init`` hook's generator."""

    name = "grid"

    def __init__(self, space, *, seed=None, init=None):
        super().__init__(space, seed=seed, init=init)
        self._cursor = 0

    def _propose(self, n: int) -> None:
        size = self.space.size
        taken = 0
        while taken < n and self._cursor < size:
            if self._take(self._cursor, "grid"):
                taken += 1
            self._cursor += 1
