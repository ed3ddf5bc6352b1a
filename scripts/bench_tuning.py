#!/usr/bin/env python3
"""Tuning quality on ResNet-18 C2–C11: xgb with 200 trials vs the exhaustive best on tsim.

    python scripts/exhaustive_tsim.py resnet18          # the ground truth (once, ~25 min)
    python scripts/bench_tuning.py [--trials 200] [--seeds 0 1 2] [--tuner xgb]

The ground truth is every valid configuration timed on tsim (docs/data/resnet18_tsim.jsonl).
tsim is deterministic, so the tuning runs measure through an oracle pool that answers from
that table (invalid configurations: the compiler's verdict) — the same answers
``--target tsim`` would give, without re-simulating.  The full tuning loop runs: tuner,
measurement batches, SQLite records database, resume logic.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from vtatune.compiler.sweep import sweep
from vtatune.db import open_db
from vtatune.hardware.config import HwConfig
from vtatune.measure import MeasureResult
from vtatune.autotune import tune
from vtatune.task import VtaTask
from vtatune.workloads.suites import get_workload


class OraclePool:
    n = 2

    def __init__(self, table: dict, verdicts: dict):
        self.table, self.verdicts = table, verdicts

    def measure(self, inputs):
        out = []
        for inp in inputs:
            key = (inp.task.workload.name, inp.index)
            if key in self.table:
                out.append(MeasureResult((self.table[key],), 0, 0.0, time.time()))
            else:
                cat, reason = self.verdicts[key]
                out.append(MeasureResult((1e9,), cat or 8, 0.0, time.time(), reason or "timing_failed"))
        return out

    def close(self):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="docs/data/resnet18_tsim.jsonl")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tuner", default="xgb")
    args = ap.parse_args()
    hw = HwConfig.load()
    table = {}
    with open(args.table) as f:
        for line in f:
            r = json.loads(line)
            if r["error_no"] == 0:
                table[(r["workload"], r["index"])] = r["cost_s"]
    layers = sorted({w for w, _ in table}, key=lambda n: int(n.split("C")[1]))
    t_all = time.perf_counter()
    print("| layer | valid configs | exhaustive best ms | found ms (per seed) | median ratio | within 10 % |")
    print("| --- | --- | --- | --- | --- | --- |")
    hits = 0
    for name in layers:
        wl = get_workload(name, hw)
        verdicts = {(name, r["index"]): (r["category"], r["reason"]) for r in sweep(wl, hw)}
        best = min(c for (w, _), c in table.items() if w == name)
        found = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as d:
                db = open_db(f"sqlite:///{d}/bench.db")
                s = tune(VtaTask.create(name, hw), db=db, tuner=args.tuner, n_trial=args.trials,
                         seed=seed, pool=OraclePool(table, verdicts))
                db.close()
            found.append(s.best_cost)
        ratios = [f / best for f in found]
        med = statistics.median(ratios)
        ok = med <= 1.10
        hits += ok
        n_valid = sum(1 for (w, _) in table if w == name)
        print(f"| {name} | {n_valid} | {best * 1e3:.3f} | " + ", ".join(f"{f * 1e3:.3f}" for f in found)
              + f" | {med:.3f} | {'yes' if ok else 'no'} |", flush=True)
    print(f"\n{hits} of {len(layers)} layers within 10 % (median over seeds {args.seeds}); "
          f"{args.tuner}, {args.trials} trials; {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
