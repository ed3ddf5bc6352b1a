"""A small PaCM-like learned verifier for Pruner on MetaSchedule, and MoA on MetaSchedule.

Issue 15; method: ``../shared/methods.md`` §C.4–C.5 and §G.3; docs/pruner.md.

* **Inputs** (``candidate_features``): per candidate, MetaSchedule's per-store features
  (``PerStoreFeature``, 164 per buffer store, Ansor-style, log-scaled) pooled over the stores
  by mean and by max (the "pattern" part; PaCM sums a per-statement encoder instead), plus the
  draft model's symbols of ``pruner.py`` (log of the draft latency, of the summed compute time
  and of the summed memory time over the stores).  331 numbers.
* **Scorer**: ``vtatune.tuning.moa.MLPRankModel`` (two hidden ReLU layers of 64, pairwise
  RankNet loss inside each task, Adam lr 7e-4, 50 epochs) — the VTA MoA model, not a copy.
* ``MLPCostModel`` (a MetaSchedule ``PyCostModel``): ``update`` keeps, per task (the tune
  context's module), the features and the measured latency of every candidate, and refits a
  fresh net on all of them (PaCM's online mode); the label is the normalised throughput
  ``best latency / latency`` inside the task, 0 for a failed candidate.  ``predict`` returns
  ``softplus(net output)`` (higher = faster, positive as MetaSchedule's evolutionary search
  wants); random scores until the first fit, as MetaSchedule's XGB during its warm-up.
* ``MoAMLPCostModel``: a frozen source net pre-trained on another platform's records
  (``pretrain_source``) adapted on the target by ``tuning.moa.MoACostModel.fit_features``:
  every ``period`` (4) updates a net initialised from the siamese weights is trained on all
  target data, becomes the predictor, and the siamese weights move by momentum 0.99;
  ``scratch=True`` is the baseline (a fresh net at every update).
* ``save`` / ``load`` / ``save_rank_model`` / ``load_rank_model``: numpy ``.npz`` files (no
  pickle): the net's weights and input normalisation, plus the training data for a cost model.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from ...tuning.moa import MLPRankModel, MoACostModel
from .env import load_intrinsics_for, require_tvm, target_cores
from .pruner import HostParams, analyze, host_params, store_latency
from .store import _is_failure

tvm = require_tvm()
import tvm_ffi
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

log = logging.getLogger(__name__)

#: file format tag of ``save_rank_model``
FORMAT = "vtatune-mlp-rank-1"
#: draft-model inputs appended to the pooled per-store features
N_DRAFT = 3
#: latency bounds (s) of the draft inputs; an unanalysable candidate gets the upper one
_LAT_MIN, _LAT_MAX = 1e-9, 1e3
_CACHE_MAX = 50000


# ----------------------------------------------------------------------------- features
def draft_symbols(mod: Any, hp: HostParams) -> np.ndarray:
    """``[log draft latency, log Σ compute, log Σ memory]`` (seconds) of a scheduled module."""
    try:
        lat = comp = mem = 0.0
        stores = analyze(mod)
        for f in stores:
            c, m = store_latency(f, hp)
            comp += c
            mem += m
            lat += max(c, m)
        if not stores:
            lat = comp = mem = _LAT_MAX
    except Exception as exc:  # noqa: BLE001 - an unanalysable candidate: worst values
        log.debug("draft model failed: %s", exc)
        lat = comp = mem = _LAT_MAX
    return np.log(np.clip([lat, comp, mem], _LAT_MIN, _LAT_MAX))


def pool_stores(per_store: np.ndarray) -> np.ndarray:
    """Mean and max over the stores (rows) of one candidate's per-store features."""
    per_store = np.asarray(per_store, dtype=np.float64)
    if per_store.ndim != 2 or per_store.shape[0] == 0:
        n = per_store.shape[-1] if per_store.ndim == 2 else 0
        return np.zeros(2 * n)
    return np.concatenate([per_store.mean(axis=0), per_store.max(axis=0)])


def candidate_features(context: Any, candidates: list, hp: HostParams,
                       extractor: Any = None) -> np.ndarray:
    """One row per candidate: pooled per-store features, then ``draft_symbols``."""
    if not candidates:
        return np.zeros((0, 0))
    extractor = extractor or ms.feature_extractor.PerStoreFeature()
    per_store = [f.numpy() for f in extractor.extract_from(context, candidates)]
    width = max((p.shape[1] for p in per_store if p.ndim == 2), default=0)
    rows = []
    for p, c in zip(per_store, candidates):
        pooled = pool_stores(p) if p.ndim == 2 and p.shape[0] else np.zeros(2 * width)
        rows.append(np.concatenate([pooled, draft_symbols(c.sch.mod, hp)]))
    return np.asarray(rows, dtype=np.float64)


