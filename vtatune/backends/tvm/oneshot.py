"""The One-Shot Tuner on MetaSchedule (Ryu, Park, Sung, CC 2022; methods.md §D, §G.4).

A predictor trained *before* compilation replaces the search loop: at tuning time a
model-only evolutionary search ranks the task's design space with the frozen predictor, the
top-k candidates are measured once (one batch), and the best is kept.  Nothing learns from
those measurements.  The VTA variant is ``vtatune.autotune.oneshot``; this one works on any
MetaSchedule task (llvm here).

* **Inputs** (``candidate_rows``): per candidate, the verifier features of ``mlp_model``
  (MetaSchedule's per-store features pooled by mean and max, plus the draft model's three
  symbols: 331 numbers), then ``TASK_FEATURES`` of the *unscheduled* task (24 numbers: the
  first four buffers' shapes right-aligned, FLOPs, the heaviest store's spatial and reduction
  extents, ...), all ``log2(1 + x)`` where they are counts.  The task part is what lets one
  predictor serve tasks of different shapes (the original appends 8 shape parameters).
* **Data** (``OneShotMSData``, ``build_data``): stored MetaSchedule records of the shared
  database, replayed and featurised (``mlp_model.records_features``); label = normalised
  throughput inside the (workload, platform) group (best / latency, failures 0).  The records
  come from MetaSchedule's XGB-guided evolutionary search, which is the original's
  "exploration-biased" collection (an XGB tuner's trials).
* **Predictor** (``OneShotMSPredictor``): XGBoost squared-error regression (the original's
  MSE) with label-frequency-balanced weights (``tuning.ranking.balanced_weights``, 100 bins).
* **Compile time** (``OneShotCostModel`` + ``search_strategy``): MetaSchedule's own
  ``EvolutionarySearch`` with the frozen predictor as its cost model and ε-greedy 0, run for
  exactly one round of k; ``OneShotCostModel.update`` does nothing (``updates`` counts the
  calls it ignored), so the predictor's ``fingerprint()`` is the same before and after.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from ...tuning.boosted import BoostedRegressor
from ...tuning.ranking import balanced_weights, kendall_tau  # noqa: F401 - re-exported
from .env import require_tvm, target_cores
from .pruner import HostParams, analyze, draft_params, host_params

tvm = require_tvm()
import tvm_ffi  # noqa: E402
from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402

log = logging.getLogger(__name__)

FORMAT = "vtatune-oneshot-ms-predictor-1"
DATA_FORMAT = "vtatune-oneshot-ms-data-1"
#: candidate part of a row: mlp_model.candidate_features (pooled per-store + draft symbols)
N_CANDIDATE = 331
#: task-shape part of a row (``task_features``)
TASK_FEATURES: tuple[str, ...] = tuple(
    [f"buf{b}_dim{d}" for b in range(4) for d in range(4)]
    + ["n_buffers", "n_stores", "flops", "main_spatial", "main_reduce", "main_ops",
       "main_reads", "out_elems"])
N_FEATURES = N_CANDIDATE + len(TASK_FEATURES)
ROOT = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_DATA = ROOT / "docs" / "data" / "oneshot_ms.npz"
MODEL_ENV = "VTATUNE_ONESHOT_MS_MODEL"


# ----------------------------------------------------------------------------- features
def _prim_func(mod: Any) -> Any:
    if isinstance(mod, tvm.IRModule):
        funcs = [f for _, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)]
        if not funcs:
            raise ConfigurationError("mod", "the module has no PrimFunc")
        return funcs[0]
    return mod


def task_features(mod: Any) -> np.ndarray:
    """``TASK_FEATURES`` of an unscheduled task (``log2(1 + x)``): the shapes of its first
    four buffer parameters (dimensions right-aligned into 4 slots, so the innermost dimension
    is always the last column), how many buffers and stores it has, its FLOPs, and for its
    heaviest store (most loop iterations) the product of the spatial and of the reduction
    loop extents, its arithmetic operations and reads, and the output's element count."""
    func = _prim_func(mod)
    dims = np.zeros((4, 4))
    # apache-tvm 0.27: the parameters are the buffers (no buffer_map any more)
    bufs = [p for p in func.params if getattr(p, "shape", None) is not None]
    for b, buf in enumerate(bufs[:4]):
        shape = [int(d) if isinstance(d, (int, tvm.tirx.IntImm)) else 1 for d in buf.shape][-4:]
        dims[b, 4 - len(shape):] = shape
    stores = analyze(func)
    spatial = reduce_ = ops = reads = 0.0
    if stores:
        def size(f):
            return float(np.prod([lp.extent for lp in f.loops])) if f.loops else 1.0
        main = max(stores, key=size)
        red = [lp.extent for lp in main.loops if lp.key in main.reduce]
        reduce_ = float(np.prod(red)) if red else 1.0
        spatial = size(main) / reduce_
        ops, reads = float(main.ops), float(len(main.reads))
    try:
        from tvm.s_tir.analysis import estimate_tir_flops
        flops = float(estimate_tir_flops(tvm.IRModule({"main": func})))
    except Exception:  # noqa: BLE001 - not every build exposes it
        flops = sum(float(np.prod([lp.extent for lp in f.loops] or [1])) * max(f.ops, 1)
                    for f in stores)
    out_elems = float(np.prod([int(d) for d in bufs[-1].shape])) if bufs else 0.0
    raw = np.concatenate([dims.reshape(-1), [len(bufs), len(stores), flops, spatial, reduce_,
                                             ops, reads, out_elems]])
    return np.log2(1.0 + np.maximum(raw, 0.0))


