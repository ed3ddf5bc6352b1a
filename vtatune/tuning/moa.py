"""MoA — momentum online adaptation of a pre-trained cost model (Pruner, methods.md §C.5),
with a small numpy MLP, so the momentum update on the weights is exact.

* ``MLPRankModel``: features -> score, a two-hidden-layer ReLU MLP trained with a pairwise
  logistic (RankNet) loss on pairs drawn inside each task (the original's LambdaRank is an
  NDCG-weighted pairwise loss; the unweighted pairwise form is used here), Adam
  (lr 7e-4 as the original, weight decay 1e-6, gradient clipped at 0.5 in global norm).
  Inputs are standardised with the mean / deviation of the data it was pre-trained on
  (fixed afterwards, as the original's max-normalisation).
* ``MoACostModel``: what ``PrunerTuner`` calls as its learned model.  The pre-trained
  weights are loaded twice — the predictor and a frozen *siamese* copy.  Every
  ``period`` (4) model updates a new net is initialised from the siamese weights, trained
  on all target data collected so far, becomes the predictor, and the siamese weights move
  by momentum ``θ_s ← m·θ_s + (1 − m)·θ_new`` with ``m`` = 0.99.  Between those updates the
  predictor is unchanged.  ``scratch=True`` is the baseline: a net from a fresh random
  initialisation trained on the target data at every update (Pruner's online mode).
* ``MoATuner``: ``PrunerTuner`` verifying with an ``MoACostModel``.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..space.indexing import digits_of
from .pruner import PrunerTuner


class MLPRankModel:
    """A small MLP scorer (module docstring).  ``params`` is a list of arrays
    ``[W1, b1, W2, b2, W3, b3]``."""

    def __init__(self, n_in: int, hidden: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n_in, self.hidden = n_in, hidden
        self.params = [rng.normal(0, np.sqrt(2.0 / n_in), (n_in, hidden)), np.zeros(hidden),
                       rng.normal(0, np.sqrt(2.0 / hidden), (hidden, hidden)), np.zeros(hidden),
                       rng.normal(0, np.sqrt(1.0 / hidden), (hidden, 1)), np.zeros(1)]
        self.mean = np.zeros(n_in)
        self.std = np.ones(n_in)
        self.rng = rng

    def clone(self) -> MLPRankModel:
        return copy.deepcopy(self)

    def set_normalisation(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        self.std = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)

    def _forward(self, x):
        W1, b1, W2, b2, W3, b3 = self.params
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        h1 = np.maximum(z @ W1 + b1, 0)
        h2 = np.maximum(h1 @ W2 + b2, 0)
        return z, h1, h2, (h2 @ W3 + b3)[:, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[3]

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, *,
            epochs: int = 50, pairs_per_epoch: int | None = None, lr: float = 7e-4,
            weight_decay: float = 1e-6, clip: float = 0.5, batch_pairs: int = 512) -> None:
        """Pairwise logistic loss over pairs (i, j) of one group with ``y_i > y_j``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        groups = np.zeros(len(y), dtype=np.int64) if groups is None else np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        members = [m for m in members if m.size > 1 and np.ptp(y[m]) > 0]
        if not members:
            return
        n_pairs = pairs_per_epoch or min(8 * len(y), 20000)
        sizes = np.asarray([m.size for m in members], dtype=float)
        m_state = [np.zeros_like(p) for p in self.params]
        v_state = [np.zeros_like(p) for p in self.params]
        step = 0
        rng = self.rng
        for _ in range(epochs):
            g_of = rng.choice(len(members), size=n_pairs, p=sizes / sizes.sum())
            a = np.empty(n_pairs, dtype=np.int64)
            b = np.empty(n_pairs, dtype=np.int64)
            for gi in np.unique(g_of):
                sel = np.flatnonzero(g_of == gi)
                m = members[gi]
                a[sel] = m[rng.integers(m.size, size=sel.size)]
                b[sel] = m[rng.integers(m.size, size=sel.size)]
            keep = y[a] != y[b]
            a, b = a[keep], b[keep]
            hi = np.where(y[a] > y[b], a, b)
            lo = np.where(y[a] > y[b], b, a)
            for s in range(0, hi.size, batch_pairs):
                ph, pl = hi[s:s + batch_pairs], lo[s:s + batch_pairs]
                idx, inv = np.unique(np.concatenate([ph, pl]), return_inverse=True)
                z, h1, h2, out = self._forward(x[idx])
                sh, sl = out[inv[:ph.size]], out[inv[ph.size:]]
                sig = 1.0 / (1.0 + np.exp(np.clip(sh - sl, -30, 30)))  # d/d(sh-sl) of -log σ
                dout = np.zeros(idx.size)
                np.add.at(dout, inv[:ph.size], -sig / ph.size)
                np.add.at(dout, inv[ph.size:], sig / ph.size)
                _, _, W2, _, W3, _ = self.params
                gW3 = h2.T @ dout[:, None]
                gb3 = np.array([dout.sum()])
                d2 = (dout[:, None] @ W3.T) * (h2 > 0)
                gW2, gb2 = h1.T @ d2, d2.sum(axis=0)
                d1 = (d2 @ W2.T) * (h1 > 0)
                gW1, gb1 = z.T @ d1, d1.sum(axis=0)
                grads = [gW1, gb1, gW2, gb2, gW3, gb3]
                norm = np.sqrt(sum(float((g * g).sum()) for g in grads))
                if norm > clip:
                    grads = [g * (clip / norm) for g in grads]
                step += 1
                for k, (p, g) in enumerate(zip(self.params, grads)):
                    g = g + weight_decay * p
                    m_state[k] = 0.9 * m_state[k] + 0.1 * g
                    v_state[k] = 0.999 * v_state[k] + 0.001 * g * g
                    mh = m_state[k] / (1 - 0.9 ** step)
                    vh = v_state[k] / (1 - 0.999 ** step)
                    p -= lr * mh / (np.sqrt(vh) + 1e-8)


