#!/usr/bin/env python3
"""Benchmark fsim throughput on a GEMM-heavy program the size of a ResNet-18 3x3 layer.

The program is C2_1584: ResNet-18 layer C2 (56x56, 64->64 channels, 3x3, pad 1) compiled
by the original TVM v0.14 VTA stack (3268 instructions, 451,584 GEMM micro-op iterations,
37,632 ALU iterations, 4.9 MB of DMA).  Reported: GEMM micro-op iterations per second and
instructions per second over whole runs (fetch/decode, loads, ALU and stores included), for
each fsim core: numpy, and compiled (numba, when installed; its first run in the process,
which loads or builds the compiled code, is reported apart).  The machine's load average is
printed before and after: on a shared machine the figures move with it.

    python scripts/bench_fsim.py [--repeat 10] [--bundle PATH] [--core numpy|compiled|both]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time

import numpy as np

from vtatune.sim.bundle import load_bundle
from vtatune.sim.fsim import FunctionalSimulator, jit_available

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "tests" / "data" / "reference-programs" / "C2_1584.npz"


def run(bundle, jit: bool):
    dram = bundle.to_dram()
    sim = FunctionalSimulator(bundle.hw, dram, jit=jit)
    t0 = time.perf_counter()
    result = sim.run(bundle.insn_addr, bundle.insn_count)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--core", choices=("numpy", "compiled", "both"), default="both")
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}")
    cores = {"numpy": [False], "compiled": [True], "both": [False, True]}[args.core]
    if True in cores and not jit_available():
        print("compiled core: numba is not installed (pip install 'vtatune[jit]')")
        cores.remove(True)
    for jit in cores:
        first, result = run(bundle, jit)  # warm-up
        times = [run(bundle, jit)[0] for _ in range(args.repeat)]
        best, med = min(times), statistics.median(times)
        gemm = result.counters["gemm_counter"]
        print(f"core: {'compiled (numba)' if jit else 'numpy'}" +
              (f" — first run in this process {first * 1e3:.0f} ms" if jit else ""))
        print(f"  program: {args.bundle} ({bundle.insn_count} instructions, {gemm} GEMM uop "
              f"iterations, {result.counters['alu_counter']} ALU uop iterations)")
        print(f"  run time: median {med * 1e3:.1f} ms, best {best * 1e3:.1f} ms over {args.repeat} runs")
        print(f"  GEMM uop iterations/s: median {gemm / med / 1e6:.2f} M, best {gemm / best / 1e6:.2f} M")
        print(f"  instructions/s: median {bundle.insn_count / med / 1e3:.1f} k, "
              f"best {bundle.insn_count / best / 1e3:.1f} k")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
