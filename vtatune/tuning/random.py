"""``RandomTuner``: uniform sampling without replacement (AutoTVM ``RandomTuner``)."""
from __future__ import annotations

from .base import Tuner


class RandomTuner(Tuner):
    """Proposes uniformly random unvisited configurations.

    Asked for everything (``next_batch(space.size)``), it returns a permutation of the space.
    """

    name = "random"

    def _propose(self, n: int) -> None:
        self._take_random(n)