def _latency(run_secs: Iterable[Any] | None) -> float:
    """Mean run time of a measurement, ``inf`` for a failure (MetaSchedule's 1e10 too)."""
    secs = [float(s) for s in (run_secs or [])]
    return math.inf if _is_failure(secs) else sum(secs) / len(secs)


def throughput_labels(latencies: Iterable[float]) -> np.ndarray:
    """``best / latency`` inside one task; 0 for a failure (infinite latency)."""
    lat = np.asarray(list(latencies), dtype=np.float64)
    ok = np.isfinite(lat) & (lat > 0)
    out = np.zeros(lat.shape)
    if ok.any():
        out[ok] = lat[ok].min() / lat[ok]
    return out


# ----------------------------------------------------------------------------- files
def save_rank_model(net: MLPRankModel, path: str | os.PathLike, **extra: np.ndarray) -> None:
    """Write ``net`` (weights, input normalisation, sizes) and ``extra`` arrays to ``path``
    (exactly that name) as an uncompressed ``.npz``."""
    arrays = {f"p{i}": np.asarray(p) for i, p in enumerate(net.params)}
    arrays.update(format=np.array(FORMAT), n_in=np.array(net.n_in), hidden=np.array(net.hidden),
                  mean=np.asarray(net.mean), std=np.asarray(net.std))
    arrays.update({f"x_{k}": np.asarray(v) for k, v in extra.items()})
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _read(path: str | os.PathLike) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ConfigurationError("model file", f"{os.fspath(path)}: not a saved MLP model "
                                               f"({exc})") from None
    if str(data.get("format", "")) != FORMAT:
        raise ConfigurationError("model file", f"{os.fspath(path)}: not a saved MLP model "
                                               f"(format {FORMAT} expected)")
    return data


def _net_of(data: dict) -> MLPRankModel:
    net = MLPRankModel(int(data["n_in"]), hidden=int(data["hidden"]))
    net.params = [np.array(data[f"p{i}"], dtype=np.float64) for i in range(6)]
    net.mean = np.array(data["mean"], dtype=np.float64)
    net.std = np.array(data["std"], dtype=np.float64)
    return net


def load_rank_model(path: str | os.PathLike) -> MLPRankModel:
    """The net saved by ``save_rank_model`` (or by a cost model's ``save``)."""
    return _net_of(_read(path))


