"""``vtatune sim run BUNDLE``: replay a captured program on a simulator."""
from __future__ import annotations

import argparse

from ..sim.bundle import load_bundle, run_bundle, save_bundle
from ..sim.simulators import SIMULATORS
from .common import add_json, emit_json


def register(sub) -> None:
    p = sub.add_parser("sim", help="simulators")
    s = p.add_subparsers(dest="sim_cmd", required=True, metavar="{run}")
    r = s.add_parser("run", help="run a program bundle (.npz) and report its counters")
    r.add_argument("bundle", help="program bundle (.npz), format in docs/bundle-format.md")
    r.add_argument("--target", default="fsim", choices=sorted(SIMULATORS), help="simulator (default fsim)")
    r.add_argument("-o", "--output", metavar="OUT.npz", help="write the final DRAM state as a bundle")
    add_json(r)
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle)
    final, result = run_bundle(bundle, args.target)
    if args.output:
        save_bundle(args.output, final, counters=result.counters,
                    timing=result.timing_dict() if hasattr(result, "timing_dict") else None)
    timing = result.timing_dict() if hasattr(result, "timing_dict") else {}
    if args.json:
        emit_json({"bundle": args.bundle, "config": bundle.config, "target": args.target,
                   "insn_count": bundle.insn_count, "counters": result.counters,
                   "executed": result.executed, "leftover_tokens": result.leftover_tokens,
                   "output": args.output, **timing})
        return 0
    print(f"{args.bundle}: {bundle.insn_count} instructions on {args.target} ({bundle.config})")
    print("executed per module: " + ", ".join(f"{k} {v}" for k, v in result.executed.items()))
    for k, v in result.counters.items():
        print(f"  {k:18s} {v}")
    if timing:
        from .compile_cmd import _print_timing
        _print_timing(result)
    if result.leftover_tokens:
        print(f"warning: tokens left in queues at FINISH: {result.leftover_tokens}")
    if args.output:
        print(f"final DRAM state written to {args.output}")
    return 0
