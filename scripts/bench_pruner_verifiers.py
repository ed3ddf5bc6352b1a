"""Pruner's verifier on MetaSchedule: MLP vs XGB (platform S), MoA vs scratch vs XGB (platform T).

Issue 15; docs/pruner.md, section "MLP verifier and MoA on MetaSchedule".  Reuses the kernels,
``Stamp`` and ``time_to`` of ``bench_pruner_ms.py``; every run is ``PrunerSearch`` with the
same trials, batch, builder, runner and seed, only the verifier (the cost model) changes.

* Phase A, platform S = the host llvm target (``make_target("llvm")``): verifier ``xgb``
  (MetaSchedule's XGB) and ``mlp`` (``MLPCostModel``, refit at every update).  Every measured
  candidate is stored in a SQLite database of the shared format (``Recorder`` of tune.py over
  ``MSDatabase``), under the hw label of S and a session naming the run.
* Source: ``pretrain_source`` on the phase-A records of the runs of ``--source-seeds`` (both
  kernels, both verifiers), featurised for S.
* Phase B, platform T = the same machine compiling for an AVX2-only CPU
  (``{"kind": "llvm", "mcpu": "haswell"}``); the draft model gets T's ISA (256-bit vectors, 16
  vector registers, half the fp32 peak of S).  Verifiers ``moa`` (``MoAMLPCostModel(source)``,
  momentum 0.99, adaptation every 4 updates), ``scratch`` (``MoAMLPCostModel(None,
  scratch=True)``: a fresh net at every update, with its own input normalisation — nothing
  from the source) and ``xgb``.

Every verifier is wrapped by ``Probe``, which counts its calls and time and keeps, for each
measured batch, the scores the verifier gave those candidates *before* they were measured
(the verify step's ``predict``) next to their measured latencies: the online ranking quality
(``ranking``: Kendall tau and pairwise accuracy per batch).

Output: one JSON file, rewritten after every run; runs already in it are skipped (resume).

Usage:
  python scripts/bench_pruner_verifiers.py --trials 64 --batch 8 --seeds 0,1 \\
      --work /work/bench_verifiers --out docs/data/pruner_ms_verifiers.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------- pure summaries
# (no TVM needed; tested in tests/tvm_backend/test_bench_pruner_verifiers.py)


def _lat(v: Any) -> float:
    """A stored latency: ``None`` (JSON of a failed measurement) is +inf."""
    return math.inf if v is None else float(v)


def ranking(scores: list, latencies: list) -> dict:
    """Ranking quality of one measured batch.  Pairs: all (i, j) whose latencies differ (a
    failure = +inf latency, so two failures are not a pair).  A pair is concordant when the
    faster candidate got the higher score, discordant when it got the lower one; equal scores
    count as neither.  ``tau`` = (concordant − discordant) / pairs (Kendall's tau over the
    pairs of distinct latencies); ``acc`` = (concordant + ties / 2) / pairs.  Pairs whose score
    is unknown (nan) are left out.  ``None`` values when no pair."""
    s = [float("nan") if v is None else float(v) for v in scores]
    lat = [_lat(v) for v in latencies]
    conc = disc = ties = 0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            if lat[i] == lat[j] or math.isnan(s[i]) or math.isnan(s[j]):
                continue
            fast, slow = (i, j) if lat[i] < lat[j] else (j, i)
            if s[fast] > s[slow]:
                conc += 1
            elif s[fast] < s[slow]:
                disc += 1
            else:
                ties += 1
    n = conc + disc + ties
    if not n:
        return {"pairs": 0, "tau": None, "acc": None}
    return {"pairs": n, "tau": (conc - disc) / n, "acc": (conc + ties / 2) / n}


def ranking_summary(batches: list, first: int = 1) -> dict:
    """Mean tau / accuracy over the measured batches ``first``, ``first`` + 1, … (default: all
    batches after the first) that have at least one pair; also their number."""
    taus, accs = [], []
    for b in batches[first:]:
        r = ranking(b["scores"], b["latencies"])
        if r["pairs"]:
            taus.append(r["tau"])
            accs.append(r["acc"])
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return {"batches": len(taus), "tau": mean(taus), "acc": mean(accs)}


def best_at(curve: list, trials: int) -> float:
    """Best latency after ``trials`` measured trials (the last stamp with n ≤ trials)."""
    best = math.inf
    for _, n, b in curve:
        if n <= trials:
            best = _lat(b)
    return best


def time_to(curve: list, target_s: float) -> float | None:
    """Seconds since start at the first stamp whose best is ≤ ``target_s`` (as
    bench_pruner_ms.time_to)."""
    for t, _, best in curve:
        if _lat(best) <= target_s * (1 + 1e-9):
            return t
    return None


def compare(results: list, phase: str, reference: str) -> list:
    """One row per (kernel, seed) of ``phase``: every method's final best (µs) at equal
    trials, its ratio to ``reference``'s (> 1 = slower kernel than the reference's), and
    the search time each method needs to reach the reference's final best."""
    rows = []
    runs = [r for r in results if r["phase"] == phase]
    for kernel, seed in sorted({(r["kernel"], r["seed"]) for r in runs}):
        by = {r["method"]: r for r in runs if r["kernel"] == kernel and r["seed"] == seed}
        if reference not in by:
            continue
        ref = by[reference]
        target = _lat(ref["best_s"])
        row = {"kernel": kernel, "seed": seed, "reference": reference, "methods": {}}
        for m, r in sorted(by.items()):
            best = _lat(r["best_s"])
            row["methods"][m] = {
                "trials": r["trials"], "best_us": best * 1e6,
                "ratio_to_ref": best / target if math.isfinite(target) else None,
                "time_to_ref_best_s": time_to(r["curve"], target),
                "wall_s": r["wall_s"],
                "learned_per_round": (sum(r["learned_calls_per_round"])
                                      / max(1, len(r["learned_calls_per_round"]))),
                "verifier_s": r["verifier_predict_s"] + r["verifier_update_s"],
                "ranking_after_first": ranking_summary(r["batches"], 1),
                "ranking_first": ranking_summary(r["batches"][:1], 0),
            }
        rows.append(row)
    return rows


