#!/usr/bin/env python3
"""Validity-driven tuning against exhaustive tsim tables (issue 11 item 5; methods.md §G.1 E4).

    python scripts/bench_validity.py [--workloads resnet18,deepbench.1,...] [--seeds 30]
        [--budget 1000] [--train resnet18,deepbench] [--variants xgb-reg,...] [--jobs 2]
        [--json FILE] [-o REPORT.md]
    python scripts/bench_validity.py --build-table resnet18.C9 --hw pynq_4x8_i8w8a32_15_16_16_18 \
        -o docs/data/pynq_4x8_tsim.jsonl          # measure one more oracle table

Every run goes through ``vtatune.autotune.search.search`` — the loop ``vtatune tune`` uses —
with an ``OracleMeasure`` that answers from an exhaustive table (every compile-valid
configuration timed on tsim; invalid ones get their compile verdict's error category), so a
run takes seconds.  Per workload, variant and seed it records the number of measurements
until a globally best configuration (the table's minimum) is first measured; a run that
never measures one within the budget counts as ``budget + 1``.  A run stops as soon as it
measures the optimum (nothing after that changes the figures).

Variants (all XGB, plan 64, AutoTVM v0.14 settings otherwise; ``VARIANTS``):

* ``xgb-reg``      baseline: random first plan, invalid configurations measured and labelled 0,
                   loss ``reg`` (v0.14's default), itervar features without the SRAM / micro-op
                   occupancy columns (AutoTVM's loop-nest features have none)
* ``xgb-rank``     the same with loss ``rank`` (the earlier AutoTVM default)
* ``xgb-reg-fulliv``  sensitivity: the full itervar set (its occupancy columns leak validity)
* ``learned-init`` validity-driven first plan from the learned classifier, nothing else changed
                   (the paper's "initialisation swap")
* ``learned``      learned screening + validity init + P(valid)-weighted acquisition
* ``exact``        exact (compile-only) screening + validity init + exact-weighted acquisition
* ``probe``        probe-then-classify (16 random probes, online classifier, seeded plan)
* ``learned-knob`` as ``learned`` with a classifier on knob features (the paper's feature set)
* ``learned-p16``, ``exact-p16``  as ``learned`` / ``exact`` with XGB plan size 16: the first
                   cost model is fitted after 16 (valid) measurements instead of 64
* ``xgb-reg-p16``  control: the baseline with plan size 16
* ``learned-draft``, ``exact-draft``  as ``learned`` / ``exact``, but the first plan is the
                   analytic draft model's fastest predicted-valid configurations
                   (``vtatune.autotune.draft.DraftInit``) instead of a spread over the valid
                   clusters: validity plus a performance prior that is not fitted to any table
* ``exact-draft-perturbed``  sensitivity: ``exact-draft`` with the draft's timing parameters each
                   scaled by a random factor in [1/2, 2] per run (the draft shares tsim's
                   parameters, so ``exact-draft`` on tsim tables is the best case for it)

The classifier used on a workload never saw that workload's labels: it is trained on the
compile-only verdicts of every ``--train`` workload except those with the same layer
(shape without the batch, and epilogue) — leave-one-workload-out, asserted in
``training_split`` and on the fitted model.  Its probabilities over the whole space are
computed once per workload and cached (``--cache``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib
import platform
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from vtatune.autotune.draft import DraftInit, draft_model
from vtatune.autotune.features import itervar_feature_fn, itervar_feature_names
from vtatune.autotune.search import search
from vtatune.errors import ConfigurationError
from vtatune.hardware.config import HwConfig
from vtatune.task import VtaTask
from vtatune.tuning import MeasureOutcome, create_tuner
from vtatune.tuning.features import knob_feature_fn
from vtatune.validity import ValidityModel, sweep_labels, sweep_set
from vtatune.validity.init import ProbeThenClassify, ValidityInit
from vtatune.validity.labels import hw_key, sweep_key
from vtatune.validity.model import metrics
from vtatune.validity.screen import ExactScreen, LearnedScreen
from vtatune.workloads.suites import list_suites, resolve_workload, suite
from vtatune.workloads.workload import Workload, WorkloadError

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_HW = "pynq_1x16_i8w8a32_15_15_18_17"
CROSS_HW = "pynq_4x8_i8w8a32_15_16_16_18"
DEFAULT_TABLES = ("docs/data/resnet18_tsim.jsonl", "docs/data/deepbench_tsim.jsonl",
                  "docs/data/pynq_4x8_tsim.jsonl")
DEFAULT_WORKLOADS = tuple(f"resnet18.C{i}" for i in range(2, 12)) + tuple(
    f"deepbench.{i}" for i in (1, 2, 3, 12, 14, 19, 20, 21, 23, 28, 46))
DEFAULT_CROSS = ("resnet18.C7", "resnet18.C9", "resnet18.C11")
#: itervar columns that are SRAM / micro-op buffer occupancies (> 1 = the compiler rejects
#: the configuration): not in AutoTVM's loop-nest features, so not in the baseline's
LEAK_COLUMNS = ("inp_sram_frac", "wgt_sram_frac", "acc_sram_frac", "uop_frac")
PLAN_SIZE = 64
WITHIN = (100, 200)   # robustness: share of runs that measure the optimum within these budgets


@dataclass(frozen=True)
class Variant:
    name: str
    role: str                      # baseline | sensitivity | method
    loss: str = "reg"
    features: str = "itervar-noocc"
    screen: str = "none"           # none | learned | exact
    init: str = "random"           # random | learned | exact | probe | draft-learned | draft-exact
    acquisition: bool = False      # weight the SA acquisition by P(valid) of the screen
    classifier: str = "main"       # feature set of the learned classifier: main (--features) | knob
    plan: int = PLAN_SIZE          # XGB plan_size (refit interval and plan length)
    probe_features: str = "knob"
    perturb: float = 1.0           # draft inits: timing parameters scaled by up to this factor
    note: str = ""


VARIANTS = {v.name: v for v in (
    Variant("xgb-reg", "baseline", note="AutoTVM v0.14 XGBTuner (loss reg), itervar w/o occupancy"),
    Variant("xgb-rank", "baseline", loss="rank", note="same, loss rank (earlier AutoTVM default)"),
    Variant("xgb-reg-fulliv", "sensitivity", features="itervar",
            note="baseline with the full itervar set (occupancy columns leak validity)"),
    Variant("learned-init", "method", init="learned", note="validity init (learned), no screen"),
    Variant("learned", "method", screen="learned", init="learned", acquisition=True,
            note="learned screen + validity init + P(valid)-weighted acquisition"),
    Variant("exact", "method", screen="exact", init="exact", acquisition=True,
            note="exact screen + validity init + verdict-weighted acquisition"),
    Variant("probe", "method", init="probe", note="probe 16, online rf (knob), seeded plan"),
    Variant("learned-knob", "method", screen="learned", init="learned", acquisition=True,
            classifier="knob", note="as learned, classifier on knob features (the paper's)"),
    Variant("learned-p16", "method", screen="learned", init="learned", acquisition=True, plan=16,
            note="as learned, XGB plan 16 (first fit after 16 valid measurements)"),
    Variant("exact-p16", "method", screen="exact", init="exact", acquisition=True, plan=16,
            note="as exact, XGB plan 16"),
    Variant("xgb-reg-p16", "sensitivity", plan=16,
            note="control: the baseline with plan 16 (is the gain the plan size alone?)"),
    Variant("learned-draft", "method", screen="learned", init="draft-learned", acquisition=True,
            note="as learned, first plan = the analytic draft model's fastest predicted-valid"),
    Variant("exact-draft", "method", screen="exact", init="draft-exact", acquisition=True,
            note="as exact, first plan = the analytic draft model's fastest compile-valid"),
    Variant("exact-draft-perturbed", "sensitivity", screen="exact", init="draft-exact",
            acquisition=True, perturb=2.0,
            note="as exact-draft, every timing parameter of the draft scaled by its own "
                 "log-uniform factor in [1/2, 2] per run (a draft that does not match tsim)"),
)}
BASELINE = "xgb-reg"


class BenchError(ConfigurationError):
    """A benchmark input that cannot be used (names its field)."""


# ----------------------------------------------------------------------------- tables
def layer_id(wl: Workload) -> str:
    """A layer independent of the hardware it is bound to: the shape without the batch,
    and the epilogue.  Two workloads with equal ids share their labels' meaning, so the
    leave-one-workload-out split excludes all of them."""
    return json.dumps([wl.shape[0], *wl.shape[2:], wl.epilogue])


def load_tables(paths) -> dict[tuple[str, str], dict[int, dict]]:
    """(hardware name, workload name) -> index -> table row, from exhaustive tsim tables
    (``scripts/exhaustive_tsim.py``; rows without ``hw`` are on the default hardware)."""
    out: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for p in paths:
        p = pathlib.Path(p)
        if not p.is_absolute():
            p = ROOT / p
        if not p.is_file():
            continue
        with open(p) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    out[(r.get("hw", DEFAULT_HW), r["workload"])][int(r["index"])] = r
                except (ValueError, KeyError) as exc:
                    raise BenchError("tables", f"{p}:{n}: not a table row ({exc})") from None
    return dict(out)


@dataclass
class Oracle:
    """One workload's exhaustive table on one hardware configuration."""

    name: str
    task: VtaTask
    cost: np.ndarray          # seconds; inf where invalid
    category: np.ndarray      # AutoTVM MeasureErrorNo; 0 = ran
    verdict: np.ndarray       # compile-only verdict (bool)
    optima: np.ndarray        # indices with the table's minimum cost
    table: str                # which table (hw, name) it came from
    p_learned: dict = field(default_factory=dict)     # classifier features -> P(valid)
    classifier: dict = field(default_factory=dict)    # classifier features -> description

    @property
    def best_cost(self) -> float:
        return float(self.cost[self.optima[0]])

    @property
    def n_valid(self) -> int:
        return int((self.category == 0).sum())


