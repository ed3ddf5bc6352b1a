#!/usr/bin/env python3
"""Held-out metrics of the validity classifier (docs/validity.md).

1. Leave-one-workload-out over a suite (default resnet18): for every layer, a model trained
   on the other layers' compile-only verdicts predicts every configuration of that layer;
   precision / recall / F1 (class "valid", threshold 0.5), Brier score, ROC AUC and the base
   rate, for each feature set x model kind.
2. ``--cross TRAIN:TEST`` rows: a model trained on every workload of one suite, evaluated on
   every workload of another (e.g. resnet18:deepbench).
3. ``--cross-hw HW``: the leave-one-out models' full-suite counterpart trained on ``--hw``,
   used on the same suite bound to another hardware configuration (``allow_other_hw``).

Usage::

    python scripts/validity_eval.py [--suite resnet18] [--kinds rf,gb] [--features knob,derived]
        [--cross resnet18:deepbench] [--cross-hw pynq_4x8_i8w8a32_15_16_16_18]
        [--cache DIR] [--jobs N] [--json] [-o REPORT.md]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

from vtatune.hardware.config import HwConfig
from vtatune.validity import ValidityModel, leave_one_workload_out, metrics, sweep_set
from vtatune.workloads.suites import suite
from vtatune.workloads.workload import WorkloadError


def offloadable(name: str, hw: HwConfig):
    out = []
    for w in suite(name):
        if w.offloadable and _binds(w, hw):
            out.append(w.bind(hw))
    return out


def _binds(w, hw: HwConfig) -> bool:
    """False for a layer this hardware cannot offload (e.g. channels below its BLOCK)."""
    try:
        w.bind(hw)
    except WorkloadError:
        return False
    return True


def fmt(x: float, digits: int = 3) -> str:
    return "—" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="resnet18")
    ap.add_argument("--kinds", default="rf,gb")
    ap.add_argument("--features", default="knob,derived")
    ap.add_argument("--hw", default=None)
    ap.add_argument("--cross", action="append", default=[], metavar="TRAIN:TEST")
    ap.add_argument("--cross-hw", default=None, metavar="HW")
    ap.add_argument("--cache", default=None, metavar="DIR", help="cache of compile-only verdicts")
    ap.add_argument("--jobs", type=int, default=1, help="threads per model (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-o", "--output", default=None, help="write the Markdown report here")
    a = ap.parse_args(argv)
    hw = HwConfig.load(a.hw)
    kinds, feats = a.kinds.split(","), a.features.split(",")
    t0 = time.time()
    wls = offloadable(a.suite, hw)
    runs = []
    for f in feats:
        for k in kinds:
            t = time.time()
            r = leave_one_workload_out(wls, hw, k, f, seed=a.seed, cache_dir=a.cache, n_jobs=a.jobs)
            r["seconds"] = round(time.time() - t, 1)
            runs.append(r)
            print(f"loo {a.suite} {f} {k}: {r['seconds']} s", file=sys.stderr)
    cross = []
    for spec in a.cross:
        tr, te = spec.split(":")
        train_sets = [sweep_set(w, hw, cache_dir=a.cache) for w in offloadable(tr, hw)]
        test_sets = [sweep_set(w, hw, cache_dir=a.cache) for w in offloadable(te, hw)]
        for f in feats:
            for k in kinds:
                t = time.time()
                m = ValidityModel(k, f, seed=a.seed, n_jobs=a.jobs).fit(train_sets)
                res = m.evaluate(test_sets)
                n_seen = sum(r["seen"] for r in res["per_workload"])
                unseen = [s for s, r in zip(test_sets, res["per_workload"]) if not r["seen"]]
                held = m.evaluate(unseen)["overall"] if unseen else None
                cross.append({"train": tr, "test": te, "features": f, "kind": k,
                              "overall": res["overall"], "held_out_only": held,
                              "test_workloads": len(test_sets), "seen_in_training": n_seen,
                              "per_workload": res["per_workload"],
                              "seconds": round(time.time() - t, 1)})
                print(f"cross {spec} {f} {k}: {cross[-1]['seconds']} s", file=sys.stderr)
    cross_hw = []
    if a.cross_hw:
        hw2 = HwConfig.load(a.cross_hw)
        train_sets = [sweep_set(w, hw, cache_dir=a.cache) for w in wls]
        test_sets = [sweep_set(w, hw2, cache_dir=a.cache) for w in offloadable(a.suite, hw2)]
        for f in feats:
            for k in kinds:
                m = ValidityModel(k, f, seed=a.seed, n_jobs=a.jobs).fit(train_sets)
                ys = np.concatenate([s.labels for s in test_sets])
                ps = np.concatenate([m.predict_proba(s.workload, s.hw, s.indices, allow_other_hw=True)
                                     for s in test_sets])
                cross_hw.append({"train_hw": hw.name, "test_hw": hw2.name, "suite": a.suite,
                                 "features": f, "kind": k, "overall": metrics(ys, ps)})
    import sklearn
    env = {"machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
           "numpy": np.__version__, "sklearn": sklearn.__version__, "hw": hw.name,
           "seconds": round(time.time() - t0, 1)}
    text = report(a, env, wls, runs, cross, cross_hw)
    if a.output:  # the Markdown report, also with --json
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)
    if a.json:
        json.dump({"env": env, "loo": runs, "cross": cross, "cross_hw": cross_hw}, sys.stdout,
                  indent=2, default=lambda x: None)
        print()
    else:
        print(text)
    return 0


def report(a, env, wls, runs, cross, cross_hw) -> str:
    intro = (f"Leave-one-layer-out on `{a.suite}`, hardware `{env['hw']}` (machine: {env['machine']}, "
             f"{env['cores']} cores; python {env['python']}, numpy {env['numpy']}, scikit-learn "
             f"{env['sklearn']}; {env['seconds']} s in all). Threshold 0.5; P = precision, "
             "R = recall, F1 of the class *valid*; Brier = mean squared error of P(valid).")
    L = [intro, ""]
    head = "| workload | configs | valid % | " + " | ".join(
        f"{r['features']} {r['kind']} P / R / F1 / Brier" for r in runs) + " |"
    L += [head, "| " + " | ".join(["---"] * (3 + len(runs))) + " |"]
    for i, w in enumerate(wls):
        row0 = runs[0]["per_workload"][i]
        cells = [f"{fmt(r['per_workload'][i]['precision'], 2)} / {fmt(r['per_workload'][i]['recall'], 2)} / "
                 f"{fmt(r['per_workload'][i]['f1'], 2)} / {fmt(r['per_workload'][i]['brier'], 4)}" for r in runs]
        L.append(f"| {w.name} | {row0['n']} | {100 * row0['base_rate']:.1f} | " + " | ".join(cells) + " |")
    o = runs[0]["overall"]
    L.append(f"| **pooled** | {o['n']} | {100 * o['base_rate']:.1f} | " + " | ".join(
        f"**{fmt(r['overall']['precision'], 3)} / {fmt(r['overall']['recall'], 3)} / "
        f"{fmt(r['overall']['f1'], 3)} / {fmt(r['overall']['brier'], 4)}**" for r in runs) + " |")
    L += ["", "Pooled ROC AUC: " + ", ".join(f"{r['features']} {r['kind']} {fmt(r['overall']['auc'])}"
                                             for r in runs) + "; seconds per leave-one-out run: "
          + ", ".join(f"{r['features']} {r['kind']} {r['seconds']}" for r in runs) + "."]
    if cross:
        L += ["", "| train on | test on | features | model | P | R | F1 | Brier | AUC | held-out only: P / R / F1 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in cross:
            o, h = c["overall"], c["held_out_only"]
            hs = f"{fmt(h['precision'])} / {fmt(h['recall'])} / {fmt(h['f1'])}" if h else "—"
            L.append(f"| {c['train']} | {c['test']} ({c['test_workloads']}, {c['seen_in_training']} seen) | "
                     f"{c['features']} | {c['kind']} | {fmt(o['precision'])} | {fmt(o['recall'])} | "
                     f"{fmt(o['f1'])} | {fmt(o['brier'], 4)} | {fmt(o['auc'])} | {hs} |")
    if cross_hw:
        L += ["", "| trained on | used on | suite | features | model | P | R | F1 | Brier | AUC |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in cross_hw:
            o = c["overall"]
            L.append(f"| {c['train_hw']} | {c['test_hw']} | {c['suite']} | {c['features']} | {c['kind']} | "
                     f"{fmt(o['precision'])} | {fmt(o['recall'])} | {fmt(o['f1'])} | {fmt(o['brier'], 4)} | "
                     f"{fmt(o['auc'])} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
