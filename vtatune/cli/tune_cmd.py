"""``vtatune tune | best | db | history``: tuning and the shared records database."""
from __future__ import annotations

import json
import math
import sys

from ..errors import CLIUsageError, VtatuneError
from .common import add_hw, add_json, emit_json


def _add_db(p) -> None:
    p.add_argument("--db", metavar="URL", default=None,
                   help="SQLAlchemy URL of the records database (default: $VTATUNE_DB, else sqlite:///vtatune.db)")


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune a workload (or every workload of a suite)")
    p.add_argument("target_workload", metavar="WORKLOAD|SUITE")
    p.add_argument("--target", default="tsim", help="measurement target: tsim, fsim (default tsim)")
    p.add_argument("--tuner", default="xgb", help="random, grid, ga, xgb (default xgb)")
    p.add_argument("--trials", type=int, default=200, help="configurations to measure per workload")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="measurement worker processes")
    p.add_argument("--early-stopping", type=int, default=None, metavar="N",
                   help="stop a workload after N trials without improvement")
    p.add_argument("--check", action="store_true", help="check every output against numpy")
    p.add_argument("--sync", default="tvm-0.14", choices=["tvm-0.14", "single"])
    p.add_argument("--feature", default="itervar", choices=["itervar", "knob"],
                   help="xgb: features of the loop nest (default) or the knob values")
    p.add_argument("--number", type=int, default=1, help="AutoTVM's number: cost repetitions per record")
    _add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("best", help="the best recorded configuration of a workload")
    p.add_argument("workload")
    p.add_argument("--top", type=int, default=1)
    p.add_argument("--runner", default="tsim",
                   help="which kind of cost to rank: a runner prefix (tsim, fsim, import) or 'any'")
    _add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("db", help="records database: import, export, stats")
    s = p.add_subparsers(dest="db_cmd", required=True, metavar="{import,export,stats}")
    pi = s.add_parser("import", help="import an AutoTVM v0.2 JSON-lines log")
    pi.add_argument("log")
    _add_db(pi)
    add_json(pi)
    pi.set_defaults(func=cmd_db_import)
    pe = s.add_parser("export", help="export records as an AutoTVM v0.2 log")
    pe.add_argument("log")
    pe.add_argument("--workload", default=None, help="only this workload")
    _add_db(pe)
    add_hw(pe)
    add_json(pe)
    pe.set_defaults(func=cmd_db_export)
    ps = s.add_parser("stats", help="record counts")
    _add_db(ps)
    add_json(ps)
    ps.set_defaults(func=cmd_db_stats)

    p = sub.add_parser("history", help="best-so-far curve of a workload's tuning as a PNG")
    p.add_argument("workload")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png")
    p.add_argument("--target", default="tsim")
    _add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_history)


def _open(args):
    from ..db import open_db
    return open_db(args.db)


def _workloads(name: str, hw):
    from ..workloads.suites import list_suites, resolve_workload, suite
    if name in list_suites():
        return [w.name for w in suite(name) if w.offloadable]
    resolve_workload(name, hw)  # fail early, cleanly
    return [name]


def cmd_tune(args) -> int:
    from ..hardware.config import HwConfig
    from ..tuning.session import tune
    for opt, value in (("--trials", args.trials), ("--workers", args.workers), ("--number", args.number),
                       ("--early-stopping", args.early_stopping if args.early_stopping is not None else 1)):
        if value < 1:
            raise CLIUsageError(f"{opt} must be at least 1, got {value}")
    hw = HwConfig.load(args.hw)
    db = _open(args)
    out = []
    try:
        for name in _workloads(args.target_workload, hw):
            s = tune(name, hw, db=db, target=args.target, tuner=args.tuner, n_trial=args.trials,
                     seed=args.seed, workers=args.workers, early_stopping=args.early_stopping,
                     check=args.check, sync=args.sync, number=args.number, progress=not args.json,
                     tuner_options={"feature_type": args.feature} if args.tuner == "xgb" else None)
            out.append(s)
            if not args.json:
                best = "none valid" if s.best_index is None else \
                    f"best index {s.best_index}: {s.best_cost * 1e3:.3f} ms, {s.best_gops:.2f} GOPS"
                print(f"{s.workload}: {s.measured} measured ({s.resumed} resumed, {s.new} new; "
                      f"{s.valid} valid, {s.invalid} invalid) in {s.seconds:.1f} s; {best}")
            if s.interrupted:
                print("interrupted: rerun the same command to resume", file=sys.stderr)
                break
    finally:
        db.close()
    if args.json:
        emit_json([{k: v for k, v in s.as_dict().items() if k != "history"} for s in out])
    return 130 if out and out[-1].interrupted else 0