def make_oracle(ref: str, hw: HwConfig, tables, cache_dir=None, sync: str = "tvm-0.14") -> Oracle:
    """The oracle of workload ``ref`` (suite name or spec) on ``hw``: its table is found by
    layer (a spec string finds the table of a suite layer of the same shape); a workload
    without a complete table is refused."""
    try:
        wl, _ = resolve_workload(ref, hw)
    except (WorkloadError, KeyError, ValueError) as exc:
        raise BenchError("workloads", f"{ref!r}: {exc}") from None
    key = None
    for (thw, tname) in tables:
        if thw != hw.name:
            continue
        try:
            twl, _ = resolve_workload(tname, hw)
        except (WorkloadError, KeyError, ValueError):
            continue
        if twl.shape == wl.shape and twl.epilogue == wl.epilogue:
            key = (thw, tname)
            break
    if key is None:
        raise BenchError("workloads", f"{ref!r} ({wl.spec}) on {hw.name} has no exhaustive tsim "
                                      "table; measure one first: python scripts/bench_validity.py "
                                      f"--build-table {ref} --hw {hw.name} -o FILE.jsonl")
    rows = tables[key]
    task = VtaTask(wl, hw, sync)
    sw = sweep_labels(task.workload, hw, cache_dir)
    size = task.space.size
    want = set(np.flatnonzero(sw.valid).tolist())
    have = set(rows)
    if want != have:
        raise BenchError("tables", f"the table of {key[1]} on {hw.name} is incomplete or stale: "
                                   f"{len(want - have)} compile-valid configurations missing, "
                                   f"{len(have - want)} rows the compiler rejects")
    cost = np.full(size, np.inf)
    cat = sw.category.astype(np.int64).copy()
    for i, r in rows.items():
        cat[i] = int(r["error_no"])
        if cat[i] == 0:
            cost[i] = float(r["cost_s"])
    if not np.isfinite(cost).any():
        raise BenchError("tables", f"the table of {key[1]} holds no valid configuration")
    best = cost.min()
    optima = np.flatnonzero(cost <= best * (1 + 1e-12))
    return Oracle(ref, task, cost, cat, sw.valid.copy(), optima, f"{key[0]}:{key[1]}")


