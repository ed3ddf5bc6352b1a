#!/usr/bin/env python3
"""Pruner's draft-then-verify on VTA spaces, replayed against exhaustive tsim tables
(issue 15 item 3; methods.md §C.2, §C.6–C.7).

    python scripts/bench_pruner_vta.py [--workloads resnet18,deepbench] [--seeds 5]
        [--budget 1000] [--variants xgb,xgb-exact,pruner,pruner-randinit] [--json FILE]
        [-o REPORT.md]
    python scripts/bench_pruner_vta.py --moa [--seeds 5]    # MoA: 1x16 source -> 4x8 target

Every run is ``vtatune.autotune.search.search`` (the loop of ``vtatune tune``) with
``scripts/bench_validity.py``'s ``OracleMeasure``: the table answers every measurement, so
a run costs seconds.  Per workload, variant and seed: measurements until the table's
optimum is first measured (``budget + 1`` if never), the tuner's wall time until then
("search time": fits, SA / draft / verify; the measurements themselves cost nothing
here), learned-model evaluations per round (rows the XGB model scored, counted by wrapping
``predict_digits``), and per workload the Kendall τ of the draft model's latency with the
table's costs over the valid configurations (and how many compile-valid configurations
the analytic SRAM check alone leaves among its top 64).

Variants (XGB plan 64, loss rank, full itervar features — ``vtatune tune``'s defaults):

* ``xgb``            AutoTVM's XGB tuner: random first plan, SA over the model each round
* ``xgb-exact``      the XGB tuner with the compiler-verdict screen, validity first plan and
                     verdict-weighted acquisition (``bench_validity``'s ``exact``): how much
                     of Pruner's gain is validity alone
* ``pruner``         draft-then-verify (``--tuner pruner``): first plan = the draft's top,
                     K = 512 drafted every 2 rounds, XGB verifies drafted ∪ 64 random, ε 0.1
* ``pruner-randinit`` the same with AutoTVM's random first plan (isolates the draft's first
                     plan from the verify step)
* ``pruner-noverdict`` ``pruner`` with a draft that knows validity only from its analytic
                     SRAM / micro-op checks (no compiler verdict)

``--moa``: a source ``MLPRankModel`` pre-trained on the ``--hw`` (1x16) tables minus the
target's layer, then Pruner runs on each ``--cross-hw`` (4x8) table with plan 16 and a random
first plan, verified by ``xgb``, ``mlp-scratch`` (retrained from scratch every round),
``moa`` (momentum 0.99 every 4 rounds) or ``source-frozen``; reports trials to the optimum
and the verifier's Kendall τ over all valid target configurations after 16..256 measurements.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_validity import (
    CROSS_HW,
    DEFAULT_CROSS,
    DEFAULT_HW,
    DEFAULT_TABLES,
    DEFAULT_WORKLOADS,
    OracleMeasure,
    _expand,
    _PlanSized,
    _Reached,
    load_tables,
    make_oracle,
)

from vtatune.autotune.draft import draft_model
from vtatune.autotune.features import itervar_feature_fn
from vtatune.autotune.search import search
from vtatune.hardware.config import HwConfig
from vtatune.tuning import create_tuner
from vtatune.validity.init import ValidityInit
from vtatune.validity.screen import ExactScreen

VARIANTS = ("xgb", "xgb-exact", "pruner", "pruner-randinit", "pruner-noverdict")


class AnalyticOnly:
    """The draft model without the compiler's verdict (its SRAM / micro-op checks only)."""

    def __init__(self, draft):
        self.draft = draft

    def top(self, k, exclude=()):
        return self.draft.top(k, exclude, verdict=False)
PLAN = 64


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall τ-b of two 1-D arrays (O(n²) pairs; n is a few hundred valid configurations)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(a.size, 1)
    x, y = da[iu], db[iu]
    n0 = x.size
    tx, ty = np.sum(x == 0), np.sum(y == 0)
    denom = math.sqrt((n0 - tx) * (n0 - ty))
    return float(np.sum(x * y) / denom) if denom else math.nan


_CACHE: dict = {}


