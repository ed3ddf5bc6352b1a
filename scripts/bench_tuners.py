#!/usr/bin/env python3
"""Benchmark the tuners' proposal throughput with a measurement that costs nothing.

Every configuration of the workload's space is labelled once, before timing: validity from
the compiler's own checks (``vtatune.compiler.sweep.verdict``), and for valid ones a
synthetic throughput that falls with DRAM traffic and instruction count (itervar features).
Then each tuner runs propose -> look up -> update for ``--trials`` configurations, batches of
``--batch``; reported: configurations per second end to end (median and worst over seeds),
and the trials until the space's best configuration was proposed.

    python scripts/bench_tuners.py [--workload resnet18.C2] [--trials 320] [--seeds 3]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from vtatune.compiler.sweep import verdict
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.autotune.features import (itervar_feature_fn, itervar_feature_names,
                                       itervar_features_batch)
from vtatune.space.indexing import digits_of
from vtatune.tuning import MeasureOutcome, create_tuner
from vtatune.workloads import get_workload

TUNERS = {
    "xgb": lambda s, wl, hw: {"feature_fn": itervar_feature_fn(s, wl, hw)},  # the default
    "xgb-knob": lambda s, wl, hw: {"feature_type": "knob"},
    "ga": lambda s, wl, hw: {},
    "random": lambda s, wl, hw: {},
}


def label_space(wl, hw):
    space = space_for(wl, hw)
    digits = digits_of(np.arange(space.size), space.dims)
    knobs = {n: np.asarray(space[n].candidates)[digits[:, j]] for j, n in enumerate(space.names)}
    names = itervar_feature_names(wl)
    raw = np.exp2(itervar_features_batch(wl, hw, knobs).astype(np.float64)) - 1
    cost = raw[:, names.index("dram_total_bytes")] + 2000 * raw[:, names.index("n_insns")]
    ok = np.array([verdict(wl, space.get(i).knobs, hw)[0] for i in range(space.size)])
    return space, np.where(ok, 1e9 / cost, 0.0)


def run(name, space, tp, wl, hw, seed, trials, batch):
    kw = TUNERS[name](space, wl, hw)
    tuner = create_tuner(name.split("-")[0], space, seed=seed, **kw)
    best = int(np.argmax(tp))
    seen: list[int] = []
    tic = time.perf_counter()
    while len(seen) < trials and tuner.has_next():
        b = tuner.next_batch(min(batch, trials - len(seen)))
        seen += b
        tuner.update([MeasureOutcome(i, (1.0 / tp[i],), 0, 1.0) if tp[i] > 0
                      else MeasureOutcome(i, (1e9,), 2, 1.0) for i in b])
    rate = len(seen) / (time.perf_counter() - tic)
    return rate, (seen.index(best) + 1 if best in seen else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet18.C2")
    ap.add_argument("--trials", type=int, default=320)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tuners", default=",".join(TUNERS))
    args = ap.parse_args()
    hw = HwConfig.load()
    wl = get_workload(args.workload).bind(hw)
    space, tp = label_space(wl, hw)
    print(f"{args.workload}: {space.size} configurations, {np.mean(tp > 0):.1%} valid; "
          f"{args.trials} trials, batches of {args.batch}, {args.seeds} seeds; "
          f"python {platform.python_version()}, {platform.machine()}")
    for name in args.tuners.split(","):
        rates, found = [], []
        for seed in range(args.seeds):
            rate, ttb = run(name, space, tp, wl, hw, seed, args.trials, args.batch)
            rates.append(rate)
            found.append(ttb)
        print(f"{name:9s} {statistics.median(rates):9.1f} configs/s (worst {min(rates):.1f}); "
              f"trials to best: {found}")


if __name__ == "__main__":
    main()
