"""Synthetic spaces and zero-cost objectives for the tuner tests (and the benchmark)."""
from __future__ import annotations

import math

import numpy as np

from vtatune.space import ConfigSpace
from vtatune.tuning import MeasureOutcome

FLOPS = 1e9


def synthetic_space() -> ConfigSpace:
    """30 x 30 x 2 x 4 = 7200 configurations: two splits of 720, a thread knob and a
    categorical knob."""
    s = ConfigSpace(name="synthetic")
    s.define_split("a", 720)
    s.define_split("b", 720)
    s.define_knob("t", [1, 2])
    s.define_knob("u", [0, 1, 2, 3])
    return s


def synthetic_throughput(knobs: dict) -> float:
    """Smooth in log2 of the tile sizes, peaked at a = 32, b = 8; invalid (0) when
    t * a * b > 720 (a 'buffer overflow' region, about a third of the space)."""
    a, b, t, u = knobs["a"], knobs["b"], knobs["t"], knobs["u"]
    if t * a * b > 720:
        return 0.0
    la, lb = math.log2(a), math.log2(b)
    g = math.exp(-((la - 5.0) ** 2 + (lb - 3.0) ** 2) / 6.0)
    return g * (1.0 + 0.25 * (t - 1)) * (1.0 - 0.1 * abs(u - 2))


class Objective:
    """Zero-cost measurement of a space: every index's throughput precomputed."""

    def __init__(self, space: ConfigSpace, fn=synthetic_throughput):
        self.space = space
        self.tp = np.array([fn(space.get(i).knobs) for i in range(space.size)])
        self.order = np.argsort(-self.tp, kind="stable")
        self.best_index = int(self.order[0])
        self.best = float(self.tp[self.best_index])

    def measure(self, indices) -> list[MeasureOutcome]:
        out = []
        for i in indices:
            tp = self.tp[i]
            if tp > 0:
                out.append(MeasureOutcome(i, (FLOPS / (tp * 1e12),), 0, FLOPS))
            else:
                out.append(MeasureOutcome(i, (1e9,), 2, FLOPS))
        return out


def run(tuner, objective: Objective, n_trials: int, batch: int = 8) -> list[int]:
    """Propose/measure/update until ``n_trials`` (or the space) is used; the proposals."""
    seen = []
    while len(seen) < n_trials and tuner.has_next():
        idx = tuner.next_batch(min(batch, n_trials - len(seen)))
        seen.extend(idx)
        tuner.update(objective.measure(idx))
    return seen


def trials_to_best(seen: list[int], objective: Objective) -> int:
    """1-based position of the optimum in ``seen`` (len + 1 if never found)."""
    try:
        return seen.index(objective.best_index) + 1
    except ValueError:
        return len(seen) + 1
