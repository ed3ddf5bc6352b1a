"""``vtatune tvm ...``: the apache-tvm backend (CPU/GPU kernels, MetaSchedule, transfer-tuning).

Everything TVM-related is imported inside the commands, so the rest of the CLI works without
apache-tvm installed.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Iterator

from ..errors import CLIUsageError
from .common import add_db, add_json, emit_json, open_database, positive


def _add_common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
    p.add_argument("--target", default="llvm",
                   help="llvm (host CPU, all physical cores), cuda, cuda:ARCH, or a JSON target dict")
    p.add_argument("--cores", type=int, default=None, help="num-cores of an llvm target")
    if db:
        add_db(p)
    add_json(p)


def register(sub) -> None:
    top = sub.add_parser("tvm", help="CPU/GPU kernels on apache-tvm: tune, transfer, run")
    tsub = top.add_subparsers(dest="tvm_command", required=True, metavar="COMMAND")

    p = tsub.add_parser("models", help="the built-in model zoo and its options")
    add_json(p)
    p.set_defaults(func=cmd_models)

    p = tsub.add_parser("tasks", help="a model's kernels (tasks), their classes and tuning state")
    p.add_argument("model", help="zoo name[:key=value,...] or an .onnx file")
    _add_common(p)
    p.set_defaults(func=cmd_tasks)

    p = tsub.add_parser("tune", help="tune a model's kernels with MetaSchedule (evolutionary + XGB)")
    p.add_argument("model")
    _add_common(p)
    p.add_argument("--trials", type=int, required=True, help="measurements for the whole model")
    p.add_argument("--trials-per-task", type=int, default=None, help="cap per kernel")
    p.add_argument("--batch", type=int, default=32, help="candidates per search round (default 32)")
    p.add_argument("--kernels", default=None, help="comma-separated task names to tune (default all)")
    p.add_argument("--cost-model", default="xgb", choices=["xgb", "random", "mlp"])
    p.add_argument("--strategy", default="evolutionary",
                   choices=["evolutionary", "pruner", "oneshot"],
                   help="MetaSchedule's evolutionary search, Pruner's draft-then-verify "
                        "(docs/pruner.md), or one-shot: one batch of the frozen predictor's "
                        "top-k per kernel, k = --trials-per-task (default --batch) "
                        "(docs/oneshot.md)")
    p.add_argument("--oneshot-model", default=None, metavar="FILE",
                   help="with --strategy oneshot: a saved predictor (default "
                        "$VTATUNE_ONESHOT_MS_MODEL, else the one trained on the shipped data)")
    p.add_argument("--verifier", default=None, choices=["xgb", "mlp"],
                   help="with --strategy pruner: the learned model that verifies the drafts, "
                        "MetaSchedule's XGB (default, as --cost-model) or a small PaCM-like "
                        "MLP (docs/pruner.md)")
    p.add_argument("--moa-source", default=None, metavar="FILE",
                   help="with --strategy pruner: a saved source MLP (.npz) adapted to this "
                        "target by MoA (momentum 0.99 every 4 updates); implies --verifier mlp")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--build-timeout", type=float, default=60.0, help="seconds per build (retried x4)")
    p.add_argument("--runs", type=int, default=3, help="timed repeats per candidate")
    p.set_defaults(func=cmd_tune)

    p = tsub.add_parser("transfer", help="transfer-tune a model from tuned source models")
    p.add_argument("model")
    p.add_argument("--from", dest="sources", required=True, metavar="MODEL[,MODEL]",
                   help="tuned source models (';' separates specs that contain commas)")
    p.add_argument("--select", type=int, default=None,
                   help="use only the N sources with the best class coverage (default: all)")
    _add_common(p)
    p.add_argument("--runs", type=int, default=3, help="timed repeats per candidate")
    p.add_argument("--e2e-runs", type=int, default=10, help="timed end-to-end runs per build")
    p.set_defaults(func=cmd_transfer)

    p = tsub.add_parser("run", help="compile a model with the best records and time it against the untuned build")
    p.add_argument("model")
    _add_common(p)
    p.add_argument("--runs", type=int, default=10, help="timed end-to-end runs (median reported)")
    p.set_defaults(func=cmd_run)

    p = tsub.add_parser("export", help="write the MetaSchedule records as a MetaSchedule JSON database")
    p.add_argument("work_dir")
    p.add_argument("--hw", default=None, help="only records of this target label (e.g. llvm-znver4-2c)")
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_export)

    p = tsub.add_parser("import", help="import a MetaSchedule JSON database directory")
    p.add_argument("work_dir")
    add_db(p)
    add_json(p)
    p.set_defaults(func=cmd_import)


# ---------------------------------------------------------------------- helpers
def _target(args: argparse.Namespace) -> Any:
    from ..backends.tvm.env import make_target
    positive(args.cores, "--cores")
    return make_target(args.target, num_cores=args.cores)


@contextlib.contextmanager
def _bar(desc: str, enabled: bool) -> Iterator[Any]:
    """A tqdm progress bar on stderr (a no-op without tqdm or with --json)."""
    bar = None
    if enabled:
        try:
            from tqdm import tqdm
            bar = tqdm(desc=desc, unit="trial", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None

    def update(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()
    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def _us(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e6:,.1f} us"


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.3f} ms"


# ---------------------------------------------------------------------- commands
def cmd_models(args: argparse.Namespace) -> int:
    from ..backends.tvm import zoo
    rows = [{"name": m.name, "description": m.description, "options": dict(m.defaults)}
            for m in zoo.MODELS.values()]
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
            print(f"{r['name']:<12} {r['description']}\n{'':<12} options: {opts}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ..backends.tvm.importer import extract_kernels, load_model
    from ..backends.tvm.store import MSDatabase
    target = _target(args)
    model = load_model(args.model, with_reference=False)
    kernels = extract_kernels(model, target)
    db = open_database(args)
    try:
        store = MSDatabase(db, target)
        rows = []
        for k in kernels:
            hit = store.index.find(k.mod)
            n = db.count(hit[1], store.hw) if hit else 0
            best = db.best(hit[1], store.hw, k=1) if hit else []
            rows.append({**k.describe(), "trials": n,
                         "best_us": best[0].mean_cost * 1e6 if best else None})
    finally:
        db.close()
    if args.json:
        emit_json({"model": model.spec, "target": str(target), "kernels": rows})
    else:
        print(f"{model.spec}: {len(rows)} kernels on {target.kind.name} ({store.hw})")
        print(f"{'kernel':<36} {'class':<30} {'calls':>5} {'MFLOP':>9} {'trials':>6} {'best':>12}")
        for r in rows:
            best = "-" if r["best_us"] is None else f"{r['best_us']:,.1f} us"
            print(f"{r['name']:<36} {r['class']:<30} {r['weight']:>5} {r['flops'] / 1e6:>9.2f} "
                  f"{r['trials']:>6} {best:>12}")
    return 0


def _verifier(args: argparse.Namespace) -> tuple[str, Any]:
    """(verifier name, the ``cost_model`` argument of ``tune_model``) of ``--verifier`` and
    ``--moa-source``; ``CLIUsageError`` naming the option for a bad combination or file."""
    import os
    if args.verifier is None and args.moa_source is None:
        return "", args.cost_model
    opt = "--moa-source" if args.moa_source is not None else "--verifier"
    if args.strategy != "pruner":
        raise CLIUsageError(f"{opt} needs --strategy pruner (it verifies Pruner's drafts)")
    if args.moa_source is not None and args.verifier == "xgb":
        raise CLIUsageError("--moa-source adapts an MLP: it needs --verifier mlp, not xgb")
    if args.verifier == "xgb":
        return "xgb", args.cost_model
    if args.cost_model != "xgb":
        raise CLIUsageError(f"{opt} chooses the learned model: drop --cost-model "
                            f"{args.cost_model}")
    if args.moa_source is not None and not os.path.isfile(args.moa_source):
        raise CLIUsageError(f"--moa-source: no such file: {args.moa_source}")
    from ..backends.tvm.mlp_model import MLPCostModel, MoAMLPCostModel
    from ..errors import ConfigurationError
    seed = 0 if args.seed is None else args.seed
    if args.moa_source is None:
        return "mlp", MLPCostModel(seed=seed)
    try:
        return "moa", MoAMLPCostModel(args.moa_source, seed=seed)
    except ConfigurationError as exc:
        raise CLIUsageError(f"--moa-source: {exc}") from None


def _oneshot_model(args: argparse.Namespace) -> Any:
    """The loaded ``--oneshot-model`` (``None``: the default predictor); ``CLIUsageError``
    naming the option for a bad combination or file."""
    if args.strategy != "oneshot":
        if args.oneshot_model is not None:
            raise CLIUsageError("--oneshot-model needs --strategy oneshot")
        return None
    if args.cost_model != "xgb":
        raise CLIUsageError(f"--strategy oneshot uses its frozen predictor: drop --cost-model "
                            f"{args.cost_model}")
    from ..backends.tvm.oneshot import resolve_predictor
    from ..errors import ConfigurationError
    try:
        return resolve_predictor(args.oneshot_model)
    except ConfigurationError as exc:
        raise CLIUsageError(f"--oneshot-model: {exc}") from None


def cmd_tune(args: argparse.Namespace) -> int:
    from ..backends.tvm.importer import load_model
    from ..backends.tvm.tune import tune_model
    for name in ("trials", "trials_per_task", "batch", "runs"):
        positive(getattr(args, name), "--" + name.replace("_", "-"))
    if args.build_timeout <= 0:
        raise CLIUsageError(f"--build-timeout must be positive, got {args.build_timeout}")
    verifier, cost_model = _verifier(args)
    oneshot_model = _oneshot_model(args)
    target = _target(args)
    model = load_model(args.model, with_reference=False)
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()] if args.kernels else None
    db = open_database(args)
    try:
        with _bar(f"tune {model.spec}", not args.json) as bar:
            rep = tune_model(model, target, db, trials=args.trials,
                             trials_per_task=args.trials_per_task, batch=args.batch,
                             cost_model=cost_model, strategy=args.strategy,
                             seed=args.seed, kernels=kernels,
                             build_timeout=args.build_timeout, runs=args.runs, progress=bar,
                             session=f"tune:{model.spec}", oneshot_model=oneshot_model)
    finally:
        db.close()
    if verifier:
        rep.search["verifier"] = verifier
    if args.json:
        emit_json(rep.to_dict())
    else:
        print(f"{model.spec}: {rep.measured} measured now, {rep.resumed_from} stored before, "
              f"in {rep.wall_s:.0f} s")
        for k in rep.kernels:
            print(f"  {k['name']:<36} {k['trials']:>5} trials  best {_us(None if k['best_us'] is None else k['best_us'] / 1e6)}")
        bad = {k: v for k, v in rep.counts.items() if k != "ok" and v}
        if bad:
            print("  failures: " + ", ".join(f"{k} {v}" for k, v in bad.items()))
        calls = rep.search.get("learned_calls_per_round")
        if calls:
            print(f"  {'predictor' if args.strategy == 'oneshot' else 'learned-model'} calls "
                  f"per round: mean {sum(calls) / len(calls):.0f} "
                  f"over {len(calls)} rounds ({rep.search.get('strategy')}"
                  + (f", verifier {verifier})" if verifier else ")"))
        if rep.builder.get("timed_out"):
            print(f"vtatune: warning: {rep.builder['timed_out']} builds timed out even when "
                  "retried alone (stored as build_timeout, not as slow schedules); is the "
                  "machine busy? raise --build-timeout", file=sys.stderr)
    if rep.interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _split_sources(text: str) -> list[str]:
    sep = ";" if ";" in text else ","
    # "resnet18:res=64,width=0.5" contains commas: a part with "=" but no ":" continues
    # the previous spec when "," separates
    parts = [p.strip() for p in text.split(sep) if p.strip()]
    if sep == ",":
        merged: list[str] = []
        for p in parts:
            if merged and "=" in p and ":" not in p:
                merged[-1] += "," + p
            else:
                merged.append(p)
        parts = merged
    return parts


def cmd_transfer(args: argparse.Namespace) -> int:
    from ..backends.tvm import runtime
    from ..backends.tvm.importer import load_model
    from ..backends.tvm.transfer import transfer
    positive(args.select, "--select")
    positive(args.runs, "--runs")
    positive(args.e2e_runs, "--e2e-runs")
    target = _target(args)
    model = load_model(args.model, with_reference=False)
    sources = [load_model(s, with_reference=False) for s in _split_sources(args.sources)]
    if not sources:
        raise CLIUsageError("--from names no model")
    db = open_database(args)
    try:
        with _bar(f"transfer {model.spec}", not args.json) as bar:
            rep = transfer(model, sources, target, db, select=args.select, runs=args.runs,
                           progress=bar)
    finally:
        db.close()
    lat = {}
    for variant, database in (("untuned", None), ("faithful", rep.database("faithful")),
                              ("fixed", rep.database("fixed"))):
        _, lat[variant] = runtime.build_and_measure(model, target, database, runs=args.e2e_runs)
    out = rep.to_dict()
    out["latency_s"] = {k: v.median for k, v in lat.items()}
    out["speedup"] = {k: lat["untuned"].median / lat[k].median for k in ("faithful", "fixed")}
    if args.json:
        emit_json(out)
        return 0
    print(f"{model.spec} from {', '.join(rep.sources)}: {rep.measured} candidates measured "
          f"in {rep.search_s:.1f} s")
    print(f"{'kernel':<36} {'cand':>4} {'valid':>5} {'untuned':>12} {'faithful':>12} {'fixed':>12}  source")
    for k in rep.kernels:
        reused = f"  (identical to {k.reused_from}: reuse, not transfer)" if k.reused_from else ""
        print(f"{k.name:<36} {k.candidates:>4} {k.valid:>5} {_us(k.untuned_s):>12} "
              f"{_us(k.faithful_s):>12} {_us(k.fixed_s):>12}  {k.fixed_from or 'untuned'}{reused}")
    for v in ("untuned", "faithful", "fixed"):
        sp = "" if v == "untuned" else f"  speedup {out['speedup'][v]:.2f}x"
        print(f"end-to-end {v:<9} {_ms(lat[v].median)}{sp}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..backends.tvm import runtime
    from ..backends.tvm.importer import load_model
    from ..backends.tvm.store import MSDatabase
    positive(args.runs, "--runs")
    target = _target(args)
    model = load_model(args.model)
    db = open_database(args)
    try:
        exe0, untuned = runtime.build_and_measure(model, target, None, runs=args.runs)
        exe1, tuned = runtime.build_and_measure(model, target, MSDatabase(db, target),
                                                runs=args.runs)
        out0 = runtime.run(exe0, model, target)
        out1 = runtime.run(exe1, model, target)
    finally:
        db.close()
    err = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
              for a, b in zip(out0, out1))
    ref_err = None
    if model.reference is not None:
        ref_err = float(np.max(np.abs(out1[0].astype(np.float64) - model.reference)))
    res = {"model": model.spec, "target": str(target), "untuned_s": untuned.median,
           "tuned_s": tuned.median, "speedup": untuned.median / tuned.median,
           "max_abs_diff_vs_untuned": err, "max_abs_diff_vs_framework": ref_err,
           "runs": args.runs}
    if args.json:
        emit_json(res)
    else:
        print(f"{model.spec}: untuned {_ms(untuned.median)}, with best records "
              f"{_ms(tuned.median)} ({res['speedup']:.2f}x), median of {args.runs} runs")
        print(f"  outputs: max |tuned - untuned| = {err:.3g}"
              + ("" if ref_err is None else f", max |tuned - framework| = {ref_err:.3g}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..backends.tvm.store import export_json
    db = open_database(args, readonly=True)
    try:
        nw, nr = export_json(db, args.work_dir, hw=args.hw)
    finally:
        db.close()
    if args.json:
        emit_json({"workloads": nw, "records": nr, "work_dir": args.work_dir})
    else:
        print(f"wrote {nw} workloads and {nr} records to {args.work_dir}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..backends.tvm.store import import_json
    db = open_database(args)
    try:
        read, new = import_json(db, args.work_dir, session=f"import:{args.work_dir}")
    finally:
        db.close()
    if args.json:
        emit_json({"read": read, "new": new})
    else:
        print(f"read {read} records, {new} new")
    return 0
