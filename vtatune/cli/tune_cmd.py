"""``vtatune tune | best | db | history``: tuning and the shared records database."""
from __future__ import annotations

import json
import sys

from ..errors import CLIUsageError
from .common import (
    ProgressBar,
    add_db,
    add_executor,
    add_hw,
    add_json,
    add_sync,
    check_executor,
    emit_json,
    load_hw,
    opened_db,
    opened_executor,
    positive,
    stop_on_sigterm,
)


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune a workload, every workload of a suite, or every VTA "
                                    "layer of a model")
    p.add_argument("workload", metavar="WORKLOAD|SUITE|MODEL",
                   help="a workload (resnet18.C5, a spec string), a suite (resnet18, deepbench), "
                        "or a model: a zoo spec (resnet50, resnet18:res=224, mobilenetv2) or an "
                        ".onnx file, whose VTA layers are tuned, one task per distinct shape "
                        "(docs/deploy.md); a suite name wins over a model name unless --model")
    p.add_argument("--model", action="store_true",
                   help="read WORKLOAD as a model even when it is also a suite's name (resnet18)")
    p.add_argument("--batch", type=int, default=None, help="a model's batch (default the model's)")
    p.add_argument("--target", default="tsim", help="measurement target: tsim, fsim or board "
                   "servers pynq://HOST:PORT[,HOST:PORT...] (default tsim)")
    p.add_argument("--tuner", default="xgb",
                   help="random, grid, ga, xgb, pruner, oneshot (default xgb)")
    p.add_argument("--oneshot-model", metavar="FILE", default=None,
                   help="oneshot: the frozen predictor (default $VTATUNE_ONESHOT_MODEL, else the "
                        "one trained from docs/data/oneshot_vta.npz, cached; docs/oneshot.md)")
    p.add_argument("--trials", type=int, default=200, help="configurations to measure per workload")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None,
                   help="measurement worker processes (default 2; pynq://: one per board)")
    p.add_argument("--board-token-file", metavar="FILE", default=None,
                   help="pynq://: file whose first line is the board servers' shared token "
                        "(default $VTATUNE_BOARD_TOKEN)")
    p.add_argument("--early-stopping", type=int, default=None, metavar="N",
                   help="stop a workload after N trials without improvement")
    p.add_argument("--check", action="store_true", help="check every output against numpy")
    add_sync(p)
    p.add_argument("--feature", default="itervar", choices=["itervar", "knob"],
                   help="xgb: features of the loop nest (default) or the knob values")
    p.add_argument("--loss", default="rank", choices=["rank", "reg"],
                   help="xgb: cost-model loss (rank: the earlier AutoTVM's default; reg: "
                        "TVM v0.14's)")
    p.add_argument("--number", type=int, default=1, help="AutoTVM's number: cost repetitions per record")
    v = p.add_argument_group("validity (docs/validity.md)")
    v.add_argument("--screen", default="none", choices=["none", "learned", "exact"],
                   help="skip proposals predicted invalid: by a classifier (learned, needs "
                        "--validity-model) or by the compile-only check (exact); skipped ones "
                        "are stored as predicted records, never counted as measurements")
    v.add_argument("--init", default="random", choices=["random", "validity", "probe", "draft"],
                   help="first plan: random (AutoTVM), among predicted-valid configurations "
                        "spread over the valid clusters (validity), a small random probe, "
                        "a classifier fitted on it, then the seeded plan (probe), or the "
                        "analytic draft model's fastest predicted-valid configurations (draft)")
    v.add_argument("--validity-model", metavar="MODEL", default=None,
                   help="a model of `vtatune validity train` (P(valid) for --screen learned "
                        "and --init validity; without it --init validity uses the exact check)")
    v.add_argument("--threshold", type=float, default=0.5, help="P(valid) below which a "
                   "configuration counts as predicted invalid (default 0.5)")
    v.add_argument("--weight-acquisition", action="store_true",
                   help="xgb: weight the model's acquisition score by P(valid)")
    add_executor(p)
    add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("best", help="the best recorded configuration of a workload")
    p.add_argument("workload")
    p.add_argument("--top", type=int, default=1)
    p.add_argument("--runner", default="tsim",
                   help="which kind of cost to rank: the leading '/'-separated parts of a runner label "
                        "(tsim, fsim, pynq, pynq[fsim], pynq/<bitstream>, import) or 'any'")
    add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("db", help="records database: import, export, stats")
    s = p.add_subparsers(dest="db_cmd", required=True, metavar="{import,export,stats}")
    pi = s.add_parser("import", help="import an AutoTVM v0.2 JSON-lines log")
    pi.add_argument("log")
    pi.add_argument("--strict", action="store_true",
                    help="refuse the whole file at its first bad line (default: import the rest)")
    add_db(pi)
    add_hw(pi)
    add_json(pi)
    pi.set_defaults(func=cmd_db_import)
    pe = s.add_parser("export", help="export records as an AutoTVM v0.2 log")
    pe.add_argument("log")
    pe.add_argument("--workload", default=None, help="only this workload")
    add_db(pe)
    add_hw(pe)
    add_json(pe)
    pe.set_defaults(func=cmd_db_export)
    ps = s.add_parser("stats", help="record counts")
    add_db(ps)
    add_json(ps)
    ps.set_defaults(func=cmd_db_stats)

    p = sub.add_parser("history", help="best-so-far curve of a workload's tuning as a PNG")
    p.add_argument("workload")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png")
    p.add_argument("--target", default="tsim")
    add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_history)


