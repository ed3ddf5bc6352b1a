"""``vtatune workloads [SUITE]``: the built-in workload suites and their space sizes."""
from __future__ import annotations

import argparse

from ..errors import VtatuneError
from ..space import space_for
from ..workloads import list_suites, suite
from .common import add_hw, add_json, emit_json, load_hw

EPILOG = ("Names are suite-qualified (resnet18.C2, mobilenet.D3, dcgan.CT1, dense.0, "
          "deepbench.3). Every conv/dense workload also resolves as NAME.bias and NAME.relu "
          "(same shape, other epilogue); those variants are not listed. Spec strings such as "
          "conv2d:1,56,56,64,64,3,1,1 are accepted wherever a workload name is "
          "(docs/workloads.md).")


def register(sub) -> None:
    p = sub.add_parser("workloads", help="list the built-in workload suites",
                       description="List the built-in workloads with their AutoTVM space size "
                                   "on a hardware configuration.", epilog=EPILOG)
    p.add_argument("suite", nargs="?", default=None,
                   help=f"one suite ({', '.join(list_suites())}); default: all")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_workloads)


def rows_for(names: list[str], hw) -> list[dict]:
    rows = []
    for s in names:
        for w in suite(s):
            size, reason = None, None
            try:
                size = space_for(w, hw).size
            except VtatuneError as exc:
                reason = str(exc)
            rows.append({"name": w.name, "suite": s, "template": w.template, "shape": w.spec,
                         "space_size": size, "offloadable": size is not None, "reason": reason})
    return rows


def cmd_workloads(args: argparse.Namespace) -> int:
    hw = load_hw(args)
    names = [args.suite] if args.suite else list_suites()
    if args.suite:
        suite(args.suite)  # unknown suite -> WorkloadError naming the known ones
    rows = rows_for(names, hw)
    if args.json:
        emit_json({"hw": hw.name, "workloads": rows})
        return 0
    print(f"# workloads on {hw.name} (N = B: the hardware BATCH {hw.batch}); "
          "NAME.bias / NAME.relu variants also resolve")
    wn = max(len(r["name"]) for r in rows)
    ws = max(len(r["shape"]) for r in rows)
    print(f"{'name':{wn}s}  {'template':27s}  {'shape':{ws}s}  {'space':>7s}  offloadable")
    for r in rows:
        size = "-" if r["space_size"] is None else str(r["space_size"])
        off = "yes" if r["offloadable"] else f"no ({r['reason']})"
        print(f"{r['name']:{wn}s}  {r['template']:27s}  {r['shape']:{ws}s}  {size:>7s}  {off}")
    return 0
