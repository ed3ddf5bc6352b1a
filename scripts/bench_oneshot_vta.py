#!/usr/bin/env python3
"""One-Shot Tuner on VTA spaces against the XGB tuner, replayed on exhaustive tsim tables
(issue 15 item 4; methods.md §D, §G.4 adapted to VTA).

    python scripts/bench_oneshot_vta.py [--workloads resnet18,deepbench] [--cross] \
        [--ks 16,32,64] [--seeds 10] [--predictor-seeds 3] [--tsim-sample 16] \
        [--json FILE] [-o REPORT.md]

Leave-one-layer-out: for each held-out workload the predictor is trained on the offline data
(``docs/data/oneshot_vta.npz``, ``scripts/oneshot_data.py``) of every *other* layer — rows of
the same layer (shape without the batch, epilogue; ``bench_validity.layer_id``) on any
hardware are dropped — and then:

* Kendall τ (and Spearman ρ) of its prediction against the table's throughput over the
  held-out task's valid configurations (and τ over the whole space, invalid = 0);
* one batch of top-k (k in ``--ks``) from the frozen predictor, without and with the exact
  compile-only screen (``oneshot`` / ``oneshot+exact``: the latter measures the top-k among
  configurations the compiler accepts): best latency / the table's optimum;
* ``first5``: measurements of the predicted order until one within 5 % of the optimum;
* the XGB tuner as ``vtatune tune`` runs it (itervar features, loss rank, plan 64; batch 2),
  without and with ``--screen exact``, replayed through ``autotune.search`` with an oracle
  measure (``bench_validity.OracleMeasure``), ``--seeds`` seeds: measurements until within
  5 % of the optimum (a run that never gets there counts as space size + 1);
* tuning time = measurements × the mean wall time of one tsim measurement through the
  worker pool (``--tsim-sample`` random valid configurations of resnet18.C10 measured for
  real, 2 workers) + the tuner's own computing time in the replay (XGB fits and simulated
  annealing; the one-shot predictor's scoring of the space).  Offline costs (data, training)
  are reported separately, not in the tuning time.
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
    DEFAULT_HW,
    DEFAULT_TABLES,
    OracleMeasure,
    _expand,
    _split,
    layer_id,
    load_tables,
    make_oracle,
)

from vtatune.autotune.features import itervar_feature_fn
from vtatune.autotune.oneshot import DEFAULT_DATA, OneShotData, OneShotPredictor, kendall_tau
from vtatune.autotune.search import search
from vtatune.hardware.config import HwConfig
from vtatune.tuning import create_tuner
from vtatune.validity.screen import ExactScreen


class _Reached(Exception):
    pass


def xgb_run(oracle, seed: int, within: float, exact: bool, batch: int = 2) -> dict:
    """One replayed XGB run (the CLI's defaults) until within ``within`` of the optimum."""
    task, space = oracle.task, oracle.task.space
    target = oracle.best_cost * (1 + within)
    fn = itervar_feature_fn(space, task.workload, task.hw)
    screen = ExactScreen(task, verdicts=oracle.verdict) if exact else None
    measure = OracleMeasure(oracle)
    tuners = []

    def make(hook):
        t = create_tuner("xgb", space, seed=seed, init=hook, feature_fn=fn, loss_type="rank")
        tuners.append(t)
        return t

    def on_measured(outs):
        if any(o.valid and o.mean_cost <= target for o in outs):
            raise _Reached
    t0 = time.perf_counter()
    try:
        search(make, measure, space.size, batch=batch, screen=screen, space=space,
               rng=np.random.default_rng([seed, 7]), on_measured=on_measured)
    except _Reached:
        pass
    seconds = time.perf_counter() - t0
    log = measure.log
    hit = next((n for n, o in enumerate(log, 1) if o.valid and o.mean_cost <= target), None)
    return {"measurements": hit if hit is not None else space.size + 1,
            "reached": hit is not None, "seconds": seconds}


def spearman(a, b) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b)[0])


