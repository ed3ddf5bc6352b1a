"""``GATuner``: genetic algorithm over knob digits (AutoTVM v0.14 ``GATuner``).

A gene is the knob digit vector of a configuration (``ConfigSpace.point2knob``); fitness is
``MeasureOutcome.throughput`` (``flops / mean cost``, 0 for an invalid configuration).
A generation has ``pop_size`` members.  When every member is measured, the next generation
is bred from the members plus the ``elite_num`` best genes kept from before (elites are
parents again, never re-measured):

* roulette selection: two distinct parents, probability proportional to
  ``fitness + 1e-8`` after normalising by the maximum (AutoTVM's constants);
* single-point crossover at a uniformly random knob position ``p`` in ``[0, n_knobs)``:
  the child takes knobs ``[0, p)`` from the first parent and ``[p, n_knobs)`` from the
  second;
* mutation: each knob independently, with probability ``mutation_prob``, gets a uniformly
  random candidate.

A child that is already visited (or already in the new generation) is discarded and bred
again, up to ``20 * pop_size`` attempts; slots still empty are filled with random unvisited
configurations.  When no more than ``pop_size`` configurations are left unvisited the next
generation is all of them (as AutoTVM).  If proposals run ahead of the measurements (a full
generation proposed, not all of it measured), the next generation is bred from the members
measured so far; the others join the parents of the following generation once measured.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError
from .base import InitFn, MeasureOutcome, Tuner


class GATuner(Tuner):
    """Genetic-algorithm tuner.

    Parameters
    ----------
    space, seed, init
        As for every ``Tuner``; ``init`` chooses (part of) generation 0.
    pop_size
        Genes per generation (AutoTVM default 100; capped at the space size).
    elite_num
        Best genes carried over as parents (default 3).
    mutation_prob
        Per-knob mutation probability (default 0.1).
    """

    name = "ga"

    def __init__(self, space, *, seed: int | None = None, init: InitFn | None = None,
                 pop_size: int = 100, elite_num: int = 3, mutation_prob: float = 0.1):
        super().__init__(space, seed=seed, init=init)
        if not isinstance(pop_size, int) or pop_size < 1:
            raise ConfigurationError("pop_size", f"must be a positive integer, got {pop_size!r}")
        if not isinstance(elite_num, int) or not 0 <= elite_num <= pop_size:
            raise ConfigurationError("elite_num", f"must be in 0..pop_size, got {elite_num!r}")
        if not 0.0 <= mutation_prob <= 1.0:
            raise ConfigurationError("mutation_prob", f"must be in [0, 1], got {mutation_prob!r}")
        self.pop_size = min(pop_size, space.size)
        self.elite_num = min(elite_num, self.pop_size)
        self.mutation_prob = float(mutation_prob)
        self.dims = space.dims
        self.generation = 0
        self._gen_start = 0              # position in self.proposed where this generation began
        self._children: list[int] = []   # bred, not yet proposed
        self._fitness: dict[int, float] = {}
        self._elites: list[tuple[int, float]] = []
        self._late: list[int] = []       # members not yet measured when their generation bred

    @property
    def init_size(self) -> int:
        return self.pop_size

    # ------------------------------------------------------------------ protocol
    def _members(self) -> list[int]:
        return self.proposed[self._gen_start:]

    def _propose(self, n: int) -> None:
        taken = 0
        while taken < n and self.remaining > 0:
            if len(self._members()) >= self.pop_size:
                self._evolve()
            if self._children:
                if self._take(self._children.pop(0), "ga"):
                    taken += 1
            else:  # generation 0, or breeding left empty slots
                before = len(self._batch)
                self._take_random(1)
                taken += len(self._batch) - before

    def _update(self, outcomes: list[MeasureOutcome]) -> None:
        for o in outcomes:
            self._fitness[o.index] = o.throughput
        members = self._members()
        if len(members) >= self.pop_size and all(i in self._fitness for i in members):
            self._evolve()

    # ------------------------------------------------------------------ breeding
    def _evolve(self) -> None:
        members = self._members()
        self._gen_start = len(self.proposed)
        self.generation += 1
        self._children = []
        if self.remaining <= self.pop_size:
            self._children = [i for i in range(self.space.size) if i not in self.visited]
            return
        candidates = self._late + members
        self._late = [i for i in candidates if i not in self._fitness]
        pool = [(i, self._fitness[i]) for i in candidates if i in self._fitness]
        in_pool = {i for i, _ in pool}
        pool += [e for e in self._elites if e[0] not in in_pool]
        if not pool:
            return  # nothing measured yet: the generation is random
        scores = np.array([s for _, s in pool], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        self._elites = [pool[j] for j in order[:self.elite_num]]
        genes = [self.space.point2knob(i) for i, _ in pool]
        probs = scores + 1e-8
        probs /= probs.max()
        probs /= probs.sum()
        rng, dims, n_knobs = self.rng, self.dims, len(self.dims)
        seen: set[int] = set()
        attempts = 0
        while len(self._children) < self.pop_size and attempts < 20 * self.pop_size:
            attempts += 1
            if len(genes) >= 2:
                a, b = rng.choice(len(genes), size=2, replace=False, p=probs)
                point = int(rng.integers(n_knobs))
                child = genes[a][:point] + genes[b][point:]
            else:
                child = list(genes[0])
            for j, d in enumerate(dims):
                if rng.random() < self.mutation_prob:
                    child[j] = int(rng.integers(d))
            idx = self.space.knob2point(child)
            if idx in self.visited or idx in seen:
                continue
            seen.add(idx)
            self._children.append(idx)
