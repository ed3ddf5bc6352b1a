"""One-Shot on MetaSchedule against MetaSchedule's own search (docs/oneshot.md, "MetaSchedule").

Two parts:

* ``--offline``: leave-one-task-out on the offline data (``docs/data/oneshot_ms.npz``): per
  task, a predictor trained on the other tasks ranks the task's stored candidates; Kendall τ
  and Spearman ρ against the measured normalised throughput, and the best of the predicted
  top-k among the stored candidates relative to the best stored one.  The draft model alone
  (``-log draft latency``, one of the inputs) is the reference ranking.  No measurement.
* ``--online SPEC:KERNEL,...``: compile time on kernels of models that are *not* in the data
  (checked by structural hash).  Per kernel, in this one process: MetaSchedule (evolutionary
  + XGB, ``--ms-trials``, batch ``--ms-batch``) and one-shot (one batch of the frozen
  predictor's top-k for each ``--ks``), each in a fresh SQLite database of the shared
  format, through ``tune_model`` (the code ``vtatune tvm tune`` runs); the order alternates
  between kernels.  Search time starts when tuning starts (after task extraction, which both
  share).  Then the final best of every run is built and re-measured round-robin
  (``--remeasure`` rounds) so the latencies compare within one session.

Figures per kernel: tuning-time speedup = MetaSchedule's time to reach its final best ÷
one-shot's whole time; latency ratio = one-shot / MetaSchedule (re-measured); time-to-match =
MetaSchedule's time until its best-so-far is at most one-shot's latency (runner-measured),
÷ one-shot's time.  Goal (issue 15): speedup ≥ 10× at ≤ 5 % latency loss.

Usage::

    python scripts/bench_oneshot_ms.py --offline --json offline.json
    python scripts/bench_oneshot_ms.py --online 'resnet18:res=64,width=0.5:fused_conv2d1_add1_relu1' \\
        --ms-trials 64 --ks 16 --json online.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vtatune.backends.tvm.oneshot import (DEFAULT_DATA, N_CANDIDATE, OneShotMSData,
                                          OneShotMSPredictor, kendall_tau, spearman)

#: column of the draft model's log latency in a row (the first of the three draft symbols)
DRAFT_COL = N_CANDIDATE - 3


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- pure figures
def top_k_ratio(pred: np.ndarray, label: np.ndarray, k: int) -> float:
    """Best label among the ``k`` highest predictions ÷ the best label (1 = the best stored
    candidate is in the predicted top-k); labels are normalised throughput (higher = faster)."""
    order = np.argsort(-np.asarray(pred, dtype=np.float64), kind="stable")[:k]
    best = float(np.max(label))
    return float(np.max(np.asarray(label)[order])) / best if best > 0 else float("nan")


def time_to(curve: list, latency: float) -> float | None:
    """First time at which the best-so-far of ``curve`` [(seconds, best seconds, ...)] is at
    most ``latency`` (relative tolerance 1e-9); ``None`` if never."""
    for t, best, *_ in curve:
        if best <= latency * (1 + 1e-9):
            return t
    return None


def speedup_figures(ms_curve: list, ms_best: float, os_time: float, os_best: float,
                    ms_best_re: float | None = None, os_best_re: float | None = None) -> dict:
    """The per-kernel comparison (module docstring).  ``*_re``: re-measured latencies (the
    latency ratio uses them when given)."""
    t_final = time_to(ms_curve, ms_best)
    t_match = time_to(ms_curve, os_best)
    ratio = (os_best_re / ms_best_re) if (ms_best_re and os_best_re) else os_best / ms_best
    return {"ms_time_to_final_s": t_final, "oneshot_s": os_time,
            "speedup": t_final / os_time if t_final else None,
            "latency_ratio": ratio,
            "time_to_match_s": t_match,
            "match_speedup": t_match / os_time if t_match else None,
            "goal_met": bool(t_final and ratio <= 1.05 and t_final / os_time >= 10)}


# ----------------------------------------------------------------------------- offline
def offline(data: OneShotMSData, ks=(1, 8, 16, 64), seeds=(0,)) -> list[dict]:
    rows = []
    for t in sorted(np.unique(data.task)):
        test = data.task == t
        train = data.subset([u for u in np.unique(data.task) if u != t])
        y = data.y[test]
        draft = -data.x[test][:, DRAFT_COL].astype(np.float64)
        row = {"task": data.tasks[t]["name"], "hw": data.tasks[t]["hw"], "rows": int(test.sum()),
               "tau_draft": kendall_tau(draft, y), "rho_draft": spearman(draft, y)}
        taus, rhos, tops = [], [], {k: [] for k in ks}
        for s in seeds:
            pred = OneShotMSPredictor(seed=s).fit(train).predict(data.x[test])
            taus.append(kendall_tau(pred, y))
            rhos.append(spearman(pred, y))
            for k in ks:
                tops[k].append(top_k_ratio(pred, y, k))
        row.update({"tau": float(np.mean(taus)), "rho": float(np.mean(rhos)),
                    **{f"top{k}": float(np.mean(v)) for k, v in tops.items()},
                    **{f"top{k}_draft": top_k_ratio(draft, y, k) for k in ks}})
        rows.append(row)
        log(f"{row['task']}: tau {row['tau']:.3f} (draft {row['tau_draft']:.3f}), "
            f"top16 {row.get('top16', float('nan')):.3f}")
    return rows


# ----------------------------------------------------------------------------- online
def _tune(spec: str, kernel: str, db_path: Path, strategy: str, trials: int, batch: int,
          seed: int, predictor=None) -> dict:
    from vtatune.backends.tvm.env import make_target, target_label
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db
    target = make_target("llvm")
    model = load_model(spec, with_reference=False)
    start = [None]
    curve: list = []
    best = [math.inf]

    def progress(done: int, total: int) -> None:
        if start[0] is None:
            start[0] = time.perf_counter()

    def on_batch(name: str, n: int, b: float) -> None:
        best[0] = min(best[0], b if b and b > 0 else math.inf)
        done = (curve[-1][2] if curve else 0) + n
        curve.append((time.perf_counter() - start[0], best[0], done))

    with open_db(f"sqlite:///{db_path}") as db:
        rep = tune_model(model, target, db, trials=trials, trials_per_task=trials, batch=batch,
                         strategy=strategy, seed=seed, kernels=[kernel], progress=progress,
                         on_batch=on_batch, oneshot_model=predictor,
                         session=f"bench-oneshot:{strategy}")
        end = time.perf_counter()
        recs = [r for r in db.records() if r.ok and r.hw == target_label(target)]
    recs.sort(key=lambda r: r.mean_cost)
    return {"strategy": strategy, "trials": rep.measured, "batch": batch,
            "time_s": end - start[0] if start[0] else None, "curve": curve,
            "best_s": recs[0].mean_cost if recs else None, "counts": rep.counts,
            "search": rep.search, "db": str(db_path)}


def _best_module(db_path: Path, kernel_mod):
    """The scheduled module of the fastest stored record of ``db_path``."""
    from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord
    from tvm.s_tir.meta_schedule.database import Workload

    from vtatune.backends.tvm.store import to_ms_json
    from vtatune.backends.tvm.transfer import _apply
    from vtatune.db import open_db
    with open_db(f"sqlite:///{db_path}") as db:
        recs = sorted((r for r in db.records() if r.ok), key=lambda r: r.mean_cost)
    wl = Workload(kernel_mod)
    sch = _apply(MSRecord.from_json(to_ms_json(recs[0]), wl).trace, kernel_mod)
    return sch.mod if sch is not None else None


def remeasure(kernel_mod, modules: dict, rounds: int) -> dict:
    """Median over ``rounds`` round-robin timings (≥ 20 ms each) of every module."""
    import tvm
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    from vtatune.backends.tvm.env import make_target
    target = make_target("llvm")
    dev = tvm.cpu(0)
    infos = ArgInfo.from_entry_func(kernel_mod, remove_preproc=True)
    rng = np.random.default_rng(0)
    host = [rng.uniform(-1, 1, size=[int(x) for x in a.shape]).astype(str(a.dtype)) for a in infos]
    built, ref = {}, None
    for name, mod in modules.items():
        if mod is None:
            continue
        lib = tvm.compile(mod, target=target)
        args = [tvm.runtime.tensor(h, dev) for h in host]
        lib["main"](*args)
        out = args[-1].numpy()
        ref = out if ref is None else ref
        err = float(np.max(np.abs(out - ref)) / (np.max(np.abs(ref)) or 1.0))
        if err > 1e-3:          # both schedules compute the same kernel
            raise SystemExit(f"{name}: output differs from the first schedule's ({err:.2e})")
        built[name] = (lib.mod.time_evaluator("main", dev, number=1, repeat=1,
                                              min_repeat_ms=20), args)
    times = {n: [] for n in built}
    for i in range(rounds):
        names = list(built)
        for n in names[i % len(names):] + names[:i % len(names)]:   # rotate the order
            f, args = built[n]
            times[n].append(float(f(*args).mean))
    return {n: float(np.median(v)) for n, v in times.items()}


def online(specs: list[str], predictor: OneShotMSPredictor, data: OneShotMSData, ks: list[int],
           ms_trials: int, ms_batch: int, seeds: list[int], rounds: int, work: Path,
           out: dict, save) -> None:
    import tvm_ffi

    from vtatune.backends.tvm.env import make_target
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    seen = {t.get("shash") for t in data.tasks}
    target = make_target("llvm")
    runs = out.setdefault("runs", [])
    done = {(r["spec"], r["kernel"], r["seed"], r["strategy"], r.get("k")) for r in runs}
    for i, item in enumerate(specs):
        spec, _, kernel = item.rpartition(":")
        ks_mod = {k.name: k for k in extract_kernels(load_model(spec, with_reference=False), target)}
        if kernel not in ks_mod:
            raise SystemExit(f"{spec} has no kernel {kernel} ({', '.join(ks_mod)})")
        kmod = ks_mod[kernel].mod
        if str(int(tvm_ffi.structural_hash(kmod))) in seen:
            raise SystemExit(f"{spec}:{kernel} is in the predictor's data: not held out")
        for seed in seeds:
            plan = [("evolutionary", None)] + [("oneshot", k) for k in ks]
            if (i + seed) % 2:
                plan.reverse()
            for strategy, k in plan:
                if (spec, kernel, seed, strategy, k) in done:
                    continue
                db = work / f"{abs(hash((spec, kernel)))}_{seed}_{strategy}_{k}.db"
                if db.exists():
                    db.unlink()
                log(f"{spec}:{kernel} seed {seed}: {strategy}" + (f" k={k}" if k else ""))
                r = _tune(spec, kernel, db, strategy, k or ms_trials, k or ms_batch, seed,
                          predictor if strategy == "oneshot" else None)
                r.update({"spec": spec, "kernel": kernel, "seed": seed, "k": k,
                          "load": os.getloadavg()})
                runs.append(r)
                log(f"  {r['trials']} trials, {r['time_s']:.0f} s, best "
                    f"{(r['best_s'] or math.nan) * 1e6:.1f} us")
                save()
            mine = [r for r in runs if (r["spec"], r["kernel"], r["seed"]) == (spec, kernel, seed)]
            if all("remeasured_s" in r for r in mine):
                continue
            mods = {f"{r['strategy']}:{r['k']}": _best_module(Path(r["db"]), kmod) for r in mine}
            re = remeasure(kmod, mods, rounds)
            for r in mine:
                r["remeasured_s"] = re.get(f"{r['strategy']}:{r['k']}")
            save()
    out["summary"] = summarize(runs, budgets=(64, 128, 192, 256))


def prefix(curve: list, trials: int) -> list:
    """The points of a best-so-far curve [(seconds, best, trials so far)] up to ``trials``."""
    return [c for c in curve if c[2] <= trials]


def summarize(runs: list[dict], budgets=(64,)) -> list[dict]:
    """One row per (kernel, seed, k, MetaSchedule budget): the budgets are prefixes of the
    one MetaSchedule run (its first 64 trials are what a 64-trial run does) and the full run.
    The re-measured latency is the full run's best; a shorter budget's best (and so its
    latency ratio) is runner-measured."""
    rows = []
    for key in sorted({(r["spec"], r["kernel"], r["seed"]) for r in runs}):
        mine = [r for r in runs if (r["spec"], r["kernel"], r["seed"]) == key]
        base = [r for r in mine if r["strategy"] == "evolutionary"]
        if not base or base[0]["best_s"] is None:
            continue
        b = base[0]
        curve = [tuple(c) for c in b["curve"]]
        for r in mine:
            if r["strategy"] != "oneshot" or r["best_s"] is None:
                continue
            for budget in sorted({*(x for x in budgets if x < b["trials"]), b["trials"]}):
                part = prefix(curve, budget)
                if not part:
                    continue
                full = budget == b["trials"]
                ms_best = part[-1][1]
                fig = speedup_figures(part, ms_best, r["time_s"], r["best_s"],
                                      b.get("remeasured_s") if full else None,
                                      r.get("remeasured_s") if full else None)
                rows.append({"spec": key[0], "kernel": key[1], "seed": key[2], "k": r["k"],
                             "ms_trials": part[-1][2], "ms_best_us": ms_best * 1e6,
                             "oneshot_best_us": r["best_s"] * 1e6,
                             "ms_remeasured_us": ((b.get("remeasured_s") or math.nan) * 1e6
                                                  if full else None),
                             "oneshot_remeasured_us": (r.get("remeasured_s") or math.nan) * 1e6,
                             "ms_time_s": part[-1][0], **fig})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--offline", action="store_true")
    ap.add_argument("--predictor-seeds", default="0,1,2")
    ap.add_argument("--online", default=None, metavar="SPEC:KERNEL[;SPEC:KERNEL]")
    ap.add_argument("--ks", default="16")
    ap.add_argument("--ms-trials", type=int, default=64)
    ap.add_argument("--ms-batch", type=int, default=16)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--remeasure", type=int, default=10)
    ap.add_argument("--work", default=None, help="directory of the per-run databases")
    ap.add_argument("--json", required=True, help="results file (resumed when it exists)")
    args = ap.parse_args(argv)
    data = OneShotMSData.load(args.data)
    path = Path(args.json)
    out = json.loads(path.read_text()) if path.is_file() else {}
    out.update({"machine": platform.node(), "cpu": platform.processor(), "args": vars(args),
                "data": {"path": args.data, "digest": data.digest(), "tasks": data.tasks}})

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, path)

    if args.offline:
        t0 = time.perf_counter()
        out["offline"] = offline(data, seeds=[int(s) for s in args.predictor_seeds.split(",")])
        out["offline_s"] = time.perf_counter() - t0
        save()
    if args.online is None and out.get("runs"):      # recompute the figures of stored runs
        out["summary"] = summarize(out["runs"], budgets=(64, 128, 192, 256))
        save()
        for row in out["summary"]:
            print(json.dumps(row))
    if args.online:
        tic = time.perf_counter()
        pred = OneShotMSPredictor().fit(data)
        out["predictor"] = {"fingerprint": pred.fingerprint(),
                            "fit_s": time.perf_counter() - tic, "rows": int(data.y.size)}
        work = Path(args.work or tempfile.mkdtemp(prefix="bench_oneshot_ms_"))
        work.mkdir(parents=True, exist_ok=True)
        online([s.strip() for s in args.online.split(";") if s.strip()], pred, data,
               [int(k) for k in args.ks.split(",")], args.ms_trials, args.ms_batch,
               [int(s) for s in args.seeds.split(",")], args.remeasure, work, out, save)
        save()
        for row in out["summary"]:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