def is_model(name: str, force: bool = False) -> bool:
    """Whether a ``tune`` argument names a model (a zoo spec or an .onnx file)."""
    from ..workloads.suites import list_suites
    if name.lower().endswith(".onnx"):
        return True
    if name in list_suites() and not force:
        return False
    from ..backends.tvm import zoo
    return force or name.partition(":")[0] in zoo.MODELS


def _tasks(name: str, args):
    """The tasks a ``tune`` argument names: every offloadable workload of a suite, every VTA
    layer shape of a model, or one workload."""
    from ..task import VtaTask
    from ..workloads.suites import list_suites, suite
    hw = load_hw(args)
    if is_model(name, args.model):
        return _model_tasks(name, args, hw)
    if args.batch is not None:
        raise CLIUsageError("--batch is for models (a workload spec carries its own batch)")
    refs = [w for w in suite(name) if w.offloadable] if name in list_suites() else [name]
    return [VtaTask.create(ref, hw, sync=args.sync, profile=args.profile) for ref in refs]


def _model_tasks(name: str, args, hw):
    from ..network.tasks import network_tasks
    if args.batch is not None:
        positive(args.batch, "--batch")
    tasks, placements, model = network_tasks(name, hw, batch=args.batch, sync=args.sync,
                                             profile=args.profile)
    if not args.json:
        on_vta = sum(p.on_vta for p in placements)
        print(f"{model}: {on_vta} layers on VTA in {len(tasks)} tasks (one per shape); "
              f"on the CPU:", file=sys.stderr)
        for p in placements:
            if not p.on_vta and p.op in ("conv2d", "dense"):
                print(f"  {p.node}: {p.reason}", file=sys.stderr)
        for t in tasks:
            print(f"  task {t.task.workload.spec}: {', '.join(t.layers)}", file=sys.stderr)
    return [t.task for t in tasks]


def _task(args):
    from ..task import VtaTask
    return VtaTask.create(args.workload, load_hw(args))