def cached(oracle):
    k = oracle.table
    if k not in _CACHE:
        task = oracle.task
        _CACHE[k] = (itervar_feature_fn(task.space, task.workload, task.hw),
                     draft_model(task.space, task.workload, task.hw, task.profile, task.sync))
    return _CACHE[k]


def run_one(oracle, variant: str, seed: int, budget: int, batch: int = 2) -> dict:
    task, space = oracle.task, oracle.task.space
    budget = min(budget, space.size)
    feat, draft = cached(oracle)
    opts = {"feature_fn": feat, "loss_type": "rank", "plan_size": PLAN}
    screen = init = None
    name = "xgb"
    if variant == "xgb-exact":
        exact = ExactScreen(task, verdicts=oracle.verdict)
        screen = exact
        init = _PlanSized(ValidityInit(exact.p_valid, 0.5), PLAN)
        opts["acquisition_weight"] = exact.acquisition_weight()
    elif variant.startswith("pruner"):
        name = "pruner"
        opts["draft"] = AnalyticOnly(draft) if variant == "pruner-noverdict" else draft
        if variant == "pruner-randinit":
            opts["init"] = lambda sp, n, rng: sp.sample(n, rng)
    calls = {"n": 0}
    tuners = []

    def make_tuner(hook):
        kw = dict(opts)
        if hook is not None:
            kw["init"] = hook
        t = create_tuner(name, space, seed=seed, **kw)
        inner = t.cost_model.predict_digits

        def counted(d, inner=inner):
            calls["n"] += len(d)
            return inner(d)
        t.cost_model.predict_digits = counted
        tuners.append(t)
        return t

    optima = set(oracle.optima.tolist())
    measure = OracleMeasure(oracle)

    def on_measured(outs):
        if any(o.index in optima for o in outs):
            raise _Reached

    t0 = time.perf_counter()
    try:
        search(make_tuner, measure, budget, batch=batch, screen=screen, init=init, space=space,
               rng=np.random.default_rng([seed, 7]), on_measured=on_measured)
    except _Reached:
        pass
    seconds = time.perf_counter() - t0
    log = measure.log
    hit = next((n for n, o in enumerate(log, 1) if o.index in optima), None)
    t = tuners[0]
    rounds = t.train_ct
    best = min((o.mean_cost for o in log if o.valid), default=math.inf)
    return {"workload": oracle.name, "hw": task.hw.name, "variant": variant, "seed": seed,
            "budget": budget, "reached": hit is not None,
            "trials_to_best": hit if hit is not None else budget + 1,
            "invalid": sum(not o.valid for o in (log[:hit] if hit else log)),
            "seconds": seconds, "rounds": rounds,
            "model_calls_per_round": calls["n"] / rounds if rounds else 0.0,
            "best_ratio": best / oracle.best_cost if math.isfinite(best) else None}


def draft_quality(oracle) -> dict:
    _, draft = cached(oracle)
    s = draft.score_all()
    v = oracle.category == 0
    lat = -s[v]
    tau = kendall_tau(lat, oracle.cost[v])
    order = np.argsort(-s, kind="stable")
    top64 = order[:64]
    best = oracle.optima[0]
    t0 = time.perf_counter()
    draft_model(oracle.task.space, oracle.task.workload, oracle.task.hw).score_all()
    rate = oracle.task.space.size / (time.perf_counter() - t0)
    verified = draft.top(min(512, oracle.task.space.size))
    return {"workload": oracle.name, "hw": oracle.task.hw.name, "size": oracle.task.space.size,
            "valid": int(v.sum()), "tau": tau,
            "valid_in_analytic_top64": int(v[top64].sum()),
            "optimum_rank_valid": int((s[v] > s[best]).sum()) + 1,
            "drafted_with_verdict": len(verified),
            "configs_per_second": rate}


def med(xs):
    return float(np.median(xs)) if len(xs) else math.nan


def q(xs, p):
    return float(np.percentile(xs, p)) if len(xs) else math.nan


