"""``XGBTuner``: AutoTVM v0.14's model-based tuner with an XGBoost cost model.

Loop (AutoTVM ``ModelBasedTuner``):

1. Until the first model exists the tuner proposes uniformly random configurations (or the
   ``init`` hook's first plan).
2. ``update`` records ``(index, throughput)`` for every outcome (0 for an invalid one).
   Whenever ``plan_size`` more outcomes have arrived since the last fit (and at least one is
   valid), the cost model is refitted on **all** outcomes and the next plan is the
   ``plan_size`` unvisited points with the highest predicted score, found by parallel
   simulated annealing over the model (``sa.SimulatedAnnealingOptimizer``).
   Points with a negative predicted score are dropped from the plan (AutoTVM v0.14's SA
   does this; ``min_score=None`` keeps them).
3. ``next_batch`` hands out the plan in order; once only the last
   ``int(eps_greedy * plan_size)`` entries of the plan are left (3 of 64), and whenever the
   plan is used up before the next fit, it proposes random unvisited points instead
   (ε-greedy).

Cost model (AutoTVM ``XGBoostCostModel``): labels = throughput / max throughput; loss
``"rank"`` = ``rank:pairwise`` (one query group holding every sample) or ``"reg"`` =
squared error; ``max_depth`` 3, ``eta`` 0.3, ``gamma`` 1e-4, ``min_child_weight`` 1,
``subsample`` 1, ``lambda`` 1, ``alpha`` 0; up to 8000 boosting rounds, stopped when the
training-set "a-recall@plan_size" has not improved for 20 rounds (the trees after the best
round are kept, as AutoTVM's callback keeps them).

Requires the ``xgboost`` module (the ``xgboost-cpu`` package, extra ``vtatune[tune]``);
it is imported when an ``XGBTuner`` is created, not when this module is imported.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigurationError
from ..space.indexing import check_vectorisable, digits_of, index_strides
from .base import InitFn, MeasureOutcome, Tuner
from .features import FEATURE_TYPES, FeatureFn, knob_feature_fn
from .sa import SimulatedAnnealingOptimizer

logger = logging.getLogger("vtatune.tuning")

LOSS_TYPES = ("rank", "reg")


def _import_xgboost():
    try:
        import xgboost
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "tuner", "the xgb tuner needs the xgboost module: pip install 'vtatune[tune]' "
                     "(it installs the CPU-only xgboost-cpu package)") from None
    return xgboost


def _version(mod) -> tuple[int, ...]:
    out = []
    for part in mod.__version__.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def average_recall(preds: np.ndarray, labels: np.ndarray, n: int) -> float:
    """AutoTVM's "a-recall@n" (``metric.average_recall``): rank the samples by prediction
    (``argsort(preds)[::-1]``); with ``r_j`` the true rank (0 = best label) of the ``j``-th
    predicted sample, ``curve[i] = #{j < i : r_j <= i} / (i + 1)``; the score is
    ``sum(curve[:n]) / n``.  (The strict ``j < i`` is AutoTVM's.)"""
    labels = np.asarray(labels)
    order = np.argsort(preds)[::-1]
    by_label = np.argsort(-labels[order])           # AutoTVM get_rank(labels[order])
    ranks = np.empty_like(by_label)
    ranks[by_label] = np.arange(by_label.size)
    m = min(n, ranks.size)
    r = ranks[:m]
    i = np.arange(m)
    hits = (i[None, :] < i[:, None]) & (r[None, :] <= i[:, None])  # [i, j]
    curve = hits.sum(axis=1) / (i + 1)
    return float(curve.sum() / n)


class XGBoostCostModel:
    """XGBoost model of throughput over the configurations of a space.

    Parameters
    ----------
    feature_fn
        Digit matrix ``(m, n_knobs)`` -> feature matrix ``(m, n_features)``.
    dims
        ``ConfigSpace.dims``.
    rng
        Generator for the training-row shuffle and XGBoost's seed.
    loss_type, num_threads, max_rounds, early_stopping_rounds, params
        See ``XGBTuner``.
    """

    def __init__(self, feature_fn: FeatureFn, dims: Sequence[int], rng: np.random.Generator, *,
                 loss_type: str = "rank", num_threads: int | None = 1,
                 max_rounds: int = 8000, early_stopping_rounds: int = 20,
                 params: dict[str, Any] | None = None, table_limit: int = 1 << 16):
        if loss_type not in LOSS_TYPES:
            raise ConfigurationError("loss_type",
                                     f"expected one of {LOSS_TYPES}, got {loss_type!r}")
        self.xgb = _import_xgboost()
        self.feature_fn = feature_fn
        self.dims = list(dims)
        self.rng = rng
        self.loss_type = loss_type
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.params = self.default_params(loss_type, num_threads)
        self.params.update(params or {})
        self.bst = None
        self.strides = index_strides(self.dims)
        size = int(np.prod(np.asarray(self.dims, dtype=object)))
        self._table_wanted = size <= table_limit
        self._table: np.ndarray | None = None  # features of the whole space (small spaces)
        self.rounds = 0          # boosting rounds of the last fit
        self.fit_seconds = 0.0

    def default_params(self, loss_type: str, num_threads: int | None) -> dict[str, Any]:
        """AutoTVM's XGBoost parameters, plus the settings that make XGBoost >= 2 train
        ``rank:pairwise`` as the 1.x releases AutoTVM was written for (docs/tuners.md)."""
        p: dict[str, Any] = {
            "max_depth": 3, "gamma": 0.0001, "min_child_weight": 1, "subsample": 1.0,
            "eta": 0.3, "lambda": 1.0, "alpha": 0,
            "objective": "rank:pairwise" if loss_type == "rank" else "reg:squarederror",
            "tree_method": "exact", "base_score": 0.5, "verbosity": 0,
            "seed": int(self.rng.integers(2 ** 31)),
        }
        if num_threads is not None:
            p["nthread"] = num_threads
        v = _version(self.xgb)
        if loss_type == "rank" and v >= (2, 0):
            # 1.x rank:pairwise: one randomly sampled pair per sample, unnormalised gradients
            p.update(lambdarank_pair_method="mean", lambdarank_num_pair_per_sample=1)
            if v >= (2, 1):
                p["lambdarank_normalization"] = False
            if v >= (3, 0):
                p["lambdarank_score_normalization"] = False
        return p

    def features_of_digits(self, digits: np.ndarray) -> np.ndarray:
        """Feature rows of a digit matrix; for a space of at most ``table_limit``
        configurations the features of the whole space are computed once and looked up
        (AutoTVM caches features per index too)."""
        if self._table_wanted:
            if self._table is None:
                size = int(np.prod(self.dims))
                self._table = self.feature_fn(digits_of(np.arange(size, dtype=np.int64),
                                                        self.dims))
            return self._table[digits @ self.strides]
        return self.feature_fn(digits)

    def features(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.features_of_digits(digits_of(np.asarray(indices, dtype=np.int64), self.dims))

    def fit(self, indices: Sequence[int], ys: Sequence[float], plan_size: int) -> None:
        """Fit on (index, throughput) pairs, early-stopping on a-recall@plan_size."""
        tic = time.perf_counter()
        xgb = self.xgb
        x = self.features(indices)
        y = np.asarray(ys, dtype=np.float64)
        y = y / max(float(y.max()), 1e-8)
        perm = self.rng.permutation(len(y))
        dtrain = xgb.DMatrix(x[perm], label=y[perm], nthread=self.params.get("nthread", -1))
        labels = y[perm]
        bst = xgb.Booster(self.params, [dtrain])
        best, best_round, it = -np.inf, 0, 0
        for it in range(self.max_rounds):
            bst.update(dtrain, it)
            pred = bst.predict(dtrain, output_margin=True)  # incremental (prediction cache)
            score = average_recall(pred, labels, plan_size)
            if score > best:
                best, best_round = score, it
            elif it - best_round >= self.early_stopping_rounds:
                break
        self.bst = bst
        self.rounds = it + 1
        self.fit_seconds = time.perf_counter() - tic
        logger.debug("XGB fit: %d samples (%d invalid), %d rounds, a-recall@%d %.3f, %.3f s",
                     len(y), int(np.sum(y <= 1e-6)), self.rounds, plan_size, best,
                     self.fit_seconds)

    def predict_digits(self, digits: np.ndarray) -> np.ndarray:
        """Model score of each row of a digit matrix (higher = predicted faster)."""
        if self.bst is None:
            raise ConfigurationError("model", "predict before fit")
        return self.bst.inplace_predict(self.features_of_digits(digits), predict_type="margin")

    def predict(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.predict_digits(digits_of(np.asarray(indices, dtype=np.int64), self.dims))


class XGBTuner(Tuner):
    """AutoTVM's ``XGBTuner`` (defaults as in TVM v0.14, except ``loss_type``: v0.14 defaults
    to ``"reg"``, this tuner to the earlier AutoTVM's ``"rank"``; docs/tuners.md).

    Parameters
    ----------
    space, seed, init
        As for every ``Tuner``; ``init`` chooses the first plan (``plan_size`` configs).
    plan_size
        Measurements between refits, and the size of each plan (64).
    feature_type
        ``"knob"``: the only feature set every space has.  Backends pass their own
        ``feature_fn`` (the VTA driver: AutoTVM's default ``"itervar"`` features,
        ``vtatune.autotune.features``).
    loss_type
        ``"rank"`` (``rank:pairwise``, default) or ``"reg"``.
    feature_fn
        Custom features: a callable digit matrix -> feature matrix (overrides
        ``feature_type``).
    eps_greedy
        Share of each plan replaced by random points (0.05 -> ``int(0.05 * 64)`` = 3).
    n_iter, parallel_size, early_stop, temp, persistent
        Simulated annealing: 500, 128, 50, (1, 0), True.
    min_score
        Points whose predicted score is below this are dropped from a plan, their slots
        going to random points (AutoTVM v0.14 drops negative scores: 0.0; ``None`` keeps
        every point).
    num_threads
        XGBoost threads (default 1; ``None``: XGBoost's default, all cores — AutoTVM's).
    max_rounds, early_stopping_rounds, xgb_params
        Boosting rounds (8000), early stop (20), parameter overrides.
    acquisition_weight
        Optional weight in [0, 1] of each configuration (a callable digit matrix -> weights,
        e.g. a validity classifier's P(valid)) folded into the score the simulated annealing
        maximises: ``w * score`` for ``"reg"`` (a throughput estimate, >= 0) and
        ``score + log(w)`` for ``"rank"`` (scores on an arbitrary log-like scale, where a
        product would reward negative scores for low weights).  Not AutoTVM's.
    """

    name = "xgb"

    def __init__(self, space, *, seed: int | None = None, init: InitFn | None = None,
                 plan_size: int = 64, feature_type: str = "knob", loss_type: str = "rank",
                 feature_fn: FeatureFn | None = None,
                 eps_greedy: float = 0.05, n_iter: int = 500, parallel_size: int = 128,
                 early_stop: int | None = 50, temp: float | tuple[float, float] = (1.0, 0.0),
                 persistent: bool = True, min_score: float | None = 0.0,
                 num_threads: int | None = 1,
                 max_rounds: int = 8000, early_stopping_rounds: int = 20,
                 xgb_params: dict[str, Any] | None = None,
                 acquisition_weight: FeatureFn | None = None):
        super().__init__(space, seed=seed, init=init)
        check_vectorisable(space, "the xgb tuner")
        if not isinstance(plan_size, int) or plan_size < 1:
            raise ConfigurationError("plan_size", f"must be a positive integer, got {plan_size!r}")
        if not 0.0 <= eps_greedy <= 1.0:
            raise ConfigurationError("eps_greedy", f"must be in [0, 1], got {eps_greedy!r}")
        self.plan_size = plan_size
        self.eps_greedy = eps_greedy
        self.min_score = min_score
        self.feature_type = "custom" if feature_fn is not None else feature_type
        if feature_fn is None:
            feature_fn = self._feature_fn(feature_type)
        model_rng, sa_rng = self._spawn_rng(), self._spawn_rng()
        self.cost_model = XGBoostCostModel(
            feature_fn, space.dims, model_rng, loss_type=loss_type, num_threads=num_threads,
            max_rounds=max_rounds, early_stopping_rounds=early_stopping_rounds,
            params=xgb_params)
        self.optimizer = SimulatedAnnealingOptimizer(
            space.dims, sa_rng, n_iter=n_iter, temp=temp, persistent=persistent,
            parallel_size=parallel_size, early_stop=early_stop)
        self.acquisition_weight = acquisition_weight
        self.trials: list[int] = []      # the current plan
        self.trial_pt = 0
        self.xs: list[int] = []
        self.ys: list[float] = []
        self.train_ct = 0
        self.plan_seconds = 0.0          # time of the last fit + SA

    def _feature_fn(self, feature_type: str) -> FeatureFn:
        if feature_type == "knob":
            return knob_feature_fn(self.space)
        raise ConfigurationError("feature_type",
                                 f"expected one of {FEATURE_TYPES} or a feature_fn, "
                                 f"got {feature_type!r}")

    @property
    def init_size(self) -> int:
        return self.plan_size

    def _acquisition(self):
        score, weight = self.cost_model.predict_digits, self.acquisition_weight
        if weight is None:
            return score
        if self.cost_model.loss_type == "reg":
            return lambda d: score(d) * np.clip(weight(d), 0.0, 1.0)
        return lambda d: score(d) + np.log(np.clip(weight(d), 1e-9, 1.0))

    # ------------------------------------------------------------------ protocol
    def _propose(self, n: int) -> None:
        n_random = int(self.eps_greedy * self.plan_size)
        taken = 0
        while taken < n and self.remaining > 0:
            while self.trial_pt < len(self.trials) and self.trials[self.trial_pt] in self.visited:
                self.trial_pt += 1
            if self.trial_pt >= len(self.trials) - n_random:
                before = len(self._batch)
                self._take_random(1)
                taken += len(self._batch) - before
            else:
                self._take(self.trials[self.trial_pt], "model")
                self.trial_pt += 1
                taken += 1

    def _update(self, outcomes: list[MeasureOutcome]) -> None:
        for o in outcomes:
            self.xs.append(o.index)
            self.ys.append(o.throughput)
        if len(self.xs) >= self.plan_size * (self.train_ct + 1) and max(self.ys) > 0:
            tic = time.perf_counter()
            self.cost_model.fit(self.xs, self.ys, self.plan_size)
            self.trials = self._plan()
            self.trial_pt = 0
            self.train_ct += 1
            self.plan_seconds = time.perf_counter() - tic
            self._log_plan()

    def _plan(self) -> list[int]:
        """The next plan from the freshly fitted model: SA over the whole space."""
        exclude = np.fromiter(self.visited, dtype=np.int64, count=len(self.visited))
        exclude.sort()
        return self.optimizer.find_maximums(self._acquisition(), self.plan_size, exclude,
                                            min_score=self.min_score)

    def _log_plan(self) -> None:
        logger.debug("XGB plan %d: fit %.3f s (%d rounds), SA %d iterations, %.3f s total",
                     self.train_ct, self.cost_model.fit_seconds, self.cost_model.rounds,
                     self.optimizer.last_iterations, self.plan_seconds)