def cmd_tune(args) -> int:
    from ..autotune import tune
    from ..measure.runners import runner_for
    for opt, value in (("--trials", args.trials), ("--workers", args.workers),
                       ("--number", args.number), ("--early-stopping", args.early_stopping)):
        positive(value, opt)
    positive(args.seed, "--seed", minimum=0)
    check_executor(args)
    runner = runner_for(args.target)  # refused before anything is recorded
    if args.board_token_file:
        if not hasattr(runner, "token_file"):
            raise CLIUsageError("--board-token-file is for board targets (pynq://...)")
        runner = runner.configured(token_file=args.board_token_file)
    if args.workers is None:  # boards: one worker per board
        args.workers = runner.default_workers() if hasattr(runner, "default_workers") else 2
    tasks = _tasks(args.workload, args)
    model = _validity_model(args)
    stop_on_sigterm()
    out = []
    with opened_db(args) as db, opened_executor(args) as pool:
        for task in tasks:
            bar = ProgressBar(min(args.trials, task.space.size), task.name, enabled=not args.json)

            def on_progress(s, n, bar=bar):
                bar.update(n, best_gops=f"{s.best_gops:.2f}", valid=s.valid, invalid=s.invalid)
            screen, init, options = _validity_strategies(args, task, model)
            try:
                s = tune(task, runner, db=db, tuner=args.tuner, n_trial=args.trials,
                         seed=args.seed, workers=args.workers, early_stopping=args.early_stopping,
                         check=args.check, number=args.number, feature=args.feature,
                         screen=screen, init=init, tuner_options=options,
                         on_progress=on_progress, pool=pool)
            finally:
                bar.close()
            out.append(s)
            if not args.json:
                best = "none valid" if s.best_index is None else \
                    f"best index {s.best_index}: {s.best_cost * 1e3:.3f} ms, {s.best_gops:.2f} GOPS"
                skipped = f", {s.screened} screened out" if s.screened else ""
                print(f"{s.workload}: {s.measured} measured ({s.resumed} resumed, {s.new} new; "
                      f"{s.valid} valid, {s.invalid} invalid{skipped}) in {s.seconds:.1f} s; "
                      f"{best}")
            if s.all_crashed:
                print(f"vtatune: error: every measurement of {s.workload} crashed "
                      f"({s.crashed}); see the records' messages (vtatune -v)", file=sys.stderr)
            if s.interrupted:
                print("interrupted: rerun the same command to resume", file=sys.stderr)
                break
    if args.json:
        emit_json([{k: v for k, v in s.as_dict().items() if k != "history"} for s in out])
    if out and out[-1].interrupted:
        return 130
    return 1 if any(s.all_crashed for s in out) else 0


def _validity_model(args):
    """The ``--validity-model`` (checked against nothing yet: each task checks its template
    and hardware), or None; refused when a learned screen needs one and none is given."""
    if args.screen == "learned" and not args.validity_model:
        raise CLIUsageError("--screen learned needs --validity-model MODEL "
                            "(train one with `vtatune validity train`)")
    if not 0.0 <= args.threshold <= 1.0:
        raise CLIUsageError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.weight_acquisition and args.tuner != "xgb":
        raise CLIUsageError("--weight-acquisition applies to the xgb tuner")
    if args.tuner == "oneshot" and args.init != "random":
        raise CLIUsageError("--init does not apply to --tuner oneshot (its one batch is the "
                            "predictor's top-k)")
    if not args.validity_model:
        return None
    from ..validity.model import ValidityModel
    return ValidityModel.load(args.validity_model)


def _validity_strategies(args, task, model):
    """(screen, init strategy, tuner options) of one task from the validity options."""
    from ..validity.init import ProbeThenClassify, ValidityInit
    from ..validity.screen import ExactScreen, LearnedScreen
    learned = LearnedScreen(model, task, args.threshold) if model is not None else None
    exact = ExactScreen(task) if args.screen == "exact" or (
        learned is None and (args.init == "validity" or args.weight_acquisition)) else None
    prior = learned or exact  # where P(valid) comes from
    screen = {"none": None, "learned": learned, "exact": exact}[args.screen]
    init = None
    if args.init == "validity":
        init = ValidityInit(prior.p_valid, args.threshold)
    elif args.init == "probe":
        init = ProbeThenClassify(task, threshold=args.threshold)
    elif args.init == "draft":  # validity from the classifier if given, else the compiler's check
        from ..autotune.draft import DraftInit, draft_model
        init = DraftInit(draft_model(task.space, task.workload, task.hw, task.profile, task.sync),
                         learned.p_valid if learned is not None else None, args.threshold)
    options = {}
    if args.tuner in ("xgb", "pruner"):
        options["loss_type"] = args.loss
        if args.weight_acquisition:
            options["acquisition_weight"] = prior.acquisition_weight()
    if args.tuner == "oneshot":  # one batch of top-k (k = --trials) from a frozen predictor
        options.update(task=task, predictor=args.oneshot_model, n_trial=args.trials)
    return screen, init, options or None


