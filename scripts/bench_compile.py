#!/usr/bin/env python3
"""Benchmark compile + fsim run of one configuration (default: ResNet-18 C2, index 0 — unit
tiles, 501,773 instructions, the largest ResNet-18 program).

Phases, each timed separately (median over --repeat runs, after one warm-up run that also
loads or builds fsim's compiled core):

* compile: ``compile_program`` (lowering, host-program emission, stream encoding);
* fsim: the run as ``vtatune.measure.runners.evaluate`` does it (DRAM set-up with the
  packed inputs, the simulator run, reading the output back), per fsim core available.

    python scripts/bench_compile.py [--workload resnet18.C2] [--index 0] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.measure.runners import load_program, read_output
from vtatune.sim.fsim import FunctionalSimulator, jit_available
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload


def fsim_run(prog, inputs, jit: bool):
    dram = load_program(prog, inputs)
    FunctionalSimulator(prog.hw, dram, jit=jit).run(prog.insn_addr, prog.insn_count)
    return read_output(prog, dram)


def timed(fn, repeat: int):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet18.C2")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--hw", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    hw = HwConfig.load(args.hw)
    wl = get_workload(args.workload, hw).bind(hw)
    knobs = space_for(wl, hw).get(args.index).knobs
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}")
    prog = compile_program(wl, knobs, hw)
    print(f"program: {args.workload} index {args.index} ({knobs}): {prog.insn_count} instructions")
    med, best = timed(lambda: compile_program(wl, knobs, hw), args.repeat)
    print(f"compile: median {med:.3f} s, best {best:.3f} s")
    inputs = prog.random_inputs(0)
    cores = [False] + ([True] if jit_available() else [])
    outputs = []
    for jit in cores:
        name = "compiled (numba)" if jit else "numpy"
        t0 = time.perf_counter()
        outputs.append(fsim_run(prog, inputs, jit))
        first = time.perf_counter() - t0
        fmed, fbest = timed(lambda: fsim_run(prog, inputs, jit), args.repeat)
        print(f"fsim {name}: median {fmed:.3f} s, best {fbest:.3f} s (first run in this process "
              f"{first:.3f} s); compile + fsim median {med + fmed:.3f} s")
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:]), "the fsim cores disagree"
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