def summarise(runs, quality) -> dict:
    out = {"variants": {}, "per_workload": {}}
    groups = {}
    for r in runs:
        groups.setdefault(r["variant"], []).append(r)
    for v, rs in groups.items():
        per_wl = {}
        for r in rs:
            per_wl.setdefault((r["hw"], r["workload"]), []).append(r)
        wl_trials = [med([r["trials_to_best"] for r in x]) for x in per_wl.values()]
        wl_secs = [med([r["seconds"] for r in x]) for x in per_wl.values()]
        out["variants"][v] = {
            "runs": len(rs), "workloads": len(per_wl),
            "median_trials": med(wl_trials), "q25_trials": q(wl_trials, 25),
            "q75_trials": q(wl_trials, 75),
            "median_seconds": med(wl_secs),
            "reached": float(np.mean([r["reached"] for r in rs])),
            "model_calls_per_round": med([r["model_calls_per_round"] for r in rs if r["rounds"]]),
            "invalid_median": med([r["invalid"] for r in rs]),
        }
        for k, x in per_wl.items():
            out["per_workload"].setdefault(f"{k[0]}:{k[1]}", {})[v] = {
                "trials": med([r["trials_to_best"] for r in x]),
                "seconds": med([r["seconds"] for r in x])}
    # ratios per workload against xgb
    if "xgb" in groups:
        for v in groups:
            if v == "xgb":
                continue
            tr = []
            for d in out["per_workload"].values():
                if v in d and "xgb" in d:
                    tr.append(d["xgb"]["trials"] / d[v]["trials"])
            out["variants"][v]["median_trial_ratio_vs_xgb"] = med(tr)
            # total (over workloads) of the per-workload median search seconds, xgb / variant
            # (a per-workload ratio is meaningless when a run ends before its first fit)
            sx = sum(d["xgb"]["seconds"] for d in out["per_workload"].values() if v in d)
            sv = sum(d[v]["seconds"] for d in out["per_workload"].values() if "xgb" in d)
            out["variants"][v]["median_time_ratio_vs_xgb"] = sx / max(sv, 1e-9)
    out["draft"] = quality
    out["draft_median_tau"] = med([d["tau"] for d in quality])
    return out


def markdown(summary, info) -> str:
    L = [f"Command: `{info['command']}`  ", f"Machine: {info['machine']}  ",
         (f"Date: {info['date']}; seeds {info['seeds']}, budget {info['budget']} "
          f"(capped at the space), batch {info['batch']}, plan {PLAN}."), "",
         ("| variant | workloads | runs | median trials to optimum (IQR over workloads) | "
          "trials ratio vs xgb | median search s | total search time ratio vs xgb | reached | "
          "learned-model evals / round | invalid measured (median) |"),
         "|---|---|---|---|---|---|---|---|---|---|"]
    for v, s in summary["variants"].items():
        L.append(f"| {v} | {s['workloads']} | {s['runs']} | {s['median_trials']:.1f} "
                 f"({s['q25_trials']:.0f}–{s['q75_trials']:.0f}) | "
                 f"{s.get('median_trial_ratio_vs_xgb', 1.0):.2f} | {s['median_seconds']:.2f} | "
                 f"{s.get('median_time_ratio_vs_xgb', 1.0):.2f} | {s['reached']:.2f} | "
                 f"{s['model_calls_per_round']:.0f} | {s['invalid_median']:.0f} |")
    L += ["", "Per workload (median over seeds: trials to optimum / search seconds):", "",
          "| workload | " + " | ".join(summary["variants"]) + " |",
          "|---|" + "---|" * len(summary["variants"])]
    for w, d in summary["per_workload"].items():
        L.append(f"| {w} | " + " | ".join(
            f"{d[v]['trials']:.0f} / {d[v]['seconds']:.2f}" if v in d else "–"
            for v in summary["variants"]) + " |")
    L += ["", f"Draft model (median Kendall τ over workloads: {summary['draft_median_tau']:.3f}):",
          "", ("| workload | space | valid | τ (valid) | valid in analytic top 64 | "
               "optimum's rank among valid | drafted (verdict) | configs/s |"),
          "|---|---|---|---|---|---|---|---|"]
    for d in summary["draft"]:
        L.append(f"| {d['hw'].split('_')[1]}:{d['workload']} | {d['size']} | {d['valid']} | "
                 f"{d['tau']:.3f} | {d['valid_in_analytic_top64']} | {d['optimum_rank_valid']} | "
                 f"{d['drafted_with_verdict']} | {d['configs_per_second']:.0f} |")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------------------------ MoA
