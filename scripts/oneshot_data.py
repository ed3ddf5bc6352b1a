#!/usr/bin/env python3
"""Offline training data of the One-Shot predictor for VTA spaces (issue 15 item 4; §D.2).

    python scripts/oneshot_data.py [--tables docs/data/resnet18_tsim.jsonl,...]
        [--seed 0] [-o docs/data/oneshot_vta.npz]

From every exhaustive tsim table of the repository (``scripts/bench_validity.py``'s tables:
every compile-valid configuration's tsim cost; ResNet-18 and DeepBench layers on 1x16, three
layers on 4x8) it samples each task's configurations biased to the fast ones
(``vtatune.autotune.oneshot.sample_task``: the fastest 10 % always, the rest with a weight
falling exponentially with the rank, 60 % of the valid configurations at least 32, plus a
quarter as many invalid ones labelled 0), computes the task-aware input rows
(``oneshot_features``: loop-nest features + template + task shape + hardware) and the label
(throughput / the task's best), and stores them once as a compressed npz.  The task pool is
the tables' layers (the original draws tasks from a prior over real layers; here every
available table is used, each once).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_validity import CROSS_HW, DEFAULT_HW, DEFAULT_TABLES, layer_id, load_tables, make_oracle

from vtatune.autotune.oneshot import DEFAULT_DATA, build_data
from vtatune.hardware.config import HwConfig


def table_entries(tables, cache_dir=None, only=None):
    """``(info, task, cost)`` of every table (optionally only workload names in ``only``)."""
    hws = {}
    out = []
    for (hw_name, name) in sorted(tables):
        if only is not None and name not in only:
            continue
        hw = hws.setdefault(hw_name, HwConfig.load(hw_name))
        o = make_oracle(name, hw, tables, cache_dir)
        info = {"name": name, "hw": hw_name, "layer": layer_id(o.task.workload),
                "spec": o.task.workload.spec, "best_cost_s": o.best_cost}
        out.append((info, o.task, o.cost))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", default=",".join(DEFAULT_TABLES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "vtatune-bench-validity"))
    ap.add_argument("-o", "--output", default=str(DEFAULT_DATA))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tables = load_tables([t for t in args.tables.split(",") if t])
    data = build_data(table_entries(tables, args.cache), np.random.default_rng(args.seed))
    data.meta.update({"seed": args.seed, "tables": args.tables,
                      "hw": [DEFAULT_HW, CROSS_HW]})
    data.save(args.output)
    size = pathlib.Path(args.output).stat().st_size
    print(f"{len(data.tasks)} tasks, {data.y.size} rows ({int((data.y == 0).sum())} invalid), "
          f"{data.x.shape[1]} features -> {args.output} ({size / 1024:.0f} KiB) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
