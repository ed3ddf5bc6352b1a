"""``PrunerTuner``: Pruner's draft-then-verify exploration (Qiao et al., ASPLOS 2025;
methods.md §C.2) on a template space, with the XGB tuner's learned cost model as verifier.

Per round (one round = one plan of ``plan_size`` measurements, as the XGB tuner's):

1. **Draft** (every ``refresh`` rounds, and for the first plan): the cheap analytic draft
   model (``vtatune.autotune.draft.DraftModel`` for VTA spaces, or any object with a
   ``top(k, exclude)`` method) ranks the unvisited configurations and keeps the best
   ``n_draft`` (512, or the space if smaller) — the "potential space".  Between refreshes
   the drafted set only loses the configurations measured meanwhile.
2. **Verify**: the learned model (``XGBoostCostModel``, refitted on all outcomes as the XGB
   tuner does) scores **only** the drafted ∪ ``n_random`` uniformly random unvisited
   configurations, never the whole space; the plan is its ``plan_size`` best.  The number
   of configurations it scored is appended to ``model_calls`` (one entry per round).
3. The plan is handed out as the XGB tuner's: its last ``int(eps_greedy * plan_size)``
   slots are random configurations (ε-greedy, Pruner's 0.1).

Before the first model exists the first plan is the draft's top ``plan_size`` (minus the
ε-greedy share) unless an ``init`` hook chooses it — Pruner drafts from the first round;
AutoTVM's XGB tuner starts from random points.

Not the original's: Pruner's draft and verify steps are evolutionary searches over an
unbounded sketch space (2 GA generations scored by PSA, 1 by the learned model); a VTA
template space has at most a few thousand configurations, so the draft ranks all of them
exactly and the verify step scores its candidate set directly (no mutation).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .base import InitFn
from .xgb import XGBTuner

logger = logging.getLogger("vtatune.tuning")


class PrunerTuner(XGBTuner):
    """Draft-then-verify on top of the XGB tuner (module docstring).

    Parameters
    ----------
    space, seed, init
        As for every ``Tuner``.
    draft
        The draft model: an object with ``top(k, exclude) -> indices`` in predicted-best
        order (``vtatune.autotune.draft.DraftModel``).  Required.
    n_draft
        Size of the drafted set (512; Pruner's ``potential_space_size``).
    refresh
        Rounds between draft refreshes (2; ``potential_space_iter``).
    n_random
        Random unvisited configurations added to the verified set each round (64).
    eps_greedy
        Random share of each plan (0.1, Pruner's; the XGB tuner's is 0.05).
    min_score
        As for the XGB tuner, but ``None`` (keep every verified point) by default.
    **kwargs
        The XGB tuner's options (``plan_size``, ``feature_fn``, ``loss_type``, ...).
    """

    name = "pruner"

    def __init__(self, space, *, draft: Any = None, seed: int | None = None,
                 init: InitFn | None = None, n_draft: int = 512, refresh: int = 2,
                 n_random: int = 64, eps_greedy: float = 0.1,
                 min_score: float | None = None, **kwargs: Any):
        if draft is None or not callable(getattr(draft, "top", None)):
            raise ConfigurationError("draft", "the pruner tuner needs a draft model with a "
                                              "top(k, exclude) method (vtatune.autotune.draft)")
        for name, v, lo in (("n_draft", n_draft, 1), ("refresh", refresh, 1),
                            ("n_random", n_random, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigurationError(name, f"must be an integer >= {lo}, got {v!r}")
        super().__init__(space, seed=seed, init=init, eps_greedy=eps_greedy,
                         min_score=min_score, **kwargs)
        self.draft = draft
        self.n_draft = min(n_draft, space.size)
        self.refresh = refresh
        self.n_random = n_random
        self.drafted: np.ndarray | None = None   # the current potential space
        self.draft_refreshes = 0
        self.model_calls: list[int] = []         # learned-model evaluations per round
        self.verify_seconds = 0.0
        self._plan_source = "model"
        self._verify_rng = self._spawn_rng()

    # ------------------------------------------------------------------ draft
    def _redraft(self) -> None:
        self.drafted = np.asarray(self.draft.top(self.n_draft, self.visited), dtype=np.int64)
        self.draft_refreshes += 1

    def _propose(self, n: int) -> None:
        if self.train_ct == 0 and not self.trials and not self.history:
            # first plan, nothing measured: the draft's best (Pruner drafts from round 1)
            self._redraft()
            self.trials = [int(i) for i in self.drafted[:self.plan_size]]
            self.trial_pt = 0
            self._plan_source = "draft"
        before = len(self._batch)
        super()._propose(n)
        if self._plan_source != "model":
            for i in self._batch[before:]:
                if self.sources[i] == "model":
                    self.sources[i] = self._plan_source

    # ------------------------------------------------------------------ verify
    def _candidates(self) -> np.ndarray:
        if self.drafted is None or self.train_ct % self.refresh == 0:
            self._redraft()
        visited = self.visited
        drafted = np.asarray([i for i in self.drafted.tolist() if i not in visited],
                             dtype=np.int64)
        exclude = set(visited)
        exclude.update(drafted.tolist())
        rand = self.space.sample(min(self.n_random, self.space.size - len(exclude)),
                                 self._verify_rng, exclude=exclude) if self.n_random else []
        return np.concatenate([drafted, np.asarray(list(rand), dtype=np.int64)])

    def _plan(self) -> list[int]:
        """Verify: the fitted model scores only drafted ∪ random candidates (not SA over
        the whole space); its best ``plan_size`` are the plan."""
        t_verify = time.perf_counter()
        pool = self._candidates()
        trials: list[int] = []
        if pool.size:
            score = self._acquisition()(self._digits(pool))
            order = np.argsort(-score, kind="stable")
            if self.min_score is not None:
                order = order[score[order] >= self.min_score]
            trials = [int(i) for i in pool[order[:self.plan_size]]]
        self.model_calls.append(int(pool.size))
        self._verified = int(pool.size)
        self.verify_seconds = time.perf_counter() - t_verify
        self._plan_source = "model"
        return trials

    def _log_plan(self) -> None:
        logger.debug("pruner round %d: fit %.3f s, verified %d candidates, %.3f s",
                     self.train_ct, self.cost_model.fit_seconds, self._verified,
                     self.plan_seconds)

    def _digits(self, indices: np.ndarray) -> np.ndarray:
        from ..space.indexing import digits_of
        return digits_of(indices, self.space.dims)
