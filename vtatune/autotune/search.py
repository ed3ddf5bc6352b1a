"""The search loop every VTA tuning run uses — the database-backed session and the replayed
benchmarks alike — so a benchmark measures the product's own loop.

``search`` asks the tuner for batches, lets an optional *screen* decide which proposals are
measured (the rest are "screened": never measured, never told to the tuner, never counted in
the budget), measures through a callback and tells the tuner.  An optional *init strategy*
chooses the first plan from validity information (methods §A.4): it may first *probe* a few
configurations (measured, counted), then returns the seeded first batch, which reaches the
tuner through its ``init`` hook; the probed outcomes are told to the tuner right after.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..space.config import ConfigSpace
from ..tuning import InitFn, MeasureOutcome, Tuner


class Screen(Protocol):
    """Decides which proposals are measured."""

    def keep(self, indices: np.ndarray) -> np.ndarray:
        """A bool mask over ``indices``: True = measure."""


class InitStrategy(Protocol):
    """Chooses the first plan from validity information."""

    def probe(self, space: ConfigSpace, rng: np.random.Generator) -> list[int]:
        """Configurations to measure before the first plan is chosen ([] = none)."""

    def first_batch(self, space: ConfigSpace, n: int, rng: np.random.Generator,
                    probed: list[MeasureOutcome]) -> list[int]:
        """The seeded first plan (at most ``n`` indices, disjoint from the probed ones)."""


MakeTuner = Callable[[InitFn | None], Tuner]
Measure = Callable[[list[int]], list[MeasureOutcome]]


@dataclass
class SearchResult:
    outcomes: list[MeasureOutcome] = field(default_factory=list)  # measured here, in order
    screened: list[int] = field(default_factory=list)             # proposed, not measured
    probed: int = 0
    best: MeasureOutcome | None = None
    best_at: int | None = None          # measurement number (1-based, resumed included)
    measured: int = 0                   # resumed + measured here
    stopped_early: bool = False

    @property
    def invalid(self) -> int:
        return sum(not o.valid for o in self.outcomes)


def search(make_tuner: MakeTuner, measure: Measure, budget: int, *, batch: int = 64,
           early_stopping: int | None = None, screen: Screen | None = None,
           init: InitStrategy | None = None, space: ConfigSpace | None = None,
           rng: np.random.Generator | None = None,
           resumed: Iterable[MeasureOutcome] = (),
           on_measured: Callable[[list[MeasureOutcome]], None] | None = None,
           on_screened: Callable[[list[int]], None] | None = None,
           chunk: int | None = None) -> SearchResult:
    """Measure up to ``budget`` configurations (``resumed`` outcomes count), ``chunk`` at a
    time (default ``batch``).  ``early_stopping``: stop after that many measurements without
    improvement (AutoTVM's rule).  Returns what happened; ``measure`` is expected to store
    results itself (the session writes them to the database).  ``space`` (the tuner's) is
    needed by an ``init`` strategy."""
    if init is not None and space is None:
        raise ConfigurationError("space", "an init strategy needs the space it chooses from")
    rng = rng if rng is not None else np.random.default_rng(0)
    chunk = chunk or batch
    res = SearchResult()
    resumed = list(resumed)
    seen: set[int] = set()
    last_improvement = 0

    def account(outs: Sequence[MeasureOutcome]) -> None:
        nonlocal last_improvement
        for o in outs:
            seen.add(o.index)
            res.measured += 1
            if o.valid and (res.best is None or o.throughput > res.best.throughput):
                res.best, res.best_at = o, res.measured
                last_improvement = res.measured

    def stop() -> bool:
        if early_stopping and res.measured - last_improvement >= early_stopping:
            res.stopped_early = True
            return True
        return False

    account(resumed)
    hook: InitFn | None = None
    probed: list[MeasureOutcome] = []
    if init is not None and not resumed:  # a resumed run already has its first plan
        probe = [i for i in init.probe(space, rng) if i not in seen]
        probe = probe[:max(0, budget - res.measured)]
        if probe:
            probed = measure(probe)
            res.outcomes += probed
            res.probed = len(probed)
            account(probed)
            if on_measured:
                on_measured(probed)
        probed_now = list(probed)

        def hook(_space, n, _rng):
            # n is the tuner's own first plan (plan_size for xgb), not the loop's batch
            return [i for i in init.first_batch(space, n, rng, probed_now) if i not in seen][:n]
    tuner = make_tuner(hook)
    if resumed:
        tuner.update(resumed)
    told_probe = not probed
    while res.measured < budget and tuner.has_next() and not stop():
        proposals = [i for i in tuner.next_batch(min(budget - res.measured, batch))
                     if i not in seen]
        if not told_probe:  # after the first next_batch, so the init hook was used
            tuner.update(probed)
            told_probe = True
        if screen is not None and proposals:
            mask = np.asarray(screen.keep(np.asarray(proposals, dtype=np.int64)), dtype=bool)
            dropped = [i for i, k in zip(proposals, mask) if not k]
            proposals = [i for i, k in zip(proposals, mask) if k]
            if dropped:
                res.screened += dropped
                seen.update(dropped)
                if on_screened:
                    on_screened(dropped)
        for lo in range(0, len(proposals), chunk):
            part = proposals[lo:lo + chunk][:max(0, budget - res.measured)]
            if not part:
                break
            outs = measure(part)
            res.outcomes += outs
            account(outs)
            tuner.update(outs)
            if on_measured:
                on_measured(outs)
            if stop():
                break
    if not told_probe:
        tuner.update(probed)
    return res