def candidate_rows(context: Any, candidates: list, hp: HostParams,
                   task_row: np.ndarray | None = None, extractor: Any = None) -> np.ndarray:
    """One predictor input row per candidate: ``mlp_model.candidate_features`` then the
    task's ``task_features`` (computed from ``context.mod`` unless given)."""
    from .mlp_model import candidate_features
    if not candidates:
        return np.zeros((0, N_FEATURES))
    x = candidate_features(context, list(candidates), hp, extractor)
    if x.shape[1] != N_CANDIDATE:
        raise ConfigurationError("features", f"{x.shape[1]} candidate features, expected "
                                             f"{N_CANDIDATE} (another apache-tvm version?)")
    t = task_features(context.mod) if task_row is None else task_row
    return np.hstack([x, np.broadcast_to(t, (x.shape[0], t.size))])


# ----------------------------------------------------------------------------- data
@dataclass
class OneShotMSData:
    """Offline data: rows ``x`` (``N_FEATURES``), labels ``y`` (normalised throughput inside
    the task), the task number of each row, and per task a dict (name, key digest, structural
    hash, hw, rows, best_us)."""

    x: np.ndarray
    y: np.ndarray
    task: np.ndarray
    tasks: list[dict]
    meta: dict

    def save(self, path: str | os.PathLike) -> None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, x=self.x.astype(np.float32), y=self.y.astype(np.float32),
                            task=self.task.astype(np.int32),
                            info=np.array(json.dumps({"format": DATA_FORMAT,
                                                      "n_features": N_FEATURES,
                                                      "task_features": list(TASK_FEATURES),
                                                      "tasks": self.tasks, "meta": self.meta})))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> OneShotMSData:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigurationError("data", f"{path}: no such one-shot data file "
                                             "(python scripts/oneshot_ms_data.py writes it)")
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                x, y, task = z["x"], z["y"], z["task"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError("data", f"{path}: not a one-shot data file ({exc})") from None
        if info.get("format") != DATA_FORMAT or info.get("n_features") != N_FEATURES \
                or info.get("task_features") != list(TASK_FEATURES):
            raise ConfigurationError("data", f"{path}: written for another feature layout; "
                                             "regenerate it (scripts/oneshot_ms_data.py)")
        return cls(x.astype(np.float32), y.astype(np.float64), task.astype(np.int64),
                   info["tasks"], info.get("meta", {}))

    def subset(self, keep_tasks: Iterable[int]) -> OneShotMSData:
        m = np.isin(self.task, np.asarray(list(keep_tasks), dtype=np.int64))
        return OneShotMSData(self.x[m], self.y[m], self.task[m], self.tasks, self.meta)

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.x.astype(np.float32), self.y.astype(np.float32), self.task):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def build_data(records: Iterable[Any], target: Any, *, hp: HostParams | None = None,
               source: str = "", progress=None) -> OneShotMSData:
    """Offline data from stored MetaSchedule records (``vtatune.db`` records): one task per
    (workload, hw) group; rows from ``mlp_model.records_features`` (timeouts and traces that
    no longer replay are left out) plus the task's ``task_features``."""
    from tvm.s_tir.meta_schedule.database import Workload

    from .mlp_model import records_features
    from .store import BACKEND
    groups: dict[tuple[str, str], list] = {}
    for r in records:
        if r.backend == BACKEND:
            groups.setdefault((r.workload_key, r.hw), []).append(r)
    hp = hp or host_params(target_cores(target))
    xs, ys, ts, tasks = [], [], [], []
    for i, ((key, hw), recs) in enumerate(sorted(groups.items(), key=lambda kv: kv[0])):
        x, y, _ = records_features(recs, target, hp=hp)
        if progress:
            progress(i + 1, len(groups))
        if not len(y):
            continue
        mod = Workload.from_json(json.loads(key)).mod
        t = len(tasks)
        xs.append(np.hstack([x, np.broadcast_to(task_features(mod), (len(y), len(TASK_FEATURES)))]))
        ys.append(y)
        ts.append(np.full(len(y), t))
        ok = [r.mean_cost for r in recs if r.ok]
        tasks.append({"name": recs[0].workload_name, "key": hashlib.sha256(key.encode()).hexdigest()[:16],
                      "shash": str(int(tvm_ffi.structural_hash(mod))),
                      "hw": hw, "rows": int(len(y)), "best_us": min(ok) * 1e6 if ok else None})
    if not xs:
        raise ConfigurationError("records", "no MetaSchedule records to build one-shot data from")
    return OneShotMSData(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts), tasks,
                         {"host": hp.__dict__ if hasattr(hp, "__dict__") else {},
                          "tvm": str(getattr(tvm, "__version__", "?")), "source": source})