# ----------------------------------------------------------------------------- cost models
@derived_object
class MLPCostModel(ms.cost_model.PyCostModel):
    """The MLP verifier (module docstring).  ``updates`` counts ``update`` calls,
    ``fit_seconds`` the time spent refitting."""

    def __init__(self, *, hp: HostParams | None = None, hidden: int = 64, epochs: int = 50,
                 seed: int = 0):
        super().__init__()
        self.hp = hp
        self.hidden, self.epochs, self.seed = int(hidden), int(epochs), int(seed)
        self.model: MLPRankModel | None = None
        self.tasks: list[str] = []                 # task keys, in order of first update
        self.data: dict[str, tuple[list, list]] = {}   # task key -> (feature rows, latencies)
        self.updates = 0
        self.fit_seconds = 0.0
        self.rng = np.random.default_rng(seed)
        self._cache: dict[int, np.ndarray] = {}
        self._hps: dict[int, HostParams] = {}
        self._extractor = ms.feature_extractor.PerStoreFeature()

    # -- features
    def _hp(self, context: Any) -> HostParams:
        if self.hp is not None:
            return self.hp
        try:
            cores = target_cores(context.target)
        except Exception:  # noqa: BLE001
            cores = 1
        if cores not in self._hps:
            self._hps[cores] = host_params(cores)
        return self._hps[cores]

    def features(self, context: Any, candidates: list) -> np.ndarray:
        """``candidate_features`` with a cache by the schedule's structural hash."""
        keys = [int(tvm_ffi.structural_hash(c.sch.mod)) for c in candidates]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            if len(self._cache) > _CACHE_MAX:
                self._cache.clear()
            rows = candidate_features(context, [candidates[i] for i in todo], self._hp(context),
                                      self._extractor)
            for i, row in zip(todo, rows):
                self._cache[keys[i]] = row
        return np.asarray([self._cache[k] for k in keys], dtype=np.float64)

    @staticmethod
    def task_key(context: Any) -> str:
        return str(tvm_ffi.structural_hash(context.mod))

    # -- training data
    def add(self, task: str, x: np.ndarray, latencies: Iterable[float]) -> None:
        """Append measured candidates (feature rows, latencies in s, ``inf`` = failed)."""
        if task not in self.data:
            self.tasks.append(task)
            self.data[task] = ([], [])
        rows, lats = self.data[task]
        rows.extend(np.asarray(x, dtype=np.float64))
        lats.extend(float(v) for v in latencies)

    def training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, group) over all tasks: y = ``throughput_labels`` inside each task."""
        xs, ys, gs = [], [], []
        for g, task in enumerate(self.tasks):
            rows, lats = self.data[task]
            if rows:
                xs.append(np.asarray(rows))
                ys.append(throughput_labels(lats))
                gs.append(np.full(len(rows), g))
        if not xs:
            return np.zeros((0, 0)), np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)

    def _refit(self) -> None:
        x, y, g = self.training_set()
        usable = any(np.ptp(y[g == k]) > 0 for k in np.unique(g)) if len(y) else False
        if not usable:
            return
        net = MLPRankModel(x.shape[1], hidden=self.hidden, seed=self.seed + self.updates)
        net.set_normalisation(x)
        net.fit(x, y, g, epochs=self.epochs)
        self.model = net

    # -- MetaSchedule's interface
    def update(self, context: Any, candidates: list, results: list) -> None:
        tic = time.perf_counter()
        x = self.features(context, list(candidates))
        self.add(self.task_key(context), x, [_latency(r.run_secs) for r in results])
        self.updates += 1
        self._refit()
        self.fit_seconds += time.perf_counter() - tic

    def predict(self, context: Any, candidates: list) -> np.ndarray:
        candidates = list(candidates)
        if not candidates:
            return np.zeros(0)
        if self.model is None:
            return self.rng.random(len(candidates))
        x = self.features(context, candidates)
        if x.shape[1] != self.model.n_in:
            raise ConfigurationError("model", f"the model takes {self.model.n_in} inputs, the "
                                              f"candidates have {x.shape[1]} features")
        return np.logaddexp(0.0, self.model.predict(x))

    def save(self, path: str) -> None:
        """The predictor and the training data, as ``.npz`` (``load_rank_model`` reads the
        predictor back, e.g. as an MoA source)."""
        if self.model is None:
            raise ConfigurationError("model", "nothing to save: the model was never fitted")
        x, _, g = self.training_set()
        lats = np.concatenate([np.asarray(self.data[t][1], dtype=np.float64)
                               for t in self.tasks]) if self.tasks else np.zeros(0)
        save_rank_model(self.model, path, rows=x, latencies=lats, groups=g,
                        tasks=np.array(self.tasks, dtype=str), updates=np.array(self.updates))

    def load(self, path: str) -> None:
        data = _read(path)
        self.model = _net_of(data)
        self.tasks, self.data = [], {}
        if "x_rows" in data and data["x_rows"].size:
            tasks = [str(t) for t in data["x_tasks"]]
            for gi, task in enumerate(tasks):
                sel = data["x_groups"] == gi
                self.add(task, data["x_rows"][sel], data["x_latencies"][sel])
        self.updates = int(data["x_updates"]) if "x_updates" in data else 0


@derived_object
class MoAMLPCostModel(MLPCostModel._cls):
    """MoA on MetaSchedule (module docstring): ``source`` is a pre-trained ``MLPRankModel``
    or the path of a saved one; ``scratch=True`` trains a fresh net at every update instead
    (with the source's input normalisation when a source is given).  ``moa`` is the
    ``tuning.moa.MoACostModel`` that holds the siamese and predictor nets."""

    def __init__(self, source: MLPRankModel | str | os.PathLike | None, *,
                 momentum: float = 0.99, period: int = 4, epochs: int = 50,
                 scratch: bool = False, seed: int = 0, hp: HostParams | None = None):
        if isinstance(source, (str, os.PathLike)):
            source = load_rank_model(source)
        super().__init__(hp=hp, hidden=source.hidden if source is not None else 64,
                         epochs=epochs, seed=seed)
        self.moa = MoACostModel(source, None, (), momentum=momentum, period=period,
                                epochs=epochs, scratch=scratch, seed=seed)
        self.model = self.moa.predictor

    def _refit(self) -> None:
        x, y, g = self.training_set()
        if not len(y):
            return
        if self.moa.source is not None and x.shape[1] != self.moa.source.n_in:
            raise ConfigurationError("source", f"the source model takes {self.moa.source.n_in}"
                                               f" inputs, the candidates have {x.shape[1]}")
        self.moa.fit_features(x, y, g)
        self.model = self.moa.predictor


# ----------------------------------------------------------------------------- pre-training
def records_features(records: Iterable[Any], target: Any = None, *,
                     hp: HostParams | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, group) of stored MetaSchedule records (``vtatune.db`` records of backend
    ``metaschedule``): each record's trace is replayed on its workload (postprocessing
    included, as ``compile_tir`` does) and featurised as a candidate; y = normalised
    throughput inside its (workload, hw) group, failures 0; timeouts (a busy machine, nothing
    about the schedule) and traces that no longer replay are left out."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord
    from tvm.s_tir.meta_schedule.database import Workload

    from .store import BACKEND, NOT_COUNTED, to_ms_json
    groups: dict[tuple[str, str], list] = {}
    for r in records:
        if r.backend == BACKEND and int(r.error_no) not in NOT_COUNTED:
            groups.setdefault((r.workload_key, r.hw), []).append(r)
    xs, ys, gs = [], [], []
    skipped = 0
    for gi, ((key, _hw), recs) in enumerate(groups.items()):
        wl = Workload.from_json(json.loads(key))
        tgt = target
        if tgt is None:
            tgt = tvm.target.Target(json.loads(recs[0].target))
        load_intrinsics_for(tgt)    # else the first TuneContext imports all of them (~1 min)
        ctx = ms.TuneContext(mod=wl.mod, target=tgt, task_name=recs[0].workload_name or "task")
        cands, lats = [], []
        for r in recs:
            try:
                rec = MSRecord.from_json(to_ms_json(r), wl)
                sch = tvm.s_tir.Schedule(wl.mod)
                rec.trace.apply_to_schedule(sch, remove_postproc=False)
                args = rec.args_info or ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
                cands.append(ms.MeasureCandidate(sch, args))
                lats.append(r.mean_cost if r.ok else math.inf)
            except Exception as exc:  # noqa: BLE001 - a stale trace must not stop training
                skipped += 1
                log.debug("record of %s does not replay: %s", r.workload_name, exc)
        if not cands:
            continue
        cores = target_cores(tgt) if str(tgt.kind.name) == "llvm" else 1
        xs.append(candidate_features(ctx, cands, hp or host_params(cores)))
        ys.append(throughput_labels(lats))
        gs.append(np.full(len(cands), gi))
    if skipped:
        log.warning("%d records did not replay on their workload and were left out", skipped)
    if not xs:
        return np.zeros((0, 0)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def pretrain_source(records_or_db: Any, target: Any = None, *, hw: str | None = None,
                    hp: HostParams | None = None, hidden: int = 64, epochs: int = 50,
                    seed: int = 0) -> MLPRankModel:
    """A source net for MoA trained on one platform's stored MetaSchedule records.

    ``records_or_db``: a vtatune ``Database`` (its records of label ``hw`` are read) or an
    iterable of its records.  Records of several ``hw`` labels are refused unless ``hw``
    chooses one (a source model is one platform's).  ``target`` is the target the features
    are computed for (default: each workload's first record's)."""
    if hasattr(records_or_db, "records"):
        recs = list(records_or_db.records(hw=hw))
    else:
        recs = [r for r in records_or_db if hw is None or r.hw == hw]
    from .store import BACKEND
    recs = [r for r in recs if r.backend == BACKEND]
    labels = sorted({r.hw for r in recs})
    if len(labels) > 1:
        raise ConfigurationError("hw", f"records of {len(labels)} platforms "
                                       f"({', '.join(labels)}): choose one")
    x, y, g = records_features(recs, target, hp=hp)
    if not len(y) or not any(np.ptp(y[g == k]) > 0 for k in np.unique(g)):
        raise ConfigurationError("records", "no workload with two differently fast "
                                            "measurements to learn from")
    net = MLPRankModel(x.shape[1], hidden=hidden, seed=seed)
    net.set_normalisation(x)
    net.fit(x, y, g, epochs=epochs)
    return net