def cmd_best(args) -> int:
    positive(args.top, "--top")
    task = _task(args)
    with opened_db(args, readonly=True) as db:
        recs = db.best(task.key, task.hw.name, k=args.top,
                       runner_prefix=None if args.runner == "any" else args.runner)
    rows = [{"index": r.config_index, "config": r.config, "mean_cost_s": r.mean_cost,
             "gops": task.flops / r.mean_cost / 1e9, "runner": r.runner, "source": r.source}
            for r in recs]
    if args.json:
        emit_json({"workload": task.name, "hw": task.hw.name, "best": rows})
    elif not rows:
        print(f"{task.name}: no successful record on {task.hw.name}")
    else:
        for r in rows:
            print(f"{task.name} index {r['index']}: {r['mean_cost_s'] * 1e3:.3f} ms, "
                  f"{r['gops']:.2f} GOPS ({r['source']}, {r['runner']})")
    return 0 if rows else 1


def cmd_db_import(args) -> int:
    from ..db.autotvm import import_log
    from ..task import vta_record_validator
    hw = load_hw(args) if args.hw else None
    with opened_db(args) as db:
        report = import_log(db, args.log, validate=vta_record_validator(hw), strict=args.strict)
    if args.json:
        emit_json({"log": args.log, "read": report.read, "inserted": report.inserted,
                   "n_rejected": report.n_rejected,
                   "rejected": [r.as_dict() for r in report.rejected],
                   "n_warnings": report.n_warnings,
                   "warnings": [w.as_dict() for w in report.warnings]})
    else:
        for r in report.rejected:
            print(f"rejected ({r.reason}): {r}", file=sys.stderr)
        for w in report.warnings:  # imported as ApplyHistoryBest would apply them
            print(f"warning ({w.reason}): {w}", file=sys.stderr)
        print(f"{args.log}: {report.read} records read, {report.inserted} new, "
              f"{report.n_rejected} rejected, {report.n_warnings} warnings")
    # as replay does: a file with lines that could not be taken is not a clean success
    return 1 if report.n_rejected else 0


def cmd_db_export(args) -> int:
    from ..db.autotvm import export_log
    key = hw_name = None
    if args.workload:
        task = _task(args)
        key, hw_name = task.key, task.hw.name
    with opened_db(args, readonly=True) as db:
        n = export_log(db, args.log, workload_key=key, hw=hw_name)
    if args.json:
        emit_json({"log": args.log, "written": n})
    else:
        print(f"{n} records written to {args.log}")
    return 0


def cmd_db_stats(args) -> int:
    from ..db.records import short_keys
    with opened_db(args, readonly=True) as db:
        stats = db.stats()
    if args.json:
        emit_json(stats)
    else:
        print(json.dumps(short_keys(stats), indent=2))
    return 0


def cmd_history(args) -> int:
    from ..autotune.history import best_so_far, measured_records, plot_curve
    task = _task(args)
    with opened_db(args, readonly=True) as db:
        recs = measured_records(db, task, args.target)
    if not recs:
        raise CLIUsageError(f"no measured records of {task.name} on {args.target}")
    curve = best_so_far(recs, task.flops)
    plot_curve(curve, args.output, f"{task.name} on {task.hw.name} ({args.target})")
    if args.json:
        emit_json({"workload": task.workload.name, "points": len(curve), "best_gops": curve[-1][1],
                   "output": args.output})
    else:
        print(f"{len(curve)} measurements; best {curve[-1][1]:.2f} GOPS; plot written to {args.output}")
    return 0