def momentum_update(siamese: Sequence[np.ndarray], new: Sequence[np.ndarray],
                    m: float) -> list[np.ndarray]:
    """``θ_s ← m·θ_s + (1 − m)·θ_new``, parameter by parameter."""
    if len(siamese) != len(new):
        raise ConfigurationError("params", "the two models have different shapes")
    return [m * s + (1.0 - m) * n for s, n in zip(siamese, new)]


class MoACostModel:
    """The learned model of ``MoATuner`` (module docstring): ``fit(indices, ys, plan_size)``
    and ``predict_digits(digits)`` as ``XGBoostCostModel``."""

    loss_type = "rank"

    def __init__(self, source: MLPRankModel | None, feature_fn, dims, *, momentum: float = 0.99,
                 period: int = 4, epochs: int = 50, scratch: bool = False, seed: int = 0,
                 n_in: int | None = None):
        if source is None and not scratch:
            raise ConfigurationError("source", "MoA needs a pre-trained source model")
        if not 0.0 <= momentum <= 1.0:
            raise ConfigurationError("momentum", f"must be in [0, 1], got {momentum!r}")
        if not isinstance(period, int) or period < 1:
            raise ConfigurationError("period", f"must be a positive integer, got {period!r}")
        self.feature_fn = feature_fn
        self.dims = list(dims)
        self.momentum, self.period, self.epochs = momentum, period, epochs
        self.scratch = scratch
        self.seed = seed
        self.source = source
        self.siamese = source.clone() if source is not None else None
        self.predictor = source.clone() if source is not None else None
        self.n_in = n_in
        self.updates = 0          # model updates (fit calls)
        self.adaptations = 0      # re-initialisations from the siamese weights
        self.fit_seconds = 0.0
        self.rounds = 0

    def features(self, indices) -> np.ndarray:
        return self.feature_fn(digits_of(np.asarray(indices, dtype=np.int64), self.dims))

    def fit(self, indices, ys, plan_size: int) -> None:
        y = np.asarray(ys, dtype=np.float64)
        self.fit_features(self.features(indices), y / max(float(y.max()), 1e-12))

    def fit_features(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> None:
        """One model update on all target data ``x`` (features), ``y`` (higher = better,
        compared only inside a group of ``groups``): the MoA step of the module docstring.
        MetaSchedule's ``MoAMLPCostModel`` (backends/tvm/mlp_model.py) calls it directly."""
        tic = time.perf_counter()
        self.updates += 1
        x = np.asarray(x, dtype=np.float64)
        if self.scratch:
            net = MLPRankModel(x.shape[1], seed=self.seed + self.updates)
            if self.source is not None:
                net.mean, net.std = self.source.mean, self.source.std
            else:
                net.set_normalisation(x)
            net.fit(x, y, groups, epochs=self.epochs)
            self.predictor = net
        elif self.updates % self.period == 0:
            net = self.siamese.clone()
            net.rng = np.random.default_rng([self.seed, self.updates])
            net.fit(x, y, groups, epochs=self.epochs)
            self.predictor = net
            self.siamese.params = momentum_update(self.siamese.params, net.params, self.momentum)
            self.adaptations += 1
        self.fit_seconds = time.perf_counter() - tic

    def predict_digits(self, digits: np.ndarray) -> np.ndarray:
        if self.predictor is None:
            raise ConfigurationError("model", "predict before fit")
        return self.predictor.predict(self.feature_fn(digits))

    def predict(self, indices) -> np.ndarray:
        return self.predict_digits(digits_of(np.asarray(indices, dtype=np.int64), self.dims))


class MoATuner(PrunerTuner):
    """``PrunerTuner`` whose verifier is an ``MoACostModel`` (``source`` pre-trained on
    another platform's records; ``scratch=True``: the from-scratch baseline)."""

    name = "moa-pruner"

    def __init__(self, space, *, source: MLPRankModel | None = None, momentum: float = 0.99,
                 period: int = 4, epochs: int = 50, scratch: bool = False, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.cost_model = MoACostModel(source, self.cost_model.feature_fn, space.dims,
                                       momentum=momentum, period=period, epochs=epochs,
                                       scratch=scratch, seed=int(self._spawn_rng().integers(2**31)))