def evaluate(oracle, data: OneShotData, ks, pseeds, within: float,
             ablations: bool = True) -> dict:
    """Predictor figures on one held-out workload (leave-one-layer-out)."""
    task = oracle.task
    lid = layer_id(task.workload)
    keep = [t for t, info in enumerate(data.tasks) if info["layer"] != lid]
    train = data.subset(keep)
    assert not any(data.tasks[t]["layer"] == lid for t in np.unique(train.task))
    cost = oracle.cost
    v = np.isfinite(cost)
    thr = np.where(v, 1.0 / np.where(v, cost, 1.0), 0.0)
    target = oracle.best_cost * (1 + within)
    out = {"train_tasks": len(keep), "train_rows": int(train.y.size), "per_seed": []}
    for ps in pseeds:
        t0 = time.perf_counter()
        pred = OneShotPredictor(seed=ps).fit(train)
        fit_s = time.perf_counter() - t0
        fp = pred.fingerprint()
        t0 = time.perf_counter()
        s = pred.predict_task(task.workload, task.hw, task.space)
        order = np.argsort(-s, kind="stable")
        score_s = time.perf_counter() - t0
        assert pred.fingerprint() == fp
        screened = order[v[order]]           # exact screen: the compiler's accepted ones only
        r = {"seed": ps, "fit_s": fit_s, "score_s": score_s,
             "tau_valid": kendall_tau(s[v], thr[v]), "rho_valid": spearman(s[v], thr[v]),
             "tau_space": kendall_tau(s, thr)}
        for name, seq in (("oneshot", order), ("oneshot+exact", screened)):
            c = cost[seq]
            good = np.flatnonzero(c <= target)
            r[f"{name}:first5"] = int(good[0]) + 1 if good.size else int(task.space.size) + 1
            for k in ks:
                top = c[:k]
                best = float(top.min()) if np.isfinite(top).any() else math.inf
                r[f"{name}:ratio@{k}"] = best / oracle.best_cost
                r[f"{name}:valid@{k}"] = int(np.isfinite(top).sum())
        out["per_seed"].append(r)
    if ablations:
        out["ablations"] = ablate(oracle, train, within, ks[0])
    return out


def _order_figures(score, cost, v, target, best, k) -> dict:
    order = np.argsort(-score, kind="stable")
    seq = order[v[order]]                       # with the exact screen
    c = cost[seq]
    good = np.flatnonzero(c <= target)
    thr = 1.0 / cost[v]
    return {"tau_valid": kendall_tau(score[v], thr),
            "first5": int(good[0]) + 1 if good.size else cost.size + 1,
            f"ratio@{k}": float(c[:k].min()) / best}


def ablate(oracle, train: OneShotData, within: float, k: int) -> dict:
    """Predictor seed 0 without the balanced weights, without the task-shape inputs (those
    columns zeroed in training and prediction), and the analytic draft model
    (``autotune.draft``, nothing learned) as a reference ranking."""
    from vtatune.autotune.draft import draft_model
    from vtatune.autotune.oneshot import (
        FEATURE_NAMES,
        TASK_FEATURES,
        TEMPLATE_FLAGS,
        oneshot_features,
    )
    task, cost = oracle.task, oracle.cost
    v = np.isfinite(cost)
    target, best = oracle.best_cost * (1 + within), oracle.best_cost
    x_all = oneshot_features(task.workload, task.hw, task.space, np.arange(task.space.size))
    out = {}
    p = OneShotPredictor(balanced=False).fit(train)
    out["no-balance"] = _order_figures(p.predict(x_all), cost, v, target, best, k)
    drop = [FEATURE_NAMES.index(n) for n in TASK_FEATURES + TEMPLATE_FLAGS]
    xt = train.x.copy()
    xt[:, drop] = 0
    xa = x_all.copy()
    xa[:, drop] = 0
    p = OneShotPredictor().fit(xt, train.y)
    out["no-task-inputs"] = _order_figures(p.predict(xa), cost, v, target, best, k)
    d = draft_model(task.space, task.workload, task.hw).score_all()
    d = np.where(np.isfinite(d), d, -1e30)
    out["draft (analytic)"] = _order_figures(d, cost, v, target, best, k)
    return out


