#!/usr/bin/env python3
"""Time tsim on a ResNet-18 3x3 layer (C2 with its calibration configuration).

    python scripts/bench_tsim.py [--repeat 5]

Reports the wall time of one tsim run (functional execution included) and of a timing-only
run, for the TVM v0.14 token scheme and the single-pass one.  Target: under 1 s.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.sim.dram import Dram
from vtatune.sim.tsim import TimingSimulator
from vtatune.workloads.suites import get_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    hw = HwConfig.load()
    wl = get_workload("resnet18.C2", hw)
    knobs = dict(tile_b=1, tile_h=8, tile_w=56, tile_ci=1, tile_co=2, oc_nthread=2, h_nthread=1)
    print(f"machine: {platform.machine()}, python {platform.python_version()}, numpy {np.__version__}")
    for sync in ("tvm-0.14", "single"):
        prog = compile_program(wl, knobs, hw, sync=sync)
        contents = prog.dram_contents(prog.random_inputs(0))
        for functional in (True, False):
            times = []
            for _ in range(args.repeat):
                dram = Dram()
                for name, data in contents.items():
                    dram.map(prog.regions[name][0], data)
                sim = TimingSimulator(hw, dram, functional=functional)
                t0 = time.perf_counter()
                res = sim.run(prog.insn_addr, prog.insn_count)
                times.append(time.perf_counter() - t0)
            print(f"sync={sync:8s} functional={functional!s:5s} {prog.insn_count} instructions: "
                  f"median {1e3 * statistics.median(times):.0f} ms  (simulated {res.latency_ms:.3f} ms, "
                  f"{res.gops:.1f} GOPS)")


if __name__ == "__main__":
    main()