def cmd_best(args) -> int:
    from ..hardware.config import HwConfig
    from ..tuning.session import workload_key
    from ..workloads.suites import resolve_workload
    wl, hw = resolve_workload(args.workload, HwConfig.load(args.hw))
    db = _open(args)
    try:
        recs = db.best(workload_key(wl, hw), hw.name, k=args.top,
                       runner_prefix=None if args.runner == "any" else args.runner)
    finally:
        db.close()
    rows = [{"index": r.config_index, "config": r.config, "mean_cost_s": r.mean_cost,
             "gops": wl.flops / r.mean_cost / 1e9, "runner": r.runner, "source": r.source}
            for r in recs]
    if args.json:
        emit_json({"workload": wl.name or args.workload, "hw": hw.name, "best": rows})
    elif not rows:
        print(f"{wl.name or args.workload}: no successful record on {hw.name}")
    else:
        for r in rows:
            print(f"{wl.name or args.workload} index {r['index']}: {r['mean_cost_s'] * 1e3:.3f} ms, "
                  f"{r['gops']:.2f} GOPS ({r['source']}, {r['runner']})")
    return 0 if rows else 1


def cmd_db_import(args) -> int:
    from ..db.autotvm import import_log
    db = _open(args)
    try:
        read, inserted = import_log(db, args.log)
    finally:
        db.close()
    if args.json:
        emit_json({"log": args.log, "read": read, "inserted": inserted})
    else:
        print(f"{args.log}: {read} records read, {inserted} new")
    return 0


def cmd_db_export(args) -> int:
    from ..db.autotvm import export_log
    key = hw_name = None
    if args.workload:
        from ..hardware.config import HwConfig
        from ..tuning.session import workload_key
        from ..workloads.suites import resolve_workload
        wl, hw = resolve_workload(args.workload, HwConfig.load(args.hw))
        key, hw_name = workload_key(wl, hw), hw.name
    db = _open(args)
    try:
        n = export_log(db, args.log, workload_key=key, hw=hw_name)
    finally:
        db.close()
    if args.json:
        emit_json({"log": args.log, "written": n})
    else:
        print(f"{n} records written to {args.log}")
    return 0


def cmd_db_stats(args) -> int:
    db = _open(args)
    try:
        stats = db.stats()
    finally:
        db.close()
    if args.json:
        emit_json(stats)
    else:
        print(json.dumps(_short_keys(stats), indent=2))
    return 0


def _short_keys(stats: dict) -> dict:
    """MetaSchedule workload keys embed the whole module (kilobytes of base64): show
    their structural hash and task name instead."""
    def short(key: str, name: str = "") -> str:
        if len(key) <= 200:
            return key
        head = key[:key.find(",")] if key.startswith('["') else key[:40]
        return f"{head.strip('[')} ({name or 'unnamed'}, {len(key)} chars)"
    names = {g["workload_key"]: g["workload_name"] for g in stats.get("groups", [])}
    out = dict(stats)
    out["workload"] = {short(k, names.get(k, "")): v for k, v in stats["workload"].items()}
    out["groups"] = [{**g, "workload_key": short(g["workload_key"], g["workload_name"])}
                     for g in stats["groups"]]
    return out


def cmd_history(args) -> int:
    from ..hardware.config import HwConfig
    from ..tuning.session import workload_key
    from ..workloads.suites import resolve_workload
    wl, hw = resolve_workload(args.workload, HwConfig.load(args.hw))
    db = _open(args)
    try:
        recs = [r for r in db.records(workload_key=workload_key(wl, hw), hw=hw.name, source="measured")
                if r.runner.split("/")[0] == args.target]
    finally:
        db.close()
    if not recs:
        raise CLIUsageError(f"no measured records of {wl.name or args.workload} on {args.target}")
    recs.sort(key=lambda r: r.timestamp)
    best, curve = math.inf, []
    for i, r in enumerate(recs, 1):
        if r.error_no == 0:
            best = min(best, r.mean_cost)
        curve.append((i, wl.flops / best / 1e9 if best < math.inf else 0.0))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VtatuneError("vtatune history needs matplotlib: pip install 'vtatune[viz]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step([c[0] for c in curve], [c[1] for c in curve], where="post")
    ax.set_xlabel("measurements")
    ax.set_ylabel("best GOPS so far")
    ax.set_title(f"{wl.name or args.workload} on {hw.name} ({args.target})")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    if args.json:
        emit_json({"workload": wl.name, "points": len(curve), "best_gops": curve[-1][1], "output": args.output})
    else:
        print(f"{len(curve)} measurements; best {curve[-1][1]:.2f} GOPS; plot written to {args.output}")
    return 0
