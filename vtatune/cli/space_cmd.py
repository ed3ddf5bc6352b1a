"""``vtatune space WORKLOAD [--index N | --knobs K=V,...]``: a workload's AutoTVM space."""
from __future__ import annotations

import argparse

from ..space import SpaceError, space_for
from ..workloads import resolve_workload
from .common import add_hw, add_json, emit_json


def register(sub) -> None:
    p = sub.add_parser(
        "space", help="show the AutoTVM config space of a workload",
        description="Knobs, candidates and size of a workload's AutoTVM config space; with "
                    "--index (or --knobs) one configuration and its AutoTVM entity.",
        epilog="WORKLOAD is a suite name (resnet18.C2, dense.0.relu), a spec string "
               "(conv2d:1,56,56,64,64,3,1,1) or an AutoTVM task input as JSON; an AutoTVM input "
               "brings its hardware (-model=) unless --hw is given.")
    p.add_argument("workload", help="suite name, spec string or AutoTVM input (JSON)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--index", type=int, default=None, metavar="N", help="decode configuration N")
    g.add_argument("--knobs", default=None, metavar="K=V,...",
                   help="encode knob values (every knob; splits by inner factor) to an index")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_space)


def _parse_knobs(text: str) -> dict:
    out: dict = {}
    for item in text.split(","):
        if not item.strip():
            continue
        k, eq, v = item.partition("=")
        if not eq:
            raise SpaceError("knobs", f"expected NAME=VALUE, got {item.strip()!r}")
        v = v.strip()
        out[k.strip()] = int(v) if v.lstrip("-").isdigit() else v
    return out


def cmd_space(args: argparse.Namespace) -> int:
    w, hw = resolve_workload(args.workload, args.hw)
    space = space_for(w, hw)
    index = args.index
    if args.knobs is not None:
        index = space.index_of(_parse_knobs(args.knobs))
    cfg = space.get(index) if index is not None else None
    if args.json:
        out = {"workload": w.name, "template": w.template, "shape": w.spec, "hw": hw.name,
               "size": space.size, "knobs": [k.to_dict() for k in space.knobs.values()]}
        if cfg is not None:
            out["config"] = {"index": cfg.index, "knobs": cfg.knobs, "entity": cfg.entity}
        emit_json(out)
        return 0
    print(f"{w.name} ({w.template}, {w.spec}) on {hw.name}: {space.size} configurations")
    print(f"  {'#':>2s}  {'knob':10s}  kind  {'axis':>5s}  candidates")
    for i, k in enumerate(space.knobs.values()):
        axis = str(getattr(k, "length", "-"))
        cands = " ".join(map(str, k.candidates))
        print(f"  {i:2d}  {k.name:10s}  {k.kind:4s}  {axis:>5s}  {cands}")
    if cfg is not None:
        print(f"index {cfg.index}: " + " ".join(f"{n}={v}" for n, v in cfg.knobs.items()))
        import json
        print("entity: " + json.dumps(cfg.entity))
    return 0
