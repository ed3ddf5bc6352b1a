"""The One-Shot Tuner for VTA spaces (Ryu, Park, Sung, CC 2022; methods.md §D; issue 15 item 4).

A performance predictor trained *before* compilation replaces the search: at tuning time the
frozen predictor scores the whole space of the task, the top-k configurations are measured
once, in predicted order, and the best is kept.  Nothing learns from those measurements.

Pieces (in the order the pipeline uses them):

``oneshot_features(workload, hw, space, indices)``
    Task-aware input rows: the VTA loop-nest (``"itervar"``) features of each configuration
    (``autotune.features``; conv-family and dense columns laid out by name in one union
    layout, absent columns 0) + a template one-hot + the task-shape inputs of ``TASK_FEATURES``
    (batch, H, W, CI, CO, kernel, stride, pad, groups, output size, operations, epilogue, and
    the hardware's BATCH / BLOCK_IN / BLOCK_OUT and buffer depths), all ``log2(1 + x)``.
``sample_task(cost, rng, ...)``
    Exploration-biased code sampling (§D.2 "EBS" stand-in): from one task's exhaustive table,
    the fastest configurations are always taken and the rest with a probability that falls
    with their rank, plus a small uniform sample of invalid ones (label 0).
``balanced_weights(labels, bins)``
    Label-frequency-balanced sample weights (§D.3): ``1 / (count of the label's histogram
    bin)``, scaled so the weights sum to the number of samples.
``OneShotPredictor``
    XGBoost regression (squared error, the original's MSE) of the per-task normalised
    throughput (``throughput / task max``, 0 = invalid), trained with those weights; ``save`` /
    ``load`` a single JSON file; ``fingerprint()`` hashes the model bytes (frozen-ness check).
``kendall_tau(a, b)``
    Kendall's τ-b (ties in either ranking handled), for held-out evaluation.
``OneShotTuner`` (registry name ``"oneshot"``)
    Scores the whole space once (or only the configurations ``valid`` accepts, the rest
    last) with the frozen predictor and hands the configurations out in predicted order: the
    driver's ``--trials k`` make that one batch of top-k.  ``update`` records outcomes (the
    base class's history) but never touches the predictor.

``default_predictor()`` is the predictor trained from the shipped data
(``docs/data/oneshot_vta.npz``, written by ``scripts/oneshot_data.py``), trained on first use
and cached under ``$VTATUNE_CACHE`` (default ``~/.cache/vtatune``); ``$VTATUNE_ONESHOT_MODEL``
names another predictor file.  The shipped data hold every exhaustive table of the repository
(ResNet-18 and DeepBench layers on 1x16, three layers on 4x8), so the default predictor has
*seen* those layers: held-out figures come from ``scripts/bench_oneshot_vta.py``
(leave-one-layer-out), not from tuning those layers with the default predictor.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigurationError
from ..space.indexing import digits_of
from ..tuning.base import InitFn, MeasureOutcome, Tuner
from ..tuning.boosted import BoostedRegressor
from ..tuning.ranking import balanced_weights, kendall_tau  # noqa: F401 - re-exported
from ..workloads.workload import DENSE, Workload
from .features import CONV_FEATURES, DENSE_FEATURES, itervar_features_batch

log = logging.getLogger(__name__)

FORMAT = "vtatune-oneshot-predictor-1"
DATA_FORMAT = "vtatune-oneshot-data-1"
#: itervar columns of every template, conv-family order first, then dense-only ones
ITERVAR_UNION: tuple[str, ...] = CONV_FEATURES + tuple(n for n in DENSE_FEATURES
                                                       if n not in CONV_FEATURES)
TEMPLATE_FLAGS: tuple[str, ...] = ("is_conv2d", "is_group_conv2d", "is_conv2d_transpose",
                                   "is_dense")
TASK_FEATURES: tuple[str, ...] = (
    "task_batch", "task_height", "task_width", "task_in_channels", "task_out_channels",
    "task_kernel_h", "task_kernel_w", "task_stride_h", "task_stride_w", "task_pad_h",
    "task_pad_w", "task_groups", "task_out_height", "task_out_width", "task_ops",
    "task_bias", "task_relu",
    "hw_batch", "hw_block_in", "hw_block_out", "hw_inp_depth", "hw_wgt_depth", "hw_acc_depth",
    "hw_uop_depth",
)
FEATURE_NAMES: tuple[str, ...] = ITERVAR_UNION + TEMPLATE_FLAGS + TASK_FEATURES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / "docs" / "data" / "oneshot_vta.npz"
MODEL_ENV = "VTATUNE_ONESHOT_MODEL"


# ----------------------------------------------------------------------------- features
def _template_flags(wl: Workload) -> list[float]:
    t = wl.template
    if t == DENSE:
        return [0, 0, 0, 1]
    if "transpose" in t:
        return [0, 0, 1, 0]
    if "group" in t:
        return [0, 1, 0, 0]
    return [1, 0, 0, 0]


def task_features(workload: Workload, hw) -> np.ndarray:
    """The task-shape inputs (``TASK_FEATURES``) of ``workload`` on ``hw``, ``log2(1 + x)``."""
    wl = workload.bind(hw)
    g = lambda name, default=0: getattr(wl, name, default)
    oh, ow, ops = wl.out_height, wl.out_width, float(wl.flops)  # dense: 1 x 1 "image"
    raw = [g("batch", 1), g("height", 1), g("width", 1), g("in_channels"), g("out_channels"),
           g("kernel_h", 1), g("kernel_w", 1), g("stride_h", 1), g("stride_w", 1),
           g("pad_h", 0), g("pad_w", 0), g("groups", 1), oh, ow, ops,
           float(bool(g("has_bias", False))), float("relu" in str(g("epilogue", ""))),
           hw.batch, hw.block_in, hw.block_out, hw.inp_buff_depth, hw.wgt_buff_depth,
           hw.acc_buff_depth, hw.uop_buff_depth]
    return np.log2(1.0 + np.asarray(raw, dtype=np.float64)).astype(np.float32)


def oneshot_features(workload: Workload, hw, space, indices) -> np.ndarray:
    """Task-aware input rows (``FEATURE_NAMES`` columns) of configurations ``indices`` of
    ``space`` (the space of ``workload`` on ``hw``)."""
    wl = workload.bind(hw)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    digits = digits_of(idx, space.dims)
    knobs = {n: np.asarray(space[n].candidates, dtype=np.float64)[digits[:, j]]
             for j, n in enumerate(space.names)}
    iv = itervar_features_batch(wl, hw, knobs)
    names = DENSE_FEATURES if wl.template == DENSE else CONV_FEATURES
    out = np.zeros((idx.size, len(FEATURE_NAMES)), dtype=np.float32)
    cols = [ITERVAR_UNION.index(n) for n in names]
    out[:, cols] = iv
    k = len(ITERVAR_UNION)
    out[:, k:k + len(TEMPLATE_FLAGS)] = np.asarray(_template_flags(wl), dtype=np.float32)
    out[:, k + len(TEMPLATE_FLAGS):] = task_features(wl, hw)
    return out


# ----------------------------------------------------------------------------- data
def sample_task(cost: np.ndarray, rng: np.random.Generator, *, share: float = 0.6,
                minimum: int = 32, top: float = 0.1, temperature: float = 0.15,
                invalid_share: float = 0.25) -> np.ndarray:
    """Indices sampled from one task's exhaustive table (``cost``: seconds, ``inf`` where the
    configuration is invalid), biased to the fast ones (§D.2's exploration-biased sampling):

    * ``m = min(n_valid, max(minimum, round(share * n_valid)))`` valid configurations;
    * the fastest ``ceil(top * n_valid)`` always, the rest drawn without replacement with
      weight ``exp(-rank_fraction / temperature)`` (rank 0 = fastest);
    * plus ``min(n_invalid, round(invalid_share * m))`` invalid ones, uniformly.

    Returns sorted indices."""
    cost = np.asarray(cost, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(cost))
    invalid = np.flatnonzero(~np.isfinite(cost))
    n = valid.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    m = min(n, max(minimum, round(share * n)))
    order = valid[np.argsort(cost[valid], kind="stable")]
    n_top = min(m, int(np.ceil(top * n)))
    chosen = list(order[:n_top])
    rest = order[n_top:]
    if m > n_top and rest.size:
        frac = (np.arange(n_top, n) / max(n - 1, 1))
        w = np.exp(-frac / temperature)
        # weighted sampling without replacement (Gumbel top-k)
        keys = np.log(w) + rng.gumbel(size=w.size)
        chosen += list(rest[np.argsort(-keys)[:m - n_top]])
    k_inv = min(invalid.size, round(invalid_share * m))
    if k_inv:
        chosen += list(rng.choice(invalid, k_inv, replace=False))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def normalised_throughput(cost: np.ndarray) -> np.ndarray:
    """Per-task label: ``min(cost) / cost`` = throughput / the task's best (1 = best), 0 where
    the cost is not finite (invalid)."""
    cost = np.asarray(cost, dtype=np.float64)
    ok = np.isfinite(cost) & (cost > 0)
    out = np.zeros(cost.shape)
    if ok.any():
        out[ok] = cost[ok].min() / cost[ok]
    return out


@dataclass
class OneShotData:
    """Offline training data: rows ``x`` (``FEATURE_NAMES``), labels ``y``, and per row the
    task number ``task`` (into ``tasks``: dicts with name, hw, layer, spec) and config index."""

    x: np.ndarray
    y: np.ndarray
    task: np.ndarray
    index: np.ndarray
    tasks: list[dict]
    meta: dict

    def save(self, path) -> None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, x=self.x.astype(np.float32), y=self.y.astype(np.float32),
                            task=self.task.astype(np.int16), index=self.index.astype(np.int32),
                            info=np.array(json.dumps({"format": DATA_FORMAT,
                                                      "feature_names": list(FEATURE_NAMES),
                                                      "tasks": self.tasks, "meta": self.meta})))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> OneShotData:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigurationError("data", f"{path}: no such one-shot data file "
                                             "(python scripts/oneshot_data.py writes it)")
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            if info.get("format") != DATA_FORMAT or info.get("feature_names") != list(FEATURE_NAMES):
                raise ConfigurationError("data", f"{path}: written for another feature layout; "
                                                 "regenerate it (scripts/oneshot_data.py)")
            return cls(z["x"].astype(np.float32), z["y"].astype(np.float64), z["task"].astype(np.int64),
                       z["index"].astype(np.int64), info["tasks"], info.get("meta", {}))

    def subset(self, keep_tasks: Sequence[int]) -> OneShotData:
        m = np.isin(self.task, np.asarray(list(keep_tasks), dtype=np.int64))
        return OneShotData(self.x[m], self.y[m], self.task[m], self.index[m], self.tasks, self.meta)

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.x, self.y.astype(np.float32), self.task, self.index):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def build_data(entries, rng: np.random.Generator, **sampling) -> OneShotData:
    """Training data from exhaustive tables.  ``entries``: iterables of ``(info, task, cost)``
    — ``info`` a dict describing the task (name, hw, layer id...), ``task`` a ``VtaTask``,
    ``cost`` its table (seconds per configuration, ``inf`` = invalid)."""
    xs, ys, ts, ids, tasks = [], [], [], [], []
    for t, (info, task, cost) in enumerate(entries):
        cost = np.asarray(cost, dtype=np.float64)
        if cost.shape != (task.space.size,):
            raise ConfigurationError("cost", f"{info.get('name')}: {cost.shape} costs for a space "
                                             f"of {task.space.size}")
        idx = sample_task(cost, rng, **sampling)
        lab = normalised_throughput(cost)[idx]
        xs.append(oneshot_features(task.workload, task.hw, task.space, idx))
        ys.append(lab)
        ts.append(np.full(idx.size, t))
        ids.append(idx)
        tasks.append(dict(info, space=int(task.space.size),
                          valid=int(np.isfinite(cost).sum()), rows=int(idx.size)))
    return OneShotData(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts),
                       np.concatenate(ids), tasks, {"sampling": sampling})


# ----------------------------------------------------------------------------- training
class OneShotPredictor(BoostedRegressor):
    """A frozen-at-tuning-time model of per-task normalised throughput (``BoostedRegressor``:
    XGBoost, squared error, label-frequency balanced weights, single-threaded and seeded, so
    a fit is reproducible) on ``FEATURE_NAMES`` rows."""

    FORMAT = FORMAT
    FIELD = "predictor"
    INSTALL = "pip install 'vtatune[tune]'"

    def layout(self) -> dict:
        return {"feature_names": list(FEATURE_NAMES)}

    def fit(self, data: OneShotData | np.ndarray, y=None, weights=None) -> OneShotPredictor:
        """Fit on ``OneShotData`` (or ``x, y``); ``weights`` default to the balanced ones."""
        if isinstance(data, OneShotData):
            x, y, tasks = data.x, data.y, sorted({data.tasks[t]["name"] + "@" + data.tasks[t]["hw"]
                                                  for t in np.unique(data.task)})
        else:
            x, tasks = np.asarray(data, dtype=np.float32), []
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES) or y.shape != (x.shape[0],):
            raise ConfigurationError("data", f"expected (m, {len(FEATURE_NAMES)}) rows and m "
                                             f"labels, got {x.shape} and {y.shape}")
        self._train(x, y, weights, feature_names=list(FEATURE_NAMES),
                    info={"rows": int(y.size), "tasks": tasks, "rounds": self.rounds,
                          "bins": self.bins, "balanced": self.balanced})
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.bst is not None and (x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES)):
            raise ConfigurationError("x", f"expected (m, {len(FEATURE_NAMES)}) rows, got {x.shape}")
        return self._predict(x)

    def predict_task(self, workload, hw, space, indices=None) -> np.ndarray:
        """Predicted normalised throughput of ``indices`` (default: the whole space)."""
        idx = np.arange(space.size) if indices is None else np.asarray(indices, dtype=np.int64)
        return self.predict(oneshot_features(workload, hw, space, idx))


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VTATUNE_CACHE") or
                        pathlib.Path.home() / ".cache" / "vtatune")


def default_predictor(data_path=None) -> OneShotPredictor:
    """``$VTATUNE_ONESHOT_MODEL`` if set; else the predictor trained from the shipped data
    (``docs/data/oneshot_vta.npz``), trained on first use and cached by the data's digest."""
    env = os.environ.get(MODEL_ENV)
    if env and data_path is None:
        return OneShotPredictor.load(env)
    data = OneShotData.load(data_path or DEFAULT_DATA)
    path = _cache_dir() / f"oneshot-{data.digest()}.json"
    if path.is_file():
        try:
            return OneShotPredictor.load(path)
        except ConfigurationError:
            pass
    log.info("training the one-shot predictor from %s (%d rows); cached as %s",
             data_path or DEFAULT_DATA, data.y.size, path)
    p = OneShotPredictor().fit(data)
    try:
        p.save(path)
    except OSError as exc:  # a read-only home still tunes
        log.warning("could not cache the one-shot predictor: %s", exc)
    return p


def resolve_predictor(predictor) -> OneShotPredictor:
    if predictor is None:
        return default_predictor()
    if isinstance(predictor, OneShotPredictor):
        return predictor
    if isinstance(predictor, (str, os.PathLike)):
        return OneShotPredictor.load(predictor)
    raise ConfigurationError("predictor", f"expected a OneShotPredictor or a file, got "
                                          f"{type(predictor).__name__}")


# ----------------------------------------------------------------------------- tuner
class OneShotTuner(Tuner):
    """One batch of top-k from a frozen predictor (§D.4); registry name ``"oneshot"``.

    Parameters
    ----------
    space, seed, init
        As for every ``Tuner`` (an ``init`` hook, if given, chooses the first batch as usual).
    task
        The ``VtaTask`` of ``space`` (or pass ``workload`` and ``hw``): the predictor needs
        the task-shape inputs.
    predictor
        A ``OneShotPredictor``, a predictor file, or ``None`` (``default_predictor()``).
    valid
        Optional ``indices -> P(valid)`` (e.g. ``ExactScreen(task).p_valid``): configurations
        with P(valid) < 0.5 go after every accepted one in the order.
    eps_random
        Share of the top-k replaced by random unvisited configurations (the original keeps a
        few random picks at the end of its list); default 0.

    The order is computed once, by the first ``next_batch``, over the whole space; the
    driver's trial budget ``k`` makes it one batch of the top-k.  ``update`` only records
    outcomes: the predictor is never refitted (``fingerprint()`` is unchanged)."""

    name = "oneshot"

    def __init__(self, space, *, seed: int | None = None, init: InitFn | None = None,
                 task=None, workload: Workload | None = None, hw=None, predictor=None,
                 valid=None, eps_random: float = 0.0, n_trial: int | None = None):
        super().__init__(space, seed=seed, init=init)
        if task is not None:
            workload, hw = task.workload, task.hw
        if workload is None or hw is None:
            raise ConfigurationError("task", "the oneshot tuner needs the task (task= or "
                                             "workload= and hw=) for its task-shape inputs")
        if not 0.0 <= eps_random <= 1.0:
            raise ConfigurationError("eps_random", f"must be in [0, 1], got {eps_random!r}")
        self.workload, self.hw = workload, hw
        self.predictor = resolve_predictor(predictor)
        self.valid = valid
        self.eps_random = float(eps_random)
        self.n_trial = n_trial
        self.order: np.ndarray | None = None
        self.scores: np.ndarray | None = None
        self.predict_seconds = 0.0
        self._pt = 0

    def rank(self) -> np.ndarray:
        """The whole space in predicted order (best first; computed once)."""
        if self.order is None:
            tic = time.perf_counter()
            idx = np.arange(self.space.size, dtype=np.int64)
            s = np.empty(idx.size, dtype=np.float64)
            step = 1 << 16
            for lo in range(0, idx.size, step):
                s[lo:lo + step] = self.predictor.predict_task(self.workload, self.hw, self.space,
                                                              idx[lo:lo + step])
            self.scores = s
            key = -s
            if self.valid is not None:
                ok = np.asarray(self.valid(idx), dtype=np.float64) >= 0.5
                key = np.where(ok, key, np.inf)   # rejected ones last, still ranked by score
                second = np.where(ok, 0.0, -s)
                self.order = np.lexsort((second, key))
            else:
                self.order = np.argsort(key, kind="stable")
            self.predict_seconds = time.perf_counter() - tic
        return self.order

    def _propose(self, n: int) -> None:
        order = self.rank()
        n_random = int(self.eps_random * self.n_trial) if self.n_trial else 0
        taken = 0
        while taken < n and self._pt < order.size:
            if n_random and len(self.proposed) >= (self.n_trial or 0) - n_random:
                break  # the last slots of the batch are random picks
            if self._take(int(order[self._pt]), "model"):
                taken += 1
            self._pt += 1
        # any shortfall is filled with random unvisited indices by the base class

    def _update(self, outcomes: list[MeasureOutcome]) -> None:
        """No model updates (one-shot): outcomes are only recorded by the base class."""