# ----------------------------------------------------------------------------- predictor
class OneShotMSPredictor(BoostedRegressor):
    """Frozen-at-tuning-time model of per-task normalised throughput (``BoostedRegressor``:
    XGBoost, squared error, balanced weights; single-threaded and seeded) on ``N_FEATURES``
    rows; column subsample 0.5 (331 + 24 columns, many of them correlated)."""

    FORMAT = FORMAT
    FIELD = "oneshot_model"
    INSTALL = "pip install 'vtatune[tvm]'"

    def __init__(self, *, colsample: float = 0.5, **kw: Any):
        super().__init__(colsample=colsample, **kw)

    def layout(self) -> dict:
        return {"n_features": N_FEATURES, "task_features": list(TASK_FEATURES)}

    def fit(self, data: OneShotMSData) -> OneShotMSPredictor:
        if data.x.ndim != 2 or data.x.shape[1] != N_FEATURES or not len(data.y):
            raise ConfigurationError("data", f"expected (m, {N_FEATURES}) rows, got {data.x.shape}")
        self._train(data.x, data.y, info={
            "rows": int(data.y.size),
            "tasks": sorted({data.tasks[t]["name"] for t in np.unique(data.task)})})
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.bst is not None and (x.ndim != 2 or x.shape[1] != N_FEATURES):
            raise ConfigurationError("x", f"expected (m, {N_FEATURES}) rows, got {x.shape}")
        return self._predict(x)


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VTATUNE_CACHE") or pathlib.Path.home() / ".cache" / "vtatune")


