#!/usr/bin/env python3
"""Benchmark fsim throughput on a GEMM-heavy program the size of a ResNet-18 3x3 layer.

The program is C2_1584: ResNet-18 layer C2 (56x56, 64->64 channels, 3x3, pad 1) compiled
by the original TVM v0.14 VTA stack (3268 instructions, 451,584 GEMM micro-op iterations,
37,632 ALU iterations, 4.9 MB of DMA).  Reported: GEMM micro-op iterations per second and
instructions per second over whole runs (fetch/decode, loads, ALU and stores included).

    python scripts/bench_fsim.py [--repeat 10] [--bundle PATH]
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import statistics
import time

import numpy as np

from vtatune.sim.bundle import load_bundle, run_bundle

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "tests" / "data" / "reference-programs" / "C2_1584.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    run_bundle(bundle)  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        _, result = run_bundle(bundle)
        times.append(time.perf_counter() - t0)
    best, med = min(times), statistics.median(times)
    gemm = result.counters["gemm_counter"]
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"program: {args.bundle} ({bundle.insn_count} instructions, {gemm} GEMM uop iterations, "
          f"{result.counters['alu_counter']} ALU uop iterations)")
    print(f"run time: median {med * 1e3:.1f} ms, best {best * 1e3:.1f} ms over {args.repeat} runs")
    print(f"GEMM uop iterations/s: median {gemm / med / 1e6:.2f} M, best {gemm / best / 1e6:.2f} M")
    print(f"instructions/s: median {bundle.insn_count / med / 1e3:.1f} k, best {bundle.insn_count / best / 1e3:.1f} k")


if __name__ == "__main__":
    main()
