#!/usr/bin/env python3
"""Time every valid configuration of workloads on tsim (the exhaustive ground truth).

    python scripts/exhaustive_tsim.py resnet18 [-o docs/data/resnet18_tsim.jsonl] [--workers 2]
        [--hw NAME] [--sync tvm-0.14|single] [--profile tvm-0.14|native] [--prune]

Validity comes from the compile-only sweep in ``--profile``; each valid configuration is
measured with the measurement pool (tsim, timing only).  The output has one JSON line per
valid configuration (workload, index, cost_s, gops, hw, sync, profile, runner label) and is
resumable: lines already in the file are skipped.  ``--prune`` only removes the lines of
configurations the profile's sweep refuses (a table timed under a more permissive profile:
the profile changes which configurations compile, not their streams or times).
"""
from __future__ import annotations

import argparse
import json
import os
import time

from vtatune.compiler.sweep import sweep
from vtatune.hardware.config import HwConfig
from vtatune.measure import MeasureInput, MeasurePool
from vtatune.measure.runners import runner_for
from vtatune.task import VtaTask
from vtatune.workloads.suites import get_workload, list_suites, suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="suite or workload")
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sync", default="tvm-0.14")
    ap.add_argument("--profile", default="tvm-0.14")
    ap.add_argument("--hw", default=None, help="hardware configuration (default: the default one)")
    ap.add_argument("--prune", action="store_true",
                    help="drop the lines of configurations the profile refuses, time nothing")
    args = ap.parse_args()
    hw = HwConfig.load(args.hw)
    wls = [w for w in suite(args.target) if w.offloadable] if args.target in list_suites() else \
        [get_workload(args.target, hw)]
    out = args.output or f"docs/data/{args.target}_tsim.jsonl"
    if args.prune:
        prune(out, wls, hw, args.profile, args.sync)
        return
    done = set()
    if os.path.exists(out):
        with open(out) as f:
            for line in f:
                r = json.loads(line)
                done.add((r["workload"], r["index"]))
    t0 = time.perf_counter()
    with MeasurePool(args.workers, build_timeout=600, run_timeout=600) as pool, open(out, "a") as f:
        runner = runner_for("tsim")
        for wl in wls:
            task = VtaTask(wl, hw, args.sync, args.profile)
            wl = task.workload
            label = runner.label(task)
            valid = [r["index"] for r in sweep(wl, hw, profile=args.profile, sync=args.sync)
                     if r["valid"] and (wl.name, r["index"]) not in done]
            t1 = time.perf_counter()
            for lo in range(0, len(valid), 16):
                part = valid[lo:lo + 16]
                res = pool.measure([MeasureInput(task, task.config(i), runner) for i in part])
                for i, r in zip(part, res):
                    f.write(json.dumps({"workload": wl.name, "index": i, "error_no": r.error_no,
                                        "cost_s": r.costs[0] if r.error_no == 0 else None,
                                        "gops": r.extra.get("gops"), "reason": r.reason,
                                        "hw": hw.name, "sync": args.sync, "profile": args.profile,
                                        "runner": label}) + "\n")
                f.flush()
            print(f"{wl.name}: {len(valid)} valid configurations timed in {time.perf_counter() - t1:.0f} s", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


def prune(path: str, wls, hw, profile: str, sync: str) -> None:
    by_name = {w.name: w for w in wls}
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    keep, valid = [], {}
    for r in rows:
        wl = by_name.get(r["workload"])
        if wl is None:
            keep.append(r)
            continue
        if wl.name not in valid:
            valid[wl.name] = {v["index"] for v in sweep(wl, hw, profile=profile, sync=sync) if v["valid"]}
        if r["index"] in valid[wl.name]:
            r.setdefault("profile", profile)
            keep.append(r)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in keep:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)
    print(f"{path}: kept {len(keep)} of {len(rows)} lines (profile {profile})")


if __name__ == "__main__":
    main()