def default_predictor(data_path: str | os.PathLike | None = None) -> OneShotMSPredictor:
    """The predictor trained on the shipped data (``docs/data/oneshot_ms.npz``), trained on
    first use (seconds) and cached by the data's digest."""
    data = OneShotMSData.load(data_path or DEFAULT_DATA)
    cache = _cache_dir() / f"oneshot-ms-{data.digest()}.json"
    if cache.is_file():
        try:
            return OneShotMSPredictor.load(cache)
        except ConfigurationError:
            log.warning("ignoring an unreadable cached predictor %s", cache)
    pred = OneShotMSPredictor().fit(data)
    try:
        pred.save(cache)
    except OSError as exc:  # a read-only home must not stop tuning
        log.warning("could not cache the one-shot predictor: %s", exc)
    return pred


def resolve_predictor(predictor: Any = None) -> OneShotMSPredictor:
    """A predictor object, a saved predictor's path, ``$VTATUNE_ONESHOT_MS_MODEL`` or the
    default one, in that order."""
    if isinstance(predictor, OneShotMSPredictor):
        return predictor
    path = predictor or os.environ.get(MODEL_ENV)
    if path:
        if not pathlib.Path(path).is_file():
            raise ConfigurationError("oneshot_model", f"{path}: no such predictor file")
        return OneShotMSPredictor.load(path)
    return default_predictor()


# ----------------------------------------------------------------------------- compile time
@derived_object
class OneShotCostModel(ms.cost_model.PyCostModel):
    """The frozen predictor as MetaSchedule's cost model.  ``update`` learns nothing (it only
    counts the calls in ``updates``); ``calls`` counts the candidates scored."""

    def __init__(self, predictor: OneShotMSPredictor, hp: HostParams | None = None):
        super().__init__()
        self.predictor = predictor
        self.hp = hp
        self.calls = 0
        self.updates = 0
        self.seconds = 0.0
        self._task_rows: dict[int, np.ndarray] = {}
        self._extractor = ms.feature_extractor.PerStoreFeature()

    def load(self, path: str) -> None:
        pass

    def save(self, path: str) -> None:
        pass

    def update(self, context: Any, candidates: list, results: list) -> None:
        self.updates += 1                       # one-shot: the predictor is never updated

    def predict(self, context: Any, candidates: list) -> np.ndarray:
        candidates = list(candidates)
        if not candidates:
            return np.zeros(0)
        tic = time.perf_counter()
        if self.hp is None:     # datasheet GPU parameters on cuda, the host's on llvm
            self.hp = draft_params(context.target, target_cores(context.target))
        key = int(tvm_ffi.structural_hash(context.mod))
        if key not in self._task_rows:
            self._task_rows[key] = task_features(context.mod)
        x = candidate_rows(context, candidates, self.hp, self._task_rows[key], self._extractor)
        # MetaSchedule's GA samples by score: keep them positive, order unchanged
        out = np.logaddexp(0.0, 8.0 * self.predictor.predict(x).astype(np.float64))
        self.calls += len(candidates)
        self.seconds += time.perf_counter() - tic
        return out


#: the model-only search of one-shot tuning: MetaSchedule's defaults (population 512, 4 GA
#: generations) without the ε-greedy random share
SEARCH = {"population": 512, "generations": 4}


def search_strategy(population: int | None = None, generations: int | None = None) -> Any:
    """MetaSchedule's evolutionary search as one-shot tuning runs it (``SEARCH``), ε-greedy 0:
    the batch is the predictor's top-k."""
    return ms.search_strategy.EvolutionarySearch(
        population_size=population or SEARCH["population"],
        genetic_num_iters=generations or SEARCH["generations"], eps_greedy=0.0)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's ρ (average ranks for ties)."""
    from scipy.stats import spearmanr
    r = spearmanr(a, b).statistic
    return float(r)