MOA_VARIANTS = ("xgb", "mlp-scratch", "moa", "source-frozen")
MOA_PLAN = 16
TAU_AT = (16, 32, 64, 128, 256)


def oracle_data(oracle):
    """Itervar features of the whole space and labels = throughput / best (0 if invalid)."""
    from vtatune.space.indexing import digits_of
    feat, _ = cached(oracle)
    space = oracle.task.space
    x = feat(digits_of(np.arange(space.size, dtype=np.int64), space.dims))
    thr = np.where(np.isfinite(oracle.cost), 1.0 / oracle.cost, 0.0)
    return x, thr / thr.max()


def pretrain_source(sources, target, epochs: int = 50, seed: int = 0):
    """The source MLP: every source-platform table except the target's layer (hold-out)."""
    from bench_validity import layer_id

    from vtatune.tuning.moa import MLPRankModel
    tl = layer_id(target.task.workload)
    keep = [o for o in sources if layer_id(o.task.workload) != tl]
    xs, ys, gs = [], [], []
    for g, o in enumerate(keep):
        x, y = oracle_data(o)
        xs.append(x), ys.append(y), gs.append(np.full(len(y), g))
    X, Y, G = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
    m = MLPRankModel(X.shape[1], seed=seed)
    m.set_normalisation(X)
    t0 = time.perf_counter()
    m.fit(X, Y, G, epochs=epochs)
    return m, len(keep), len(Y), time.perf_counter() - t0


def run_moa(oracle, variant, seed, source, budget):
    from vtatune.tuning.moa import MoATuner
    space = oracle.task.space
    budget = min(budget, space.size)
    feat, draft = cached(oracle)
    common = {"feature_fn": feat, "plan_size": MOA_PLAN, "draft": draft,
              "init": lambda sp, n, rng: sp.sample(n, rng)}   # random first plan: the model decides
    valid = np.flatnonzero(oracle.category == 0)
    taus: dict[int, float] = {}
    tuners = []

    def make_tuner(hook):
        if variant == "xgb":
            t = create_tuner("pruner", space, seed=seed, loss_type="rank", **common)
        else:
            t = MoATuner(space, seed=seed, source=None if variant == "mlp-scratch" else source,
                         scratch=variant == "mlp-scratch",
                         period=10 ** 9 if variant == "source-frozen" else 4, **common)
        inner = t.cost_model.fit

        def fit(indices, ys, plan_size, inner=inner, t=t):
            inner(indices, ys, plan_size)
            n = len(indices)
            if n in TAU_AT:
                taus[n] = kendall_tau(-t.cost_model.predict(valid), oracle.cost[valid])
        t.cost_model.fit = fit
        tuners.append(t)
        return t

    optima = set(oracle.optima.tolist())
    measure = OracleMeasure(oracle)
    t0 = time.perf_counter()
    # runs go on after the optimum until the last τ checkpoint (or the budget)
    stop_at = min(budget, max(TAU_AT))
    search(make_tuner, measure, stop_at, batch=2, space=space,
           rng=np.random.default_rng([seed, 7]))
    log = measure.log
    hit = next((n for n, o in enumerate(log, 1) if o.index in optima), None)
    t = tuners[0]
    return {"workload": oracle.name, "variant": variant, "seed": seed,
            "trials_to_best": hit if hit is not None else stop_at + 1,
            "reached": hit is not None, "seconds": time.perf_counter() - t0,
            "tau": taus, "adaptations": getattr(t.cost_model, "adaptations", None)}