def geomean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def run_key(phase: str, kernel: str, method: str, seed: int) -> str:
    return f"{phase}-{kernel}-{method}-s{seed}"


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def report(results: list) -> list:
    """Markdown lines: one table per phase (final best at equal trials, verifier cost,
    online ranking), geometric means of the ratios, and best-vs-trials curves."""
    out = []
    for phase, ref, title in (("A", "xgb", "Phase A (platform S): MLP vs XGB verifier"),
                              ("B", "xgb", "Phase B (platform T): MoA vs scratch vs XGB")):
        rows = compare(results, phase, ref)
        if not rows:
            continue
        methods = sorted({m for row in rows for m in row["methods"]},
                         key=lambda m: ["xgb", "xgb0", "mlp", "moa", "scratch"].index(m))
        out += [f"**{title}**", "",
                "| kernel | seed | " + " | ".join(f"{m} final (µs)" for m in methods)
                + " | " + " | ".join(f"{m} / xgb" for m in methods if m != ref)
                + " | verifier s (" + " / ".join(methods) + ") | calls/round ("
                + " / ".join(methods) + ") | τ after batch 1 (" + " / ".join(methods)
                + ") | s to xgb's final (" + " / ".join(methods)
                + ") | wall s (" + " / ".join(methods) + ") |",
                "|---|---|" + "---|" * (2 * len(methods) - 1 + 5)]
        for row in rows:
            m = row["methods"]
            g = lambda k, f, fmt="{:.1f}": " / ".join(
                _f(f(m[x]), fmt) if x in m else "n.r." for x in methods)
            out.append(
                f"| {row['kernel']} | {row['seed']} | "
                + " | ".join(_f(m[x]["best_us"]) if x in m else "n.r." for x in methods)
                + " | " + " | ".join(_f(m[x]["ratio_to_ref"], "{:.2f}") if x in m else "n.r."
                                     for x in methods if x != ref)
                + " | " + g(0, lambda v: v["verifier_s"])
                + " | " + g(0, lambda v: v["learned_per_round"], "{:.0f}")
                + " | " + g(0, lambda v: v["ranking_after_first"]["tau"], "{:+.2f}")
                + " | " + g(0, lambda v: v["time_to_ref_best_s"], "{:.0f}")
                + " | " + g(0, lambda v: v["wall_s"], "{:.0f}") + " |")
        out.append("")
        for x in methods:
            if x == ref:
                continue
            ratios = [row["methods"][x]["ratio_to_ref"] for row in rows if x in row["methods"]]
            taus = [row["methods"][x]["ranking_after_first"]["tau"] for row in rows
                    if x in row["methods"]]
            taus = [t for t in taus if t is not None]
            wins = sum(1 for r in ratios if r is not None and r < 1)
            out.append(f"* {x} / {ref} final latency: geometric mean {_f(geomean(ratios), '{:.2f}')}"
                       f" over {len(ratios)} runs; {x} lower in {wins} of {len(ratios)}; "
                       f"mean τ after batch 1: {_f(sum(taus) / len(taus) if taus else None, '{:+.2f}')}")
        # MoA's predictor is the source for batches 1-4 and the net adapted at update 4 for
        # batches 5-8 (period 4): the mean τ of each part, for every method
        runs = [r for r in results if r["phase"] == phase]
        for x in methods:
            parts = []
            for lo, hi in ((0, 1), (1, 4), (4, 8)):
                vals = [ranking_summary(r["batches"][lo:hi], 0)["tau"] for r in runs
                        if r["method"] == x]
                vals = [v for v in vals if v is not None]
                label = f"batch {hi}" if hi == lo + 1 else f"batches {lo + 1}–{hi}"
                parts.append(f"{label}: "
                             f"{_f(sum(vals) / len(vals) if vals else None, '{:+.2f}')}")
            out.append(f"* {x}: mean τ per run, " + "; ".join(parts))
        reft = [row["methods"][ref]["ranking_after_first"]["tau"] for row in rows]
        reft = [t for t in reft if t is not None]
        out.append(f"* {ref}: mean τ after batch 1: "
                   f"{_f(sum(reft) / len(reft) if reft else None, '{:+.2f}')}")
        out.append("")
    out += ["Best latency (µs) after 8, 16, …, n trials:", "", "```"]
    for r in sorted(results, key=lambda r: (r["phase"], r["seed"], r["kernel"], r["method"])):
        n = r["trials"]
        pts = [best_at(r["curve"], k) * 1e6 for k in range(r["batch"], n + 1, r["batch"])]
        out.append(f"{r['phase']} s{r['seed']} {r['kernel']:14s} {r['method']:8s} "
                   + " ".join(_f(p) for p in pts))
    out.append("```")
    return out


