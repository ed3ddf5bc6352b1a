#!/usr/bin/env python3
"""Throughput of the whole tuning loop with zero-cost measurements: the xgb tuner (plan 64,
itervar features) proposing, the session building measurement inputs and records, SQLite
storing every record.  Reported: configurations per second (median over repeats).

    python scripts/bench_tuning_loop.py [--workload resnet18.C2] [--trials 320] [--repeats 3]

Measurement costs nothing here (a stand-in pool answers at once), so the figure is the
loop's own overhead: what limits tuning when measurements are fast (tsim timing-only).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

from vtatune.db import open_db
from vtatune.measure import MeasureResult


class InstantPool:
    """Answers every measurement at once with a synthetic valid cost."""

    n = 2

    def measure(self, inputs):
        return [MeasureResult((1e-3 * (1 + inp.index % 13),), 0, 0.0, time.time())
                for inp in inputs]

    def close(self):
        pass


def run_once(workload: str, trials: int, seed: int) -> float:
    try:  # this release: a task object and the autotune driver
        from vtatune.autotune import tune
        from vtatune.task import VtaTask

        def go(db):
            return tune(VtaTask.create(workload), db=db, tuner="xgb", n_trial=trials, seed=seed,
                        pool=InstantPool(), chunk=64)
    except ImportError:  # releases before the task layer (for like-for-like comparisons)
        from vtatune.tuning.session import tune as old_tune

        def go(db):
            return old_tune(workload, None, db=db, tuner="xgb", n_trial=trials, seed=seed,
                            pool=InstantPool(), chunk=64, progress=False)
    with tempfile.TemporaryDirectory() as d:
        db = open_db(f"sqlite:///{d}/bench.db")
        t0 = time.perf_counter()
        s = go(db)
        dt = time.perf_counter() - t0
        db.close()
    assert s.new == trials, s.new
    return trials / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet18.C2")
    ap.add_argument("--trials", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rates = [run_once(args.workload, args.trials, seed) for seed in range(args.repeats)]
    print(f"{args.workload}: xgb plan 64, {args.trials} trials, SQLite, zero-cost measurement; "
          f"python {platform.python_version()}: {statistics.median(rates):.1f} configurations/s "
          f"(median of {args.repeats}: {', '.join(f'{r:.1f}' for r in rates)})")


if __name__ == "__main__":
    main()
