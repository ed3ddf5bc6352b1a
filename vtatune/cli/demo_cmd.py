"""``vtatune demo``: the main job for now — a built-in program on fsim, checked vs numpy."""
from __future__ import annotations

import argparse

import numpy as np

from ..hardware.disasm import listing
from ..sim.demo import run_demo
from .common import add_hw, add_json, emit_json, load_hw


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the built-in dense-layer program on fsim and check it")
    p.add_argument("--seed", type=int, default=0, help="seed of the random int8 inputs")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    hw = load_hw(args)
    o = run_demo(hw, seed=args.seed)
    if args.json:
        emit_json({"hw": hw.name, "correct": o.correct, "counters": o.result.counters,
                   "executed": o.result.executed, "output": o.output.tolist()})
        return 0 if o.correct else 1
    print(f"vtatune demo on fsim ({hw.name}): int8 dense {o.expected.shape[0]}x"
          f"{o.program[1].x_size * hw.block_in // 4} @ W^T, >> 8, clip [0, 127]")
    print("program:")
    for line in listing(o.program):
        print("  " + line)
    with np.printoptions(linewidth=120, threshold=10_000):
        print("output (int8):")
        print(o.output)
    print("counters: " + ", ".join(f"{k}={v}" for k, v in o.result.counters.items()))
    print("result matches the numpy reference" if o.correct else "MISMATCH against the numpy reference")
    return 0 if o.correct else 1