class OracleMeasure:
    """``measure(indices) -> [MeasureOutcome]`` from an exhaustive table; keeps a log."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle
        self.flops = float(oracle.task.flops)
        self.log: list[MeasureOutcome] = []

    def __call__(self, indices) -> list[MeasureOutcome]:
        o = self.oracle
        outs = []
        for i in indices:
            i = int(i)
            if o.category[i] == 0:
                outs.append(MeasureOutcome(i, (float(o.cost[i]),), 0, self.flops))
            else:
                outs.append(MeasureOutcome(i, (), int(o.category[i]), self.flops))
        self.log += outs
        return outs


# ----------------------------------------------------------------------------- classifier
def training_candidates(refs, hw: HwConfig) -> list[Workload]:
    """Every offloadable workload named by ``refs`` (suites, names, specs), bound to ``hw``."""
    out, seen = [], set()
    for ref in refs:
        ws = suite(ref) if ref in list_suites() else [ref]
        for w in ws:
            if isinstance(w, Workload) and not w.offloadable:
                continue
            try:
                b, _ = resolve_workload(w, hw)
            except (WorkloadError, KeyError, ValueError) as exc:
                if isinstance(w, Workload):
                    continue  # a suite layer this hardware cannot offload
                raise BenchError("train", f"{ref!r}: {exc}") from None
            k = (b.shape, b.epilogue)
            if k not in seen:
                seen.add(k)
                out.append(b)
    return out


def training_split(target: Workload, candidates: list[Workload]) -> list[Workload]:
    """The classifier's training workloads for ``target``: every candidate of another layer
    (leave-one-workload-out; the same layer under another name or batch is left out too)."""
    tid = layer_id(target)
    train = [w for w in candidates if layer_id(w) != tid]
    assert all(layer_id(w) != tid for w in train), "held-out labels in the training set"
    return train


def _subsample(n: int, k: int, seed: int) -> np.ndarray | None:
    if k <= 0 or n <= k:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def learned_probabilities(target: Workload, target_hw: HwConfig, candidates: list[Workload],
                          train_hw: HwConfig, *, kind: str, features: str, n_estimators: int,
                          per_workload: int, seed: int, cache_dir) -> tuple[np.ndarray, dict]:
    """P(valid) over ``target``'s whole space from a classifier that never saw its labels,
    and a description of that classifier (training workloads, held-out metrics)."""
    train = training_split(target, candidates)
    key_text = json.dumps([layer_id(target), hw_key(target_hw), target_hw.name,
                           sorted(sweep_key(w, train_hw) for w in train), sweep_key(target, target_hw),
                           kind, features, n_estimators, per_workload, seed, 3], default=str)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    path = pathlib.Path(cache_dir) / f"p-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            return z["p"], info
    t0 = time.perf_counter()
    sets = []
    for j, w in enumerate(train):
        n = sweep_labels(w, train_hw, cache_dir).valid.size
        sets.append(sweep_set(w, train_hw, indices=_subsample(n, per_workload, seed + j),
                              cache_dir=cache_dir))
    m = ValidityModel(kind, features, seed=seed, n_estimators=n_estimators).fit(sets)
    assert not m.seen(target), "the classifier saw the held-out workload"
    assert all(t["id"] != json.dumps([list(target.shape), target.epilogue]) for t in m.trained_on)
    other = hw_key(train_hw) != hw_key(target_hw)
    p = m.predict_proba(target, target_hw, None, allow_other_hw=other)
    truth = sweep_labels(target, target_hw, cache_dir)
    idx, lab = truth.labels()
    info = {"kind": kind, "features": features, "n_estimators": n_estimators,
            "calibration": m.method, "trained_hw": train_hw.name, "cross_hw": other,
            "trained_on": [w.name or w.spec for w in train],
            "trained_layers": [layer_id(w) for w in train],
            "rows": int(sum(s.indices.size for s in sets)), "seconds": time.perf_counter() - t0,
            "held_out": {k: v for k, v in metrics(lab, p[idx]).items()}}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, p=p, info=np.array(json.dumps(info)))
        os.replace(tmp, path)
    return p, info


# ----------------------------------------------------------------------------- one run
class _PlanSized:
    """Hands an init strategy the tuner's plan size as ``n`` (the search loop asks for
    ``batch``, which is the builder's parallelism here, smaller than the plan)."""

    def __init__(self, inner, plan_size: int):
        self.inner, self.plan_size = inner, plan_size

    def probe(self, space, rng):
        return self.inner.probe(space, rng)

    def first_batch(self, space, n, rng, probed):
        return self.inner.first_batch(space, max(n, self.plan_size), rng, probed)