def tsim_seconds_per_measurement(n: int, seed: int = 0) -> dict:
    """Mean wall time of one real tsim measurement through the worker pool (2 workers)."""
    from vtatune.measure import MeasureInput, MeasurePool
    from vtatune.measure.runners import runner_for
    from vtatune.task import VtaTask
    from vtatune.validity import sweep_labels
    hw = HwConfig.load(DEFAULT_HW)
    task = VtaTask.create("resnet18.C10", hw)
    ok = np.flatnonzero(sweep_labels(task.workload, hw).valid)
    idx = np.random.default_rng(seed).choice(ok, min(n, ok.size), replace=False)
    runner = runner_for("tsim")
    with MeasurePool(2) as pool:
        pool.measure([MeasureInput(task, task.config(int(idx[0])), runner)])  # warm-up
        t0 = time.perf_counter()
        pool.measure([MeasureInput(task, task.config(int(i)), runner) for i in idx])
        wall = time.perf_counter() - t0
    return {"workload": "resnet18.C10", "n": int(idx.size), "workers": 2, "wall_s": wall,
            "per_measurement_s": wall / idx.size}


def gmean(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return float(np.exp(np.mean(np.log(xs)))) if xs else math.nan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="resnet18,deepbench")
    ap.add_argument("--cross", action="store_true",
                    help="also the 4x8 tables (resnet18.C7, C9, C11 on the 4x8 hardware)")
    ap.add_argument("--ks", default="16,32,64")
    ap.add_argument("--seeds", type=int, default=10, help="XGB replay seeds")
    ap.add_argument("--predictor-seeds", type=int, default=3)
    ap.add_argument("--within", type=float, default=0.05)
    ap.add_argument("--tsim-sample", type=int, default=16,
                    help="real tsim measurements timed for the per-measurement cost (0: skip)")
    ap.add_argument("--no-ablations", action="store_true",
                    help="skip the ablations (no balance, no task inputs, the draft model)")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--tables", default=",".join(DEFAULT_TABLES))
    ap.add_argument("--cache", default="/tmp/vtatune-bench-validity")
    ap.add_argument("--json", default=None)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args(argv)
    ks = [int(k) for k in _split(args.ks)]
    t_start = time.perf_counter()
    tables = load_tables(_split(args.tables))
    data = OneShotData.load(args.data)
    refs = [(w, DEFAULT_HW) for w in _expand(_split(args.workloads))
            if (DEFAULT_HW, w) in tables]
    if args.cross:
        refs += [(w, CROSS_HW) for (h, w) in sorted(tables) if h == CROSS_HW]
    tsim = tsim_seconds_per_measurement(args.tsim_sample) if args.tsim_sample else None
    t_meas = tsim["per_measurement_s"] if tsim else math.nan
    if tsim:
        print(f"tsim: {t_meas:.3f} s per measurement ({tsim['n']} on resnet18.C10, 2 workers)",
              flush=True)
    rows = []
    for ref, hwn in refs:
        hw = HwConfig.load(hwn)
        o = make_oracle(ref, hw, tables, args.cache)
        ev = evaluate(o, data, ks, list(range(args.predictor_seeds)), args.within,
                      not args.no_ablations)
        xg = {name: [xgb_run(o, s, args.within, exact) for s in range(args.seeds)]
              for name, exact in (("xgb", False), ("xgb+exact", True))}
        row = {"workload": ref, "hw": hwn, "space": int(o.task.space.size), "valid": o.n_valid,
               "best_cost_s": o.best_cost, **{k: v for k, v in ev.items() if k != "per_seed"},
               "per_seed": ev["per_seed"], "xgb_runs": xg,
               "ablations": ev.get("ablations", {})}
        ps = ev["per_seed"]
        for key in ps[0]:
            if key != "seed":
                row[key] = float(np.mean([p[key] for p in ps]))
        for name, runs in xg.items():
            row[f"{name}:median"] = float(np.median([r["measurements"] for r in runs]))
            row[f"{name}:reached"] = float(np.mean([r["reached"] for r in runs]))
            row[f"{name}:tuner_s"] = float(np.median([r["seconds"] for r in runs]))
        rows.append(row)
        print(f"{ref} ({hwn}): tau {row['tau_valid']:.3f}, oneshot ratio@{ks[0]} "
              f"{row[f'oneshot:ratio@{ks[0]}']:.3f} (+exact {row[f'oneshot+exact:ratio@{ks[0]}']:.3f}), "
              f"first5 {row['oneshot:first5']:.0f}/{row['oneshot+exact:first5']:.0f}; xgb median "
              f"{row['xgb:median']:.0f}, xgb+exact {row['xgb+exact:median']:.0f}", flush=True)
    report = {"args": vars(args), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": sys.version.split()[0],
                          "load": os.getloadavg() if hasattr(os, "getloadavg") else None},
              "tsim": tsim, "rows": rows, "seconds": time.perf_counter() - t_start}
    md = markdown(report, ks, args.within)
    print(md)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    if args.output:
        pathlib.Path(args.output).write_text(md + "\n")
    return 0