def moa_main(args) -> int:
    tables = load_tables(args.tables.split(","))
    hw, chw = HwConfig.load(args.hw), HwConfig.load(args.cross_hw)
    sources = [make_oracle(r, hw, tables) for r in _expand(args.workloads.split(","))]
    targets = [make_oracle(r, chw, tables) for r in _expand(args.cross_workloads.split(","))]
    runs, pre = [], []
    for o in targets:
        src, n_tasks, n_rows, secs = pretrain_source(sources, o)
        pre.append({"target": o.name, "source_tasks": n_tasks, "source_rows": n_rows,
                    "pretrain_s": secs})
        for v in MOA_VARIANTS:
            for seed in range(args.seeds):
                runs.append(run_moa(o, v, seed, src, args.budget))
            rs = [r for r in runs if r["workload"] == o.name and r["variant"] == v]
            print(f"{o.name} {v}: trials {med([r['trials_to_best'] for r in rs]):.0f} "
                  f"tau@64 {med([r['tau'].get(64, math.nan) for r in rs]):.3f}", flush=True)
    info = {"command": "python scripts/bench_pruner_vta.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
                       f"Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seeds": f"0..{args.seeds - 1}"}
    L = [f"Command: `{info['command']}`  ", f"Machine: {info['machine']}  ",
         (f"Date: {info['date']}; seeds {info['seeds']}, plan {MOA_PLAN}, random first plan, "
          f"runs stop after {max(TAU_AT)} measurements."), "",
         "Source pre-training (1x16 tables, the target's layer held out, 50 epochs): " +
         "; ".join(f"{p['target']}: {p['source_tasks']} tasks, {p['source_rows']} rows, "
                   f"{p['pretrain_s']:.0f} s" for p in pre), "",
         "| target (4x8) | verifier | median trials to optimum | reached | "
         + " | ".join(f"τ after {n}" for n in TAU_AT) + " |",
         "|---|---|---|---|" + "---|" * len(TAU_AT)]
    for o in targets:
        for v in MOA_VARIANTS:
            rs = [r for r in runs if r["workload"] == o.name and r["variant"] == v]
            L.append(f"| {o.name} | {v} | {med([r['trials_to_best'] for r in rs]):.0f} | "
                     f"{np.mean([r['reached'] for r in rs]):.2f} | " + " | ".join(
                         f"{med([r['tau'][n] for r in rs if n in r['tau']]):.3f}"
                         if any(n in r["tau"] for r in rs) else "–" for n in TAU_AT) + " |")
    text = "\n".join(L) + "\n"
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "pretrain": pre, "runs": runs}, f, indent=1)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    print(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    ap.add_argument("--cross-workloads", default=",".join(DEFAULT_CROSS),
                    help="workloads replayed on --cross-hw too ('' to skip)")
    ap.add_argument("--hw", default=DEFAULT_HW)
    ap.add_argument("--cross-hw", default=CROSS_HW)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tables", default=",".join(DEFAULT_TABLES))
    ap.add_argument("--json", default=None)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--moa", action="store_true",
                    help="MoA: a source MLP pre-trained on --hw tables, adapted on --cross-hw "
                         "(momentum 0.99 every 4 rounds) vs from scratch, frozen, and XGB")
    args = ap.parse_args(argv)
    if args.moa:
        return moa_main(args)
    tables = load_tables(args.tables.split(","))
    oracles = []
    hw = HwConfig.load(args.hw)
    for ref in _expand(args.workloads.split(",")):
        oracles.append(make_oracle(ref, hw, tables))
    if args.cross_workloads and args.cross_hw:
        chw = HwConfig.load(args.cross_hw)
        for ref in _expand(args.cross_workloads.split(",")):
            oracles.append(make_oracle(ref, chw, tables))
    variants = [v for v in args.variants.split(",") if v]
    quality = [draft_quality(o) for o in oracles]
    runs = []
    t0 = time.time()
    for o in oracles:
        for v in variants:
            for seed in range(args.seeds):
                runs.append(run_one(o, v, seed, args.budget, args.batch))
        print(f"[{time.time() - t0:6.0f} s] {o.task.hw.name.split('_')[1]}:{o.name} "
              + " ".join(f"{v}={med([r['trials_to_best'] for r in runs if r['workload'] == o.name and r['hw'] == o.task.hw.name and r['variant'] == v]):.0f}"
                         for v in variants), flush=True)
    summary = summarise(runs, quality)
    info = {"command": "python scripts/bench_pruner_vta.py " + " ".join(argv or sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
                       f"Python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seeds": f"0..{args.seeds - 1}", "budget": args.budget, "batch": args.batch}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "summary": summary, "runs": runs}, f, indent=1)
    text = markdown(summary, info)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