class _Reached(Exception):
    pass


_FEATURES: dict = {}
_DRAFTS: dict = {}


def perturbed_draft(oracle: Oracle, spread: float, rng: np.random.Generator):
    """A draft model whose timing parameters are each scaled by a factor drawn log-uniformly
    in [1/spread, spread] (integers rounded, kept ≥ 1 where they were): how much of the draft
    init's gain survives a timing model that does not match the oracle's (tsim's)."""
    from dataclasses import fields as dc_fields
    from vtatune.sim.timing import Timing
    t = oracle.task
    d = draft_model(t.space, t.workload, t.hw, t.profile, t.sync)
    params = t.hw.timing
    trial = {}
    for f in dc_fields(params):
        v = getattr(params, f.name)
        x = v * math.exp(rng.uniform(-math.log(spread), math.log(spread)))
        trial[f.name] = max(1 if v >= 1 else 0, round(x)) if isinstance(v, int) else x
    d.timing = Timing(params, t.hw.platform.freq_mhz, t.hw.bus_width // 8, **trial)
    return d


def draft_of(oracle: Oracle):
    """The analytic draft model of a workload (vtatune.autotune.draft), cached per table; its
    verdicts are never asked for here (the init gets P(valid) from the variant's screen)."""
    d = _DRAFTS.get(oracle.table)
    if d is None:
        t = oracle.task
        d = _DRAFTS[oracle.table] = draft_model(t.space, t.workload, t.hw, t.profile, t.sync)
    return d


def feature_fn(oracle: Oracle, kind: str):
    """The XGB features of a variant, cached per workload (a worker runs many seeds)."""
    k = (oracle.table, kind)
    fn = _FEATURES.get(k)
    if fn is None:
        task = oracle.task
        if kind == "knob":
            fn = knob_feature_fn(task.space)
        else:
            full = itervar_feature_fn(task.space, task.workload, task.hw)
            if kind == "itervar":
                fn = full
            elif kind == "itervar-noocc":
                names = itervar_feature_names(task.workload)
                keep = np.asarray([j for j, n in enumerate(names) if n not in LEAK_COLUMNS])
                assert len(keep) == len(names) - sum(n in names for n in LEAK_COLUMNS)

                def fn(d, full=full, keep=keep):
                    return full(d)[:, keep]
            else:
                raise BenchError("features", f"unknown feature set {kind!r}")
        _FEATURES[k] = fn
    return fn


def run_one(oracle: Oracle, variant: Variant, seed: int, budget: int, *, batch: int = 2,
            threshold: float = 0.5, probe_size: int = 16) -> dict:
    """One replayed tuning run; returns its figures."""
    task, space = oracle.task, oracle.task.space
    budget = min(budget, space.size)
    learned = None
    if variant.screen == "learned" or variant.init in ("learned", "draft-learned"):
        p = oracle.p_learned.get(variant.classifier)
        if p is None:
            raise BenchError("variants", f"{variant.name} needs a learned classifier "
                                         f"({variant.classifier}) for {oracle.name}")
        learned = LearnedScreen(None, task, threshold, probabilities=p)
    exact = ExactScreen(task, verdicts=oracle.verdict) \
        if "exact" in (variant.screen, variant.init) or variant.init == "draft-exact" else None
    screen = {"none": None, "learned": learned, "exact": exact}[variant.screen]
    init = None
    if variant.init in ("learned", "exact"):
        src = learned if variant.init == "learned" else exact
        init = _PlanSized(ValidityInit(src.p_valid, threshold), variant.plan)
    elif variant.init in ("draft-learned", "draft-exact"):
        src = learned if variant.init == "draft-learned" else exact
        draft = draft_of(oracle) if variant.perturb == 1.0 else \
            perturbed_draft(oracle, variant.perturb, np.random.default_rng([seed, 11]))
        init = _PlanSized(DraftInit(draft, src.p_valid, threshold), variant.plan)
    elif variant.init == "probe":
        init = _PlanSized(ProbeThenClassify(task, probe_size, features=variant.probe_features,
                                            kind="rf", threshold=threshold), variant.plan)
    opts = {"loss_type": variant.loss, "feature_fn": feature_fn(oracle, variant.features),
            "plan_size": variant.plan}
    if variant.acquisition and screen is not None:
        opts["acquisition_weight"] = screen.acquisition_weight()

    def make_tuner(hook):
        return create_tuner("xgb", space, seed=seed, init=hook, **opts)

    optima = set(oracle.optima.tolist())
    measure = OracleMeasure(oracle)
    screened: list[int] = []

    def on_measured(outs):
        if any(o.index in optima for o in outs):
            raise _Reached

    t0 = time.perf_counter()
    try:
        search(make_tuner, measure, budget, batch=batch, early_stopping=None, screen=screen,
               init=init, space=space, rng=np.random.default_rng([seed, 7]),
               on_measured=on_measured, on_screened=screened.extend)
    except _Reached:
        pass
    log = measure.log
    hit = next((n for n, o in enumerate(log, 1) if o.index in optima), None)
    upto = log[:hit] if hit else log
    best = min((o.mean_cost for o in log if o.valid), default=math.inf)
    return {"workload": oracle.name, "hw": task.hw.name, "variant": variant.name, "seed": seed,
            "budget": budget, "reached": hit is not None,
            "trials_to_best": hit if hit is not None else budget + 1,
            "invalid": sum(not o.valid for o in upto), "measured": len(log),
            "screened": len(screened), "optimum_screened": bool(optima & set(screened)),
            "probed": probe_size if variant.init == "probe" else 0,
            "best_ratio": best / oracle.best_cost if math.isfinite(best) else None,
            "seconds": time.perf_counter() - t0}


def _say(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- workers
_ORACLES: dict = {}


def _init_worker(oracles, threads_env):
    os.environ.update(threads_env)
    _ORACLES.update(oracles)


def _job(args):
    key, vname, seed, budget, batch, threshold, probe = args
    return run_one(_ORACLES[key], VARIANTS[vname], seed, budget, batch=batch,
                   threshold=threshold, probe_size=probe)


def run_all(oracles: dict, variants, seeds, budget, *, jobs=2, batch=2, threshold=0.5,
            probe_size=16, progress=None) -> list[dict]:
    progress = progress or _say
    todo = [(k, v, s, budget, batch, threshold, probe_size)
            for k in oracles for v in variants for s in seeds]
    done: list[dict] = []
    groups = defaultdict(int)
    total = len(todo)
    t0 = time.perf_counter()

    def note(r):
        done.append(r)
        g = (r["hw"], r["workload"], r["variant"])
        groups[g] += 1
        if groups[g] == len(seeds):
            rs = [x["trials_to_best"] for x in done if (x["hw"], x["workload"], x["variant"]) == g]
            progress(f"[{len(done)}/{total} {time.perf_counter() - t0:.0f} s] {g[1]} ({g[0]}) "
                     f"{g[2]}: median trials-to-best {np.median(rs):.0f}")
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if jobs <= 1:
        _ORACLES.update(oracles)
        for a in todo:
            note(_job(a))
    else:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(oracles, env)) as pool:
            for r in pool.imap_unordered(_job, todo, chunksize=1):
                note(r)
    done.sort(key=lambda r: (r["hw"], r["workload"], r["variant"], r["seed"]))
    return done


# ----------------------------------------------------------------------------- summary
def _q(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else math.nan


def summarise(runs: list[dict], baseline: str = BASELINE) -> dict:
    by = defaultdict(list)
    for r in runs:
        by[(r["hw"], r["workload"], r["variant"])].append(r)
    rows = []
    for (hw, wl, v), rs in sorted(by.items()):
        t = [r["trials_to_best"] for r in rs]
        inv = [r["invalid"] for r in rs]
        rows.append({"hw": hw, "workload": wl, "variant": v, "runs": len(rs),
                     "budget": rs[0]["budget"],
                     "median": float(np.median(t)), "q25": _q(t, 25), "q75": _q(t, 75),
                     "mean": float(np.mean(t)), "reached": float(np.mean([r["reached"] for r in rs])),
                     **{f"within_{k}": float(np.mean([x <= k for x in t])) for k in WITHIN},
                     "invalid_median": float(np.median(inv)), "invalid_mean": float(np.mean(inv)),
                     "optimum_screened": float(np.mean([r["optimum_screened"] for r in rs])),
                     "screened_median": float(np.median([r["screened"] for r in rs]))})
    base = {(r["hw"], r["workload"]): r for r in rows if r["variant"] == baseline}
    for r in rows:
        b = base.get((r["hw"], r["workload"]))
        r["ratio_median"] = r["median"] / b["median"] if b else math.nan
        r["ratio_mean"] = r["mean"] / b["mean"] if b else math.nan
        r["invalid_ratio"] = (r["invalid_mean"] / b["invalid_mean"]
                              if b and b["invalid_mean"] else math.nan)
    overall = {}
    for hw in sorted({r["hw"] for r in rows}):
        for v in sorted({r["variant"] for r in rows}):
            sel = [r for r in rows if r["hw"] == hw and r["variant"] == v]
            rat = [r["ratio_median"] for r in sel if math.isfinite(r["ratio_median"])]
            ratm = [r["ratio_mean"] for r in sel if math.isfinite(r["ratio_mean"])]
            rs = [x for x in runs if x["hw"] == hw and x["variant"] == v]
            norm = [x["trials_to_best"] / base[(hw, x["workload"])]["median"]
                    for x in rs if (hw, x["workload"]) in base]
            base_runs = [x for x in runs if x["hw"] == hw and x["variant"] == baseline
                         and x["workload"] in {r["workload"] for r in sel}]
            total = (sum(x["trials_to_best"] for x in rs) / sum(x["trials_to_best"] for x in base_runs)
                     if base_runs and len(base_runs) == len(rs) else math.nan)
            overall[f"{hw}|{v}"] = {
                "hw": hw, "variant": v, "workloads": len(sel), "runs": len(rs),
                "total_ratio": total,
                "ratio_median": float(np.median(rat)) if rat else math.nan,
                "ratio_q25": _q(rat, 25), "ratio_q75": _q(rat, 75),
                "ratio_geomean": float(np.exp(np.mean(np.log(rat)))) if rat else math.nan,
                "ratio_mean_of_means": float(np.median(ratm)) if ratm else math.nan,
                "pooled_run_ratio_median": float(np.median(norm)) if norm else math.nan,
                "invalid_mean": float(np.mean([x["invalid"] for x in rs])),
                "reached": float(np.mean([x["reached"] for x in rs])),
                **{f"within_{k}": float(np.mean([x["trials_to_best"] <= k for x in rs]))
                   for k in WITHIN},
                "optimum_screened": float(np.mean([x["optimum_screened"] for x in rs])),
                "workloads_optimum_screened": sorted({x["workload"] for x in rs if x["optimum_screened"]}),
            }
    return {"per_workload": rows, "overall": overall}


def fmt(x, d=2):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{d}f}"


def markdown(summary: dict, variants, info: dict) -> str:
    """Markdown tables: per workload (compact: the baseline's measurements-to-best and each
    variant's ratio) and overall.  ``info``: key -> {"name", "hw", "space", "valid"}."""
    lines = []
    for hw in sorted({r["hw"] for r in summary["per_workload"]}):
        rows = [r for r in summary["per_workload"] if r["hw"] == hw]
        shown = [v for v in variants if v != BASELINE]
        lines += [f"#### {hw}: per workload", "",
                  (f"`{BASELINE}`: median [q25–q75] of measurements-to-best over seeds and mean "
                   "invalid measurements before the optimum. Other columns: median / median of "
                   f"`{BASELINE}`, then mean invalid measurements; `reach` = share of runs that "
                   "measured the optimum within the budget (shown when < 1), `scr` = share of "
                   "runs whose screen dropped the optimum (shown when > 0)."), "",
                  "| workload | valid / space | " + BASELINE + " | " + " | ".join(shown) + " |",
                  "|" + " --- |" * (len(shown) + 3)]
        for wl in sorted({r["workload"] for r in rows}, key=_natural):
            w = next(x for x in info.values() if x["name"] == wl and x["hw"] == hw)
            b = next(r for r in rows if r["workload"] == wl and r["variant"] == BASELINE)
            cells = [f"{b['median']:.0f} [{b['q25']:.0f}–{b['q75']:.0f}], {b['invalid_mean']:.0f} inv"]
            for v in shown:
                r = next((r for r in rows if r["workload"] == wl and r["variant"] == v), None)
                if r is None:
                    cells.append("")
                    continue
                c = f"{r['ratio_median']:.2f}, {r['invalid_mean']:.0f}"
                if r["reached"] < 1:
                    c += f", reach {r['reached']:.2f}"
                if r["optimum_screened"]:
                    c += f", scr {r['optimum_screened']:.2f}"
                cells.append(c)
            lines.append(f"| {wl} | {w['valid']} / {w['space']} | " + " | ".join(cells) + " |")
        lines += ["", f"#### {hw}: overall", "",
                  ("Ratios to `" + BASELINE + "`: median over workloads of the per-workload "
                   "median ratio [q25–q75 over workloads]; geometric mean of those ratios; "
                   "pooled = median over all runs of (run / its workload's baseline median); "
                   "total = all runs' measurements-to-best summed / the baseline's sum; "
                   f"reach = share of runs measuring the optimum within the budget, within "
                   f"{WITHIN[0]} / {WITHIN[1]} measurements."), "",
                  ("| variant | median ratio [q25–q75] | geomean | pooled | total | "
                   f"invalid / run | reach | ≤ {WITHIN[0]} | ≤ {WITHIN[1]} | optimum screened |"),
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for v in variants:
            o = summary["overall"].get(f"{hw}|{v}")
            if not o:
                continue
            lines.append(f"| {v} | {fmt(o['ratio_median'], 3)} [{fmt(o['ratio_q25'])}–"
                         f"{fmt(o['ratio_q75'])}] | {fmt(o['ratio_geomean'], 3)} | "
                         f"{fmt(o['pooled_run_ratio_median'], 3)} | {fmt(o['total_ratio'], 3)} | "
                         f"{o['invalid_mean']:.1f} | {o['reached']:.3f} | "
                         f"{o[f'within_{WITHIN[0]}']:.3f} | {o[f'within_{WITHIN[1]}']:.3f} | "
                         f"{o['optimum_screened']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _natural(name: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# ----------------------------------------------------------------------------- tables
def build_table(ref: str, hw: HwConfig, out: str, *, sync: str = "tvm-0.14", workers: int = 2) -> None:
    """Time every compile-valid configuration of ``ref`` on ``hw`` on tsim through the
    measurement pool (as ``scripts/exhaustive_tsim.py`` does, with the hardware named in
    each row); appends to ``out`` and resumes."""
    from vtatune.measure import MeasureInput, MeasurePool
    from vtatune.measure.runners import runner_for

    task = VtaTask.create(ref, hw, sync=sync)
    name = task.workload.name or ref
    done = set()
    if os.path.exists(out):
        with open(out) as f:
            done = {(r.get("hw", DEFAULT_HW), r["workload"], r["index"])
                    for r in map(json.loads, filter(str.strip, f))}
    sw = sweep_labels(task.workload, hw)
    todo = [int(i) for i in np.flatnonzero(sw.valid) if (hw.name, name, int(i)) not in done]
    runner = runner_for("tsim")
    t0 = time.perf_counter()
    with MeasurePool(workers, build_timeout=600, run_timeout=600) as pool, open(out, "a") as f:
        for lo in range(0, len(todo), 16):
            part = todo[lo:lo + 16]
            res = pool.measure([MeasureInput(task, task.config(i), runner) for i in part])
            f.writelines(json.dumps({"workload": name, "hw": hw.name, "sync": sync, "index": i,
                                    "error_no": r.error_no,
                                    "cost_s": r.costs[0] if r.error_no == 0 else None,
                                    "gops": r.extra.get("gops"), "reason": r.reason}) + "\n" for i, r in zip(part, res))
            f.flush()
    print(f"{name} on {hw.name}: {len(todo)} valid configurations timed in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------- main
def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _expand(refs: list[str]) -> list[str]:
    out = []
    for r in refs:
        if r in list_suites():
            out += [w.name for w in suite(r) if w.offloadable]
        else:
            out.append(r)
    return out


def prepare(workloads, hw: HwConfig, tables, *, train_refs, train_hw: HwConfig,
            classifiers: dict[str, str], kind="rf", n_estimators=100, per_workload=1000, seed=0,
            cache_dir=None, progress=None) -> dict:
    """Oracles of ``workloads`` with the leave-one-workload-out classifier probabilities of
    each ``classifiers`` entry (name -> feature set)."""
    progress = progress or _say
    oracles = {}
    candidates = training_candidates(train_refs, train_hw) if classifiers else []
    for ref in workloads:
        o = make_oracle(ref, hw, tables, cache_dir)
        for name, feats in classifiers.items():
            p, info = learned_probabilities(o.task.workload, hw, candidates, train_hw, kind=kind,
                                            features=feats, n_estimators=n_estimators,
                                            per_workload=per_workload, seed=seed,
                                            cache_dir=cache_dir)
            assert layer_id(o.task.workload) not in info["trained_layers"]
            o.p_learned[name], o.classifier[name] = p, info
            h = info["held_out"]
            progress(f"{ref} on {hw.name}: {feats} classifier ({len(info['trained_on'])} training "
                     f"workloads, {info['seconds']:.0f} s) precision {h['precision']:.3f} recall "
                     f"{h['recall']:.3f}; optimum P(valid) {p[o.optima].min():.3f}")
        oracles[f"{hw.name}|{ref}"] = o
    return oracles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                    help="workload names, spec strings or suites (comma-separated)")
    ap.add_argument("--train", default="resnet18,deepbench",
                    help="what the classifier may learn from (suites/workloads; the held-out "
                         "workload is always left out)")
    ap.add_argument("--seeds", type=int, default=30, help="seeds per workload and variant (0..N-1)")
    ap.add_argument("--budget", type=int, default=1000, help="measurements per run (capped at the space)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--hw", default=DEFAULT_HW)
    ap.add_argument("--cross-hw", default=CROSS_HW, help="'' to skip the cross-hardware row")
    ap.add_argument("--cross-workloads", default=",".join(DEFAULT_CROSS))
    ap.add_argument("--tables", default=",".join(DEFAULT_TABLES))
    ap.add_argument("--batch", type=int, default=2,
                    help="proposals per round: AutoTVM tune()'s n_parallel = LocalBuilder's "
                         "cpu_count() (2 here)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--probe", type=int, default=16)
    ap.add_argument("--kind", default="rf")
    ap.add_argument("--features", default="derived")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--per-workload", type=int, default=1000,
                    help="training configurations per workload (random subsample; 0 = all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "vtatune-bench-validity"))
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="write the full report as JSON (every run)")
    ap.add_argument("--summary", default=None, metavar="FILE",
                    help="write the report without the runs as JSON")
    ap.add_argument("--report", default=None, metavar="FILE",
                    help="only re-render the Markdown of a saved --json report")
    ap.add_argument("-o", "--output", default=None, help="write the Markdown tables")
    ap.add_argument("--build-table", default=None, metavar="WORKLOAD")
    ap.add_argument("--sync", default="tvm-0.14")
    args = ap.parse_args(argv)

    if args.report:
        print(rerender(args.report, args.output, args.summary))
        return 0
    if args.build_table:
        if not args.output:
            raise BenchError("output", "--build-table needs -o FILE.jsonl")
        build_table(args.build_table, HwConfig.load(args.hw), args.output, sync=args.sync,
                    workers=args.jobs)
        return 0
    variants = _split(args.variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise BenchError("variants", f"unknown {', '.join(bad)}; known: {', '.join(VARIANTS)}")
    if BASELINE not in variants:
        variants.insert(0, BASELINE)
    if args.seeds < 1 or args.budget < 1:
        raise BenchError("seeds" if args.seeds < 1 else "budget", "must be positive")
    t0 = time.perf_counter()
    tables = load_tables(_split(args.tables))
    hw = HwConfig.load(args.hw)
    classifiers = {VARIANTS[v].classifier: (args.features if VARIANTS[v].classifier == "main"
                                            else VARIANTS[v].classifier)
                   for v in variants if "learned" in (VARIANTS[v].screen, VARIANTS[v].init)}
    common = {"train_refs": _split(args.train), "classifiers": classifiers, "kind": args.kind,
              "n_estimators": args.trees, "per_workload": args.per_workload,
              "cache_dir": args.cache}
    oracles = prepare(_expand(_split(args.workloads)), hw, tables, train_hw=hw, **common)
    if args.cross_hw:
        xhw = HwConfig.load(args.cross_hw)
        oracles.update(prepare(_split(args.cross_workloads), xhw, tables, train_hw=hw, **common))
    print(f"prepared {len(oracles)} workloads in {time.perf_counter() - t0:.0f} s", flush=True)
    runs = run_all(oracles, variants, list(range(args.seeds)), args.budget, jobs=args.jobs,
                   batch=args.batch, threshold=args.threshold, probe_size=args.probe)
    summary = summarise(runs)
    info = {k: {"name": o.name, "hw": o.task.hw.name, "table": o.table,
                "space": o.task.space.size, "valid": o.n_valid, "optima": o.optima.tolist(),
                "best_cost_s": o.best_cost,
                "classifier": {n: {k2: v2 for k2, v2 in c.items() if k2 != "trained_layers"}
                               for n, c in o.classifier.items()}}
            for k, o in oracles.items()}
    md = markdown(summary, variants, info)
    seconds = time.perf_counter() - t0
    print(md)
    print(f"{len(runs)} runs in {seconds:.0f} s")
    if args.output:
        pathlib.Path(args.output).write_text(md + "\n")
    report = {"args": vars(args), "variants": {v: asdict(VARIANTS[v]) for v in variants},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": sys.version.split()[0]},
              "seconds": seconds, "workloads": info, "summary": summary}
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(report, f, indent=1, default=float)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**report, "runs": runs}, f, default=float)
    return 0


def rerender(path: str, output: str | None = None, summary_path: str | None = None) -> str:
    """The Markdown tables of a saved ``--json`` report (summary recomputed from its runs);
    with ``summary_path`` also the report without its runs."""
    with open(path) as f:
        rep = json.load(f)
    if "runs" not in rep:
        raise BenchError("report", f"{path} holds no runs (write it with --json)")
    variants = list(rep["variants"])
    summary = summarise(rep["runs"])
    md = markdown(summary, variants, rep["workloads"])
    if output:
        pathlib.Path(output).write_text(md + "\n")
    if summary_path:
        out = {k: v for k, v in rep.items() if k != "runs"}
        out["summary"] = summary
        with open(summary_path, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return md

if __name__ == "__main__":
    sys.exit(main())
