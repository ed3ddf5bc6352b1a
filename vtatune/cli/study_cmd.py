"""``vtatune study WORKLOAD|SUITE``: the invalid-configuration study (docs/study.md) —
exhaustive exploration through the tuning pipeline (resumable), E1-E3, PNGs, report.md."""
from __future__ import annotations

import pathlib
import re
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
    p = sub.add_parser("study", help="invalid-configuration study of a workload or suite: "
                                     "exhaustive exploration, analyses, plots, report.md")
    p.add_argument("workload", metavar="WORKLOAD|SUITE")
    p.add_argument("--target", default="tsim", help="measurement target: tsim, fsim (default tsim)")
    p.add_argument("--workers", type=int, default=2, help="measurement worker processes")
    add_executor(p)
    p.add_argument("--seeds", type=int, default=20,
                   help="E3: seeds (random training samples) per training size (default 20)")
    p.add_argument("--sizes", default="64,128,256,512", metavar="N,N,...",
                   help="E3: training-set sizes (default 64,128,256,512)")
    p.add_argument("--loss", default="rank", choices=["rank", "reg"],
                   help="E3: XGBoost loss of the cost model (default rank)")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="report directory (default study-<workload>)")
    add_sync(p)
    add_db(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_study)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIUsageError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not sizes:
        raise CLIUsageError("--sizes needs at least one training-set size")
    for n in sizes:
        positive(n, "--sizes", minimum=2)
    return sizes


def _safe(name: str) -> str:
    """A file-system name for a workload or spec string."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "workload"


def _command(args) -> list[str]:
    """The command as run, rebuilt from the parsed options (every value explicit, a
    database password masked)."""
    argv = ["study", args.workload, "--target", args.target, "--workers", str(args.workers),
            "--seeds", str(args.seeds), "--sizes", args.sizes, "--loss", args.loss,
            "--sync", args.sync, "--profile", args.profile]
    if args.executor != "local":
        argv += ["--executor", args.executor]
    if args.hw:
        argv += ["--hw", args.hw]
    if args.db:
        argv += ["--db", re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", args.db)]
    if args.output:
        argv += ["-o", args.output]
    return argv


def cmd_study(args) -> int:
    from ..measure.runners import runner_for
    from ..study import StudyOptions, study_workload, write_suite_report
    from ..study.run import run_meta
    from ..task import VtaTask
    from ..workloads.suites import list_suites, suite

    positive(args.workers, "--workers")
    positive(args.seeds, "--seeds")
    check_executor(args)
    options = StudyOptions(seeds=args.seeds, sizes=_sizes(args.sizes), loss_type=args.loss)
    runner = runner_for(args.target)  # refused before anything is measured
    hw = load_hw(args)
    is_suite = args.workload in list_suites()
    refs = [w for w in suite(args.workload) if w.offloadable] if is_suite else [args.workload]
    tasks = [VtaTask.create(ref, hw, sync=args.sync, profile=args.profile) for ref in refs]
    if not tasks:
        raise CLIUsageError(f"suite {args.workload} has no workload VTA can run")
    out_dir = pathlib.Path(args.output or f"study-{_safe(args.workload)}")
    meta = run_meta(_command(args))
    stop_on_sigterm()
    studies = []
    interrupted = False
    with opened_db(args) as db, opened_executor(args) as pool:
        for task in tasks:
            wdir = out_dir / _safe(task.name) if is_suite else out_dir
            bar = ProgressBar(task.space.size, f"{task.name} explore", enabled=not args.json)

            def on_progress(s, n, bar=bar):
                if n == 0 and s.resumed:
                    bar.update(s.resumed)  # already in the database
                bar.update(n, valid=s.valid, invalid=s.invalid)
            e3bar = [None]

            def on_e3(done, total, e3bar=e3bar, name=task.name):
                if e3bar[0] is None:
                    e3bar[0] = ProgressBar(total, f"{name} cost model", unit="fit",
                                           enabled=not args.json)
                e3bar[0].update(1)
            try:
                st = study_workload(task, runner, db=db, out_dir=wdir, options=options,
                                    workers=args.workers, meta=meta, on_progress=on_progress,
                                    on_e3_progress=on_e3, pool=pool)
            finally:
                bar.close()
                if e3bar[0] is not None:
                    e3bar[0].close()
            studies.append(st)
            if st.interrupted:
                interrupted = True
                break
            if not args.json:
                r = st.result
                adj = r["e2"]["adjacent"]
                ex = r["exploration"]
                print(f"{task.name}: {ex['measured']} configurations ({ex['resumed']} from the "
                      f"database, {ex['new']} measured in {ex['seconds']:.1f} s); "
                      f"{100 * r['e1']['invalid_fraction']:.1f} % invalid; "
                      f"P(neighbour valid | valid) {adj['p_neighbour_valid']:.3f} vs base rate "
                      f"{adj['base_rate']:.3f}; {adj['components']} valid components; "
                      f"report {st.report}")
    suite_report = None
    if is_suite and studies and not interrupted:
        suite_report = write_suite_report(args.workload, studies, out_dir, meta)
        if not args.json:
            print(f"suite summary: {suite_report}")
    if args.json:
        emit_json({"output": str(out_dir), "interrupted": interrupted,
                   "report": str(suite_report or (studies[-1].report if studies else "")),
                   "workloads": [_brief(s) for s in studies]})
    if interrupted:
        print("interrupted: the measurements so far are in the database; rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    return 0


def _brief(st) -> dict:
    """The JSON summary of one workload (study.json beside the report has every number)."""
    out = {"workload": st.task.name, "exploration": st.exploration,
           "report": str(st.report) if st.report else None}
    if st.result:
        r = st.result
        out.update(e1=r["e1"],
                   e2={m: {k: v for k, v in g.items() if k != "component_sizes"}
                       for m, g in r["e2"].items()},
                   e3={"summary": r["e3"]["summary"], "paired": r["e3"]["paired"],
                       "skipped": r["e3"]["skipped"], "n_test": r["e3"]["n_test"]},
                   best=r["best"])
    return out