def markdown(rep: dict, ks, within: float) -> str:
    rows = rep["rows"]
    t_meas = rep["tsim"]["per_measurement_s"] if rep["tsim"] else math.nan
    pct = f"{within * 100:.0f} %"
    lines = ["| workload (hw) | valid / space | τ valid [ρ] | τ space | "
             + " | ".join(f"ratio@{k}" for k in ks) + " | "
             + " | ".join(f"ratio@{k} +exact" for k in ks)
             + f" | first {pct}: oneshot / +exact | xgb to {pct} (median) | xgb+exact |",
             "|" + " --- |" * (6 + 2 * len(ks) + 1)]
    for r in rows:
        hw = "1x16" if r["hw"] == DEFAULT_HW else "4x8"
        lines.append(
            f"| {r['workload']} ({hw}) | {r['valid']} / {r['space']} | {r['tau_valid']:.3f} "
            f"[{r['rho_valid']:.3f}] | {r['tau_space']:.3f} | "
            + " | ".join(f"{r[f'oneshot:ratio@{k}']:.3f}" for k in ks) + " | "
            + " | ".join(f"{r[f'oneshot+exact:ratio@{k}']:.3f}" for k in ks)
            + f" | {r['oneshot:first5']:.1f} / {r['oneshot+exact:first5']:.1f} | "
            f"{r['xgb:median']:.0f} | {r['xgb+exact:median']:.0f} |")
    lines += ["", (f"Aggregates over {len(rows)} held-out workloads (predictor figures "
                   "averaged over predictor seeds first):"), "",
              "| figure | oneshot | oneshot+exact |", "| --- | --- | --- |"]
    for k in ks:
        for label, fn in (
                (f"k={k}: workloads within {pct}",
                 lambda n, k=k: f"{sum(r[f'{n}:ratio@{k}'] <= 1 + within + 1e-12 for r in rows)} / {len(rows)}"),
                (f"k={k}: geomean latency ratio", lambda n, k=k: f"{gmean([r[f'{n}:ratio@{k}'] for r in rows]):.4f}"),
                (f"k={k}: worst latency ratio", lambda n, k=k: f"{max(r[f'{n}:ratio@{k}'] for r in rows):.3f}")):
            lines.append(f"| {label} | {fn('oneshot')} | {fn('oneshot+exact')} |")
    lines.append(f"| median τ (valid configurations) | {np.median([r['tau_valid'] for r in rows]):.3f} | |")
    # measurement and time speedups at each k, against the xgb variant with the same screen
    lines += ["", (f"Speedup against XGB (same screen) to reach within {pct} of the optimum: "
                   f"XGB's median measurements ÷ k, and tuning time (measurements × "
                   f"{t_meas:.3f} s tsim + tuner computing) XGB ÷ one-shot; medians over the "
                   f"workloads where one-shot at that k is within {pct} (count shown)."), "",
              "| k | pair | workloads | measurements speedup (median [min–max]) | time speedup (median) |",
              "| --- | --- | --- | --- | --- |"]
    for k in ks:
        for n, x in (("oneshot", "xgb"), ("oneshot+exact", "xgb+exact")):
            sel = [r for r in rows if r[f"{n}:ratio@{k}"] <= 1 + within + 1e-12]
            if not sel:
                lines.append(f"| {k} | {n} vs {x} | 0 | — | — |")
                continue
            ms = [r[f"{x}:median"] / k for r in sel]
            ts = [(r[f"{x}:median"] * t_meas + r[f"{x}:tuner_s"]) / (k * t_meas + r["score_s"])
                  for r in sel] if math.isfinite(t_meas) else [math.nan]
            lines.append(f"| {k} | {n} vs {x} | {len(sel)} | {np.median(ms):.2f} "
                         f"[{min(ms):.2f}–{max(ms):.2f}] | {np.median(ts):.2f} |")
    for n, x in (("oneshot", "xgb"), ("oneshot+exact", "xgb+exact")):
        ms = [r[f"{x}:median"] / r[f"{n}:first5"] for r in rows]
        lines.append(f"| first {pct} (k chosen in hindsight) | {n} vs {x} | {len(rows)} | "
                     f"{np.median(ms):.2f} [{min(ms):.2f}–{max(ms):.2f}] | — |")
    if any(r.get("ablations") for r in rows):
        k0 = ks[0]
        lines += ["", (f"Ablations (predictor seed 0; the exact screen; k = {k0}): median τ over "
                       f"valid configurations, workloads within {pct} at k = {k0}, median and "
                       f"max measurements to the first within {pct}."), "",
                  f"| ranking | median τ | within {pct} @{k0} | first {pct}: median | max |",
                  "| --- | --- | --- | --- | --- |"]
        lines.append(f"| one-shot (as above, seed-averaged) | "
                     f"{np.median([r['tau_valid'] for r in rows]):.3f} | "
                     f"{sum(r[f'oneshot+exact:ratio@{k0}'] <= 1 + within + 1e-12 for r in rows)} / {len(rows)} | "
                     f"{np.median([r['oneshot+exact:first5'] for r in rows]):.1f} | "
                     f"{max(r['oneshot+exact:first5'] for r in rows):.1f} |")
        for name in rows[0]["ablations"]:
            a = [r["ablations"][name] for r in rows]
            lines.append(f"| {name} | {np.median([x['tau_valid'] for x in a]):.3f} | "
                         f"{sum(x[f'ratio@{k0}'] <= 1 + within + 1e-12 for x in a)} / {len(a)} | "
                         f"{np.median([x['first5'] for x in a]):.1f} | "
                         f"{max(x['first5'] for x in a)} |")
    fit = np.median([r["fit_s"] for r in rows])
    score = np.median([r["score_s"] for r in rows])
    lines += ["", (f"Offline training: median {fit:.2f} s per predictor "
                   f"(~{np.median([r['train_rows'] for r in rows]):.0f} rows); compile-time "
                   f"scoring of a whole space: median {score * 1e3:.1f} ms. XGB tuner computing "
                   f"time in the replay (to {pct}): median "
                   f"{np.median([r['xgb:tuner_s'] for r in rows]):.2f} s per run.")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
