"""Pruner (draft-then-verify) against stock MetaSchedule (evolutionary + XGB) on llvm.

For each kernel and seed, both strategies tune the same TE kernel with the same number of
trials, batch, builder (RetryingBuilder), runner and XGB cost model (wrapped to count its
calls).  A measure callback stamps every measured batch with the wall time since the search
began, so we get best-latency-vs-time curves.  Reported per kernel:

* final best latency of each strategy at equal trials;
* time-to-target: the search time MetaSchedule needs to reach its own final best latency,
  divided by the time Pruner needs to reach that latency (∞/n.r. when Pruner never does);
* learned-model (XGB) candidates scored per round, and draft-model evaluations.

Usage: python scripts/bench_pruner_ms.py --trials 64 --batch 16 --seeds 0 --out results.json
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time

from vtatune.backends.tvm.env import load_intrinsics_for, make_target, require_tvm, target_cores

tvm = require_tvm()
from tvm import te
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from vtatune.backends.tvm.builder import RetryingBuilder
from vtatune.backends.tvm.pruner import CountingCostModel, PrunerSearch, host_params
from vtatune.backends.tvm.tune import local_runner


def matmul(n: int = 128) -> tvm.IRModule:
    a = te.placeholder((n, n), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def conv2d(c: int = 32, hw: int = 14, o: int = 32) -> tvm.IRModule:
    """A ResNet-18-style 3x3 conv, stride 1, pad 1 (NCHW), at small resolution."""
    x = te.placeholder((1, c, hw, hw), "float32", name="X")
    w = te.placeholder((o, c, 3, 3), "float32", name="W")
    pad = te.compute((1, c, hw + 2, hw + 2), lambda n, ci, h, ww: tvm.tirx.if_then_else(
        tvm.tirx.all(h >= 1, h <= hw, ww >= 1, ww <= hw), x[n, ci, h - 1, ww - 1], 0.0),
        name="pad")
    rc = te.reduce_axis((0, c), "rc")
    rh = te.reduce_axis((0, 3), "rh")
    rw = te.reduce_axis((0, 3), "rw")
    y = te.compute((1, o, hw, hw), lambda n, f, h, ww: te.sum(
        pad[n, rc, h + rh, ww + rw] * w[f, rc, rh, rw], axis=[rc, rh, rw]), name="Y")
    return tvm.IRModule({"main": te.create_prim_func([x, w, y])})


KERNELS = {"matmul128": matmul, "conv3x3_32c14": conv2d}


@derived_object
class Stamp(ms.measure_callback.PyMeasureCallback):
    """(seconds since start, trials so far, best seconds so far) after each batch."""

    def __init__(self, t0: float):
        super().__init__()
        self.t0 = t0
        self.best = math.inf
        self.n = 0
        self.curve: list = []

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
              runner_results) -> None:
        for b, r in zip(builder_results, runner_results):
            self.n += 1
            if not b.error_msg and not r.error_msg and r.run_secs:
                secs = [float(s) for s in r.run_secs]
                self.best = min(self.best, sum(secs) / len(secs))
        self.curve.append((time.perf_counter() - self.t0, self.n, self.best))


def run(kernel: str, strategy: str, trials: int, batch: int, seed: int) -> dict:
    target = make_target("llvm")
    load_intrinsics_for(target)
    mod = KERNELS[kernel]()
    t0 = time.perf_counter()
    pruner = PrunerSearch(seed=seed) if strategy == "pruner" else None
    ctx = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply",
                         search_strategy=pruner if pruner is not None else "evolutionary",
                         task_name=kernel, rand_state=seed, num_threads=target_cores(target),
                         logger=logging.getLogger(f"bench.{kernel}"))
    model = CountingCostModel(ms.CostModel.create("xgb", num_tuning_cores=target_cores(target)))
    stamp = Stamp(t0)
    builder = RetryingBuilder(max_workers=target_cores(target), timeout_sec=60)
    try:
        ms.tune_tasks(tasks=[ctx], task_weights=[1.0], work_dir="", max_trials_global=trials,
                      max_trials_per_task=trials, num_trials_per_iter=batch, builder=builder,
                      runner=local_runner(30, 3), database=ms.database.MemoryDatabase(),
                      cost_model=model,
                      measure_callbacks=[stamp, ms.measure_callback.RemoveBuildArtifact(),
                                         ms.measure_callback.UpdateCostModel()],
                      task_scheduler="round-robin")
    finally:
        builder.shutdown()
    return {"kernel": kernel, "strategy": strategy, "seed": seed, "trials": stamp.n,
            "batch": batch, "wall_s": time.perf_counter() - t0, "best_s": stamp.best,
            "curve": stamp.curve, "learned_calls_per_round": [n for n in model.per_round if n],
            "learned_seconds": model.seconds}


def time_to(curve: list, target_s: float) -> float | None:
    for t, _, best in curve:
        if best <= target_s * (1 + 1e-9):
            return t
    return None


def summarize(results: list) -> list:
    rows = []
    keys = sorted({(r["kernel"], r["seed"]) for r in results})
    for kernel, seed in keys:
        by = {r["strategy"]: r for r in results if r["kernel"] == kernel and r["seed"] == seed}
        if set(by) != {"evolutionary", "pruner"}:
            continue
        ms_r, pr = by["evolutionary"], by["pruner"]
        target = ms_r["best_s"]
        t_ms, t_pr = time_to(ms_r["curve"], target), time_to(pr["curve"], target)
        mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
        rows.append({
            "kernel": kernel, "seed": seed,
            "ms_best_us": ms_r["best_s"] * 1e6, "pruner_best_us": pr["best_s"] * 1e6,
            "ms_time_to_target_s": t_ms, "pruner_time_to_target_s": t_pr,
            "time_to_target_ratio": (t_ms / t_pr) if (t_ms and t_pr) else None,
            "ms_wall_s": ms_r["wall_s"], "pruner_wall_s": pr["wall_s"],
            "ms_learned_per_round": mean(ms_r["learned_calls_per_round"]),
            "pruner_learned_per_round": mean(pr["learned_calls_per_round"]),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default=",".join(KERNELS))
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--strategies", default="evolutionary,pruner")
    ap.add_argument("--out", default="pruner_ms.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    hp = host_params()
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for kernel in args.kernels.split(","):
            for strategy in args.strategies.split(","):
                r = run(kernel, strategy, args.trials, args.batch, seed)
                results.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "curve"}), flush=True)
                with open(args.out, "w") as fh:
                    json.dump({"host": hp.__dict__, "machine": platform.node(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "args": vars(args), "runs": results,
                               "summary": summarize(results)}, fh, indent=1)
    for row in summarize(results):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
