"""``vtatune validity train|predict|eval``: the validity classifier (docs/validity.md)."""
from __future__ import annotations

import argparse
import json
import math
import sys

from ..errors import CLIUsageError, ValidityModelError
from ..validity.features import FEATURE_SETS
from ..validity.model import CALIBRATIONS, KINDS, ValidityModel, sweep_set
from ..workloads.suites import list_suites, resolve_workload, suite
from .common import add_hw, add_json, emit_json, load_hw

_WL_HELP = ("a suite name (resnet18), a workload name (resnet18.C5, dense.0.relu) or a spec "
            "string (conv2d:1,56,56,64,64,3,1,1)")


def register(sub) -> None:
    p = sub.add_parser("validity", help="validity classifier: train, predict, evaluate",
                       description="A calibrated classifier of P(configuration is valid), trained "
                                   "on compile-only verdicts, for workloads of one template "
                                   "(docs/validity.md).")
    vsub = p.add_subparsers(dest="validity_command", required=True, metavar="ACTION")

    t = vsub.add_parser("train", help="train a model on the compile-only verdicts of workloads",
                        description="Train on every configuration of the given workloads (their "
                                    "compile-only verdicts). All workloads must share a template.")
    t.add_argument("workloads", nargs="+", metavar="SUITE|WORKLOAD", help=_WL_HELP)
    t.add_argument("--features", choices=FEATURE_SETS, default="derived",
                   help="feature set (default derived)")
    t.add_argument("--model", choices=KINDS, default="rf",
                   help="rf = random forest (BaCO's feasibility model), gb = histogram "
                        "gradient boosting (default rf)")
    t.add_argument("--calibration", choices=CALIBRATIONS, default="auto",
                   help="probability calibration (default auto: isotonic with >= 1000 points "
                        "per calibration fold, else sigmoid)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="threads/processes for fitting (default 1)")
    t.add_argument("--cache", metavar="DIR", default=None,
                   help="directory caching the compile-only verdicts per workload")
    t.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    add_hw(t)
    add_json(t)
    t.set_defaults(func=cmd_train)

    pr = vsub.add_parser("predict", help="P(valid) of every configuration of a workload",
                         description="One JSON line per configuration index: "
                                     '{"workload", "index", "p_valid"}.')
    pr.add_argument("model", metavar="MODEL")
    pr.add_argument("workload", metavar="WORKLOAD",
                    help="a workload name (resnet18.C5) or a spec string")
    pr.add_argument("-o", "--output", metavar="FILE.jsonl", default=None,
                    help="write the lines to this file (default: standard output)")
    pr.add_argument("--allow-other-hw", action="store_true",
                    help="use the model on hardware with other SRAM/width fields than it was "
                         "trained for (cross-hardware experiment)")
    add_hw(pr)
    add_json(pr)
    pr.set_defaults(func=cmd_predict)

    e = vsub.add_parser("eval", help="precision/recall/F1/Brier against compile-only verdicts",
                        description="Evaluate a model on workloads' compile-only verdicts. Rows "
                                    "of workloads the model was trained on are marked seen: "
                                    "they are not held-out figures.")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("workloads", nargs="+", metavar="SUITE|WORKLOAD", help=_WL_HELP)
    e.add_argument("--threshold", type=float, default=0.5,
                   help="predicted valid when P(valid) >= threshold (default 0.5)")
    e.add_argument("--cache", metavar="DIR", default=None,
                   help="directory caching the compile-only verdicts per workload")
    e.add_argument("--allow-other-hw", action="store_true",
                   help="use the model on hardware with other SRAM/width fields")
    add_hw(e)
    add_json(e)
    e.set_defaults(func=cmd_eval)


def expand_workloads(names, hw):
    """Suite names expand to their offloadable workloads; others resolve one by one."""
    out = []
    for n in names:
        if n in list_suites():
            out += [w.bind(hw) for w in suite(n) if w.offloadable]
        else:
            out.append(resolve_workload(n, hw)[0])
    return out


def _num(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def cmd_train(args: argparse.Namespace) -> int:
    hw = load_hw(args)
    wls = expand_workloads(args.workloads, hw)
    templates = sorted({w.template for w in wls})
    if len(templates) > 1:
        raise CLIUsageError(f"workloads: one model per template; got {', '.join(templates)}")
    sets = [sweep_set(w, hw, cache_dir=args.cache) for w in wls]
    m = ValidityModel(args.model, args.features, args.calibration, args.seed,
                      n_jobs=args.jobs).fit(sets)
    m.save(args.output)
    info = {"model": args.output, **m.describe()}
    if args.json:
        emit_json(info)
        return 0
    n = sum(t["n"] for t in m.trained_on)
    v = sum(t["valid"] for t in m.trained_on)
    print(f"{args.output}: {m.kind} on {m.features} features ({len(m.feature_names)} columns), "
          f"{m.method} calibration; {m.template} on {m.hw_name}")
    print(f"trained on {len(m.trained_on)} workloads, {n} configurations, {v} valid "
          f"({100 * v / n:.1f} %)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    hw = load_hw(args)
    wl, hw = resolve_workload(args.workload, hw)
    m = ValidityModel.load(args.model, template=None, hw=None)
    p = m.predict_proba(wl, hw, None, allow_other_hw=args.allow_other_hw)
    name = wl.name or wl.spec
    lines = (json.dumps({"workload": name, "index": i, "p_valid": round(float(pv), 6)}) + "\n"
             for i, pv in enumerate(p))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    if args.output:
        summary = {"workload": name, "output": args.output, "configs": int(p.size),
                   "mean_p_valid": float(p.mean()) if p.size else None,
                   "predicted_valid": int((p >= 0.5).sum()), "seen_in_training": m.seen(wl)}
        if args.json:
            emit_json(summary)
        else:
            print(f"{args.output}: {p.size} configurations of {name}, "
                  f"{summary['predicted_valid']} with P(valid) >= 0.5"
                  f"{' (the model was trained on this workload)' if m.seen(wl) else ''}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if not 0.0 <= args.threshold <= 1.0:
        raise ValidityModelError("threshold", f"must be in [0, 1], got {args.threshold}")
    hw = load_hw(args)
    wls = expand_workloads(args.workloads, hw)
    m = ValidityModel.load(args.model)
    sets = [sweep_set(w, hw, cache_dir=args.cache) for w in wls]
    res = m.evaluate(sets, args.threshold, allow_other_hw=args.allow_other_hw)
    if args.json:
        clean = lambda d: {k: _num(v) for k, v in d.items()}
        emit_json({"model": args.model, "kind": m.kind, "features": m.features,
                   "per_workload": [clean(r) for r in res["per_workload"]],
                   "overall": clean(res["overall"])})
        return 0
    print(f"{args.model}: {m.kind} on {m.features} features, threshold {args.threshold}")
    print(f"{'workload':18s} {'configs':>7s} {'valid%':>6s} {'prec':>6s} {'recall':>6s} "
          f"{'F1':>6s} {'Brier':>7s} {'AUC':>6s}")
    for r in res["per_workload"] + [{"workload": "overall", "seen": False, **res["overall"]}]:
        print(f"{r['workload'] + (' *' if r['seen'] else ''):18s} {r['n']:7d} "
              f"{100 * r['base_rate']:6.1f} {r['precision']:6.3f} {r['recall']:6.3f} "
              f"{r['f1']:6.3f} {r['brier']:7.4f} {r['auc']:6.3f}")
    if any(r["seen"] for r in res["per_workload"]):
        print("* the model was trained on this workload: not a held-out figure")
    return 0