# --------------------------------------------------------------------------- tuning (TVM)
def _tvm_parts() -> dict:
    """Import TVM and the project's TVM backend only when tuning (the summaries above do not
    need them)."""
    from vtatune.backends.tvm.env import (load_intrinsics_for, make_target, require_tvm,
                                          target_cores, target_label)
    tvm = require_tvm()
    import tvm_ffi
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    import bench_pruner_ms as base
    from vtatune.backends.tvm.builder import RetryingBuilder
    from vtatune.backends.tvm.mlp_model import (MLPCostModel, MoAMLPCostModel, _latency,
                                                load_rank_model, pretrain_source,
                                                save_rank_model)
    from vtatune.backends.tvm.pruner import PrunerSearch, host_params
    from vtatune.backends.tvm.store import MSDatabase
    from vtatune.backends.tvm.tune import Recorder, local_runner

    @derived_object
    class Probe(ms.cost_model.PyCostModel):
        """Delegates to ``inner``; counts candidates scored per round, seconds in predict and
        update, and keeps per measured batch the scores predicted before measuring."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner
            self.per_round: list[int] = [0]
            self.predict_s = 0.0
            self.update_s = 0.0
            self.last: dict[int, float] = {}
            self.batches: list[dict] = []

        def load(self, path: str) -> None:
            self.inner.load(path)

        def save(self, path: str) -> None:
            self.inner.save(path)

        def predict(self, context: Any, candidates: list) -> np.ndarray:
            candidates = list(candidates)
            t0 = time.perf_counter()
            out = np.asarray(self.inner.predict(context, candidates), dtype=np.float64)
            self.predict_s += time.perf_counter() - t0
            self.per_round[-1] += len(candidates)
            for c, s in zip(candidates, out):
                self.last[int(tvm_ffi.structural_hash(c.sch.mod))] = float(s)
            return out

        def update(self, context: Any, candidates: list, results: list) -> None:
            candidates = list(candidates)
            scores = [self.last.get(int(tvm_ffi.structural_hash(c.sch.mod))) for c in candidates]
            lats = [_latency(r.run_secs) for r in results]
            self.batches.append({"scores": scores,
                                 "latencies": [v if math.isfinite(v) else None for v in lats]})
            self.last = {}
            t0 = time.perf_counter()
            self.inner.update(context, candidates, results)
            self.update_s += time.perf_counter() - t0
            self.per_round.append(0)

    return dict(tvm=tvm, ms=ms, base=base, make_target=make_target, target_label=target_label,
                target_cores=target_cores, load_intrinsics_for=load_intrinsics_for,
                RetryingBuilder=RetryingBuilder, MLPCostModel=MLPCostModel,
                MoAMLPCostModel=MoAMLPCostModel, load_rank_model=load_rank_model,
                pretrain_source=pretrain_source, save_rank_model=save_rank_model,
                PrunerSearch=PrunerSearch, host_params=host_params, MSDatabase=MSDatabase,
                Recorder=Recorder, local_runner=local_runner, Probe=Probe)


#: platform T: an AVX2-only CPU (the host runs its code); the draft model's ISA follows it
T_TARGET = {"kind": "llvm", "mcpu": "haswell"}


def platform_of(P: dict, phase: str) -> tuple[Any, Any]:
    """(target, HostParams) of platform S (phase A) or T (phase B)."""
    if phase == "A":
        target = P["make_target"]("llvm")
        return target, P["host_params"](P["target_cores"](target))
    target = P["make_target"](dict(T_TARGET))
    hp = P["host_params"](P["target_cores"](target))
    hp = dataclasses.replace(hp, vector_bits=256, vector_regs=16, peak_flops=hp.peak_flops / 2,
                             cpu=f"{hp.cpu} as haswell (AVX2)")
    return target, hp


def make_verifier(P: dict, method: str, target: Any, hp: Any, seed: int, source: Any) -> Any:
    if method == "xgb":
        return P["ms"].CostModel.create("xgb", num_tuning_cores=P["target_cores"](target))
    if method == "xgb0":   # XGB without its 100-sample warm-up: trained from batch 1
        return P["ms"].CostModel.create("xgb", num_tuning_cores=P["target_cores"](target),
                                        num_warmup_samples=0)
    if method == "mlp":
        return P["MLPCostModel"](hp=hp, seed=seed)
    if method == "moa":
        return P["MoAMLPCostModel"](source, momentum=0.99, period=4, seed=seed, hp=hp)
    if method == "scratch":
        return P["MoAMLPCostModel"](None, scratch=True, seed=seed, hp=hp)
    raise ValueError(method)


def run(P: dict, db: Any, phase: str, kernel: str, method: str, trials: int, batch: int,
        seed: int, source: Any = None) -> dict:
    ms = P["ms"]
    target, hp = platform_of(P, phase)
    P["load_intrinsics_for"](target)
    mod = P["base"].KERNELS[kernel]()
    session = f"verifiers-{run_key(phase, kernel, method, seed)}-{int(time.time())}"
    msdb = P["MSDatabase"](db, target, session=session)
    msdb.register(kernel, mod)
    t0 = time.perf_counter()
    strategy = P["PrunerSearch"](hp=hp, seed=seed)
    ctx = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply",
                         search_strategy=strategy, task_name=kernel, rand_state=seed,
                         num_threads=P["target_cores"](target),
                         logger=logging.getLogger(f"bench.{kernel}"))
    inner = make_verifier(P, method, target, hp, seed, source)
    probe = P["Probe"](inner)
    stamp = P["base"].Stamp(t0)

    def on_batch(name: str, n: int, best: float) -> None:
        print(f"  [{time.strftime('%H:%M:%S', time.gmtime())}] {phase} {kernel} {method} "
              f"s{seed}: {stamp.n} trials, best {best * 1e6:.1f} us, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    recorder = P["Recorder"](msdb, on_batch)
    builder = P["RetryingBuilder"](max_workers=P["target_cores"](target), timeout_sec=60)
    try:
        # order: stamp and recorder see the batch, then UpdateCostModel (the probe has kept
        # the verifier's scores of this batch from the verify step, before measurement)
        ms.tune_tasks(tasks=[ctx], task_weights=[1.0], work_dir="", max_trials_global=trials,
                      max_trials_per_task=trials, num_trials_per_iter=batch, builder=builder,
                      runner=P["local_runner"](30, 3), database=ms.database.MemoryDatabase(),
                      cost_model=probe,
                      measure_callbacks=[stamp, recorder,
                                         ms.measure_callback.RemoveBuildArtifact(),
                                         ms.measure_callback.UpdateCostModel()],
                      task_scheduler="round-robin")
    finally:
        builder.shutdown()
    out = {"phase": phase, "platform": P["target_label"](target), "kernel": kernel,
           "method": method, "seed": seed, "trials": stamp.n, "batch": batch,
           "session": session, "wall_s": time.perf_counter() - t0, "best_s": stamp.best,
           "curve": stamp.curve, "counts": recorder.counts,
           "learned_calls_per_round": [n for n in probe.per_round if n],
           "verifier_predict_s": probe.predict_s, "verifier_update_s": probe.update_s,
           "batches": probe.batches, "draft_calls": strategy.draft_calls,
           "hp": dataclasses.asdict(hp)}
    if method in ("moa", "scratch"):
        out["moa_updates"] = inner.moa.updates
        out["moa_adaptations"] = inner.moa.adaptations
    if not math.isfinite(out["best_s"]):
        out["best_s"] = None
    return out


def get_source(P: dict, db: Any, results: list, seeds: list, path: str) -> tuple[Any, dict]:
    """The MoA source net: loaded from ``path`` if it exists, else pre-trained on the stored
    phase-A records of the runs of ``seeds`` (both kernels, both verifiers) and saved."""
    if os.path.exists(path):   # the sessions it was trained on are in the output already
        return P["load_rank_model"](path), {"path": path, "loaded": True}
    sessions = sorted(r["session"] for r in results if r["phase"] == "A" and r["seed"] in seeds)
    info = {"path": path, "sessions": sessions}
    target, hp = platform_of(P, "A")
    label = P["target_label"](target)
    recs = [r for r in db.records(hw=label) if r.session in set(sessions)]
    t0 = time.perf_counter()
    net = P["pretrain_source"](recs, target, hw=label, hp=hp, seed=0)
    info.update(records=len(recs), ok=sum(1 for r in recs if r.ok),
                pretrain_s=time.perf_counter() - t0, hw=label)
    P["save_rank_model"](net, path)
    return net, info


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="matmul128,conv3x3_32c14")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--phases", default="A,B")
    ap.add_argument("--methods-a", default="xgb,mlp")
    ap.add_argument("--methods-b", default="moa,scratch,xgb")
    ap.add_argument("--source-seeds", default="0",
                    help="phase-A seeds whose records pre-train the MoA source")
    ap.add_argument("--work", default="/work/bench_verifiers")
    ap.add_argument("--out", default="pruner_ms_verifiers.json")
    ap.add_argument("--report", metavar="JSON",
                    help="print the Markdown tables of a finished output file and exit")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as fh:
            print("\n".join(report(json.load(fh)["runs"])))
        return
    logging.basicConfig(level=logging.WARNING)
    os.makedirs(args.work, exist_ok=True)
    P = _tvm_parts()
    from vtatune.db import open_db
    doc = {"runs": [], "load": []}
    if os.path.exists(args.out):
        with open(args.out) as fh:
            doc = json.load(fh)
    done = {run_key(r["phase"], r["kernel"], r["method"], r["seed"]) for r in doc["runs"]}
    doc.setdefault("load", []).append({"start": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                             time.gmtime()),
                                       "uptime": _uptime()})
    doc.update(machine=platform.node(), args=vars(args), t_target=T_TARGET)
    src_seeds = [int(s) for s in args.source_seeds.split(",")]

    def save() -> None:
        doc["summary"] = {"A_mlp_vs_xgb": compare(doc["runs"], "A", "xgb"),
                          "B_vs_xgb": compare(doc["runs"], "B", "xgb")}
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(tmp, args.out)

    with open_db(f"sqlite:///{os.path.join(args.work, 'records.db')}") as db:
        source = None
        for seed in [int(s) for s in args.seeds.split(",")]:
            for phase in args.phases.split(","):
                methods = (args.methods_a if phase == "A" else args.methods_b).split(",")
                for kernel in args.kernels.split(","):
                    for method in methods:
                        key = run_key(phase, kernel, method, seed)
                        if key in done:
                            print(f"skip {key} (in {args.out})", flush=True)
                            continue
                        if method == "moa" and source is None:
                            source, info = get_source(
                                P, db, doc["runs"], src_seeds,
                                os.path.join(args.work, "source_"
                                             + "_".join(map(str, src_seeds)) + ".npz"))
                            doc["source"] = {**doc.get("source", {}), **info}
                            print(f"source: {json.dumps(info)[:300]}", flush=True)
                        print(f"run {key} [{time.strftime('%H:%M:%S', time.gmtime())}] "
                              f"{_uptime()}", flush=True)
                        try:
                            r = run(P, db, phase, kernel, method, args.trials, args.batch,
                                    seed, source)
                        except Exception:  # noqa: BLE001 - report, go on with the next run
                            import traceback
                            traceback.print_exc()
                            print(f"FAILED {key}", flush=True)
                            continue
                        r["uptime_end"] = _uptime()
                        doc["runs"].append(r)
                        done.add(key)
                        print(json.dumps({k: v for k, v in r.items()
                                          if k not in ("curve", "batches", "hp")}), flush=True)
                        save()
    doc["load"][-1]["end"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    doc["load"][-1]["uptime_end"] = _uptime()
    save()
    for name, rows in doc["summary"].items():
        for row in rows:
            print(name, row["kernel"], row["seed"],
                  {m: (round(v["best_us"], 1), v["ranking_after_first"]["tau"])
                   for m, v in row["methods"].items()})


if __name__ == "__main__":
    main()
