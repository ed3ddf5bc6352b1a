#!/usr/bin/env python3
"""Is a dependence-token scheme safe?  Run every configuration that compiles through fsim
(output against the numpy reference) and through tsim's vector-clock race check.

    python scripts/token_safety.py resnet18 deepbench [--sync single] [--workers 2]
        [-o docs/data/token_safety.jsonl] [--report docs/data/token_safety_summary.json]

The configuration set is every configuration the ``native`` profile accepts (a superset of
``tvm-0.14``'s); each line records whether ``tvm-0.14`` accepts it too, so the native
profile's extra configurations are listed with their results (issue 12, items 1-2).  Those
extras are also run under the ``tvm-0.14`` token scheme.  Output: one JSON line per
(workload, index, sync); resumable (lines already present are skipped); Ctrl-C stops
without losing finished lines.  ``--report`` only summarises the file.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed

from vtatune.compiler.sweep import sweep
from vtatune.hardware.config import HwConfig
from vtatune.measure.runners import evaluate
from vtatune.task import VtaTask
from vtatune.workloads.suites import get_workload, list_suites, suite


def _job(args):
    name, hw, index, sync = args   # the HwConfig itself: files may change during a long run
    hw_name = hw.name
    t0 = time.perf_counter()
    try:
        task = VtaTask.create(name, hw, sync=sync, profile="native")
        ev = evaluate(task, index, "fsim", check=True)
        timed = evaluate(task, index, "tsim", program=ev.program, functional=False)
        races = timed.execution.result.races
        return {"workload": name, "hw": hw_name, "index": index, "sync": sync,
                "correct": bool(ev.correct), "races": len(races),
                "race": races[0] if races else "", "instructions": ev.program.insn_count,
                "cycles": round(timed.execution.result.cycles), "error": "",
                "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as exc:  # reported per configuration, never lost
        return {"workload": name, "hw": hw_name, "index": index, "sync": sync, "correct": False,
                "races": -1, "race": "", "instructions": 0, "cycles": 0,
                "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - t0, 3)}


def _workloads(refs, hw):
    out = []
    for ref in refs:
        out += [w for w in suite(ref) if w.offloadable] if ref in list_suites() else [get_workload(ref, hw)]
    return out


def plan(refs, hw, sync):
    """(jobs, extras): every native-valid configuration under ``sync``, and the extras
    (refused by tvm-0.14) also under the tvm-0.14 scheme."""
    jobs, extra = [], set()
    for wl in _workloads(refs, hw):
        strict = {r["index"] for r in sweep(wl, hw, profile="tvm-0.14", sync=sync) if r["valid"]}
        for r in sweep(wl, hw, profile="native", sync=sync):
            if not r["valid"]:
                continue
            jobs.append((wl.name, hw, r["index"], sync))
            if r["index"] not in strict:
                extra.add((wl.name, r["index"]))
                if sync != "tvm-0.14":
                    jobs.append((wl.name, hw, r["index"], "tvm-0.14"))
    return jobs, extra


def report(path: str, out: str | None) -> dict:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    def new():
        return {"configs": 0, "ran": 0, "correct": 0, "race_free": 0, "refused": 0,
                "extra_configs": 0, "extra_correct_race_free": 0}
    by = defaultdict(new)
    totals = defaultdict(new)
    for r in rows:
        for b in (by[(r["workload"], r["sync"])], totals[(r["workload"].split(".")[0], r["sync"])]):
            b["configs"] += 1
            # a configuration that does not compile in this scheme (the stream-length limit
            # of the two-pass scheme) is refused, not unsafe
            if r["error"].startswith("InvalidConfigError"):
                b["refused"] += 1
                continue
            b["ran"] += 1
            b["correct"] += r["correct"]
            b["race_free"] += r["races"] == 0
            if r.get("extra"):
                b["extra_configs"] += 1
                b["extra_correct_race_free"] += r["correct"] and r["races"] == 0
    unsafe = [r for r in rows if not r["error"].startswith("InvalidConfigError")
              and (not r["correct"] or r["races"] != 0)]
    summary = {"file": path, "rows": len(rows),
               "per_suite": [{"suite": w, "sync": s, **v} for (w, s), v in sorted(totals.items())],
               "per_workload": [{"workload": w, "sync": s, **v} for (w, s), v in sorted(by.items())],
               "unsafe": unsafe[:50], "n_unsafe": len(unsafe),
               "refused": [r for r in rows if r["error"].startswith("InvalidConfigError")][:50]}
    if out:
        with open(out, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=["resnet18", "deepbench"])
    ap.add_argument("--sync", default="single")
    ap.add_argument("--hw", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-o", "--output", default="docs/data/token_safety.jsonl")
    ap.add_argument("--report", default=None, metavar="SUMMARY.json",
                    help="summarise the output file (and write the summary here); run nothing")
    args = ap.parse_args()
    if args.report:
        s = report(args.output, args.report)
        for r in s["per_workload"] + [dict(r, workload=r["suite"] + " (all)") for r in s["per_suite"]]:
            print(f"{r['workload']:16s} {r['sync']:9s} {r['configs']:6d} configs  {r['refused']:4d} refused  "
                  f"{r['correct']:6d} correct  {r['race_free']:6d} race-free  "
                  f"extras {r['extra_correct_race_free']}/{r['extra_configs']}")
        print(f"unsafe runs: {s['n_unsafe']}")
        return 0
    hw = HwConfig.load(args.hw)
    jobs, extra = plan(args.targets, hw, args.sync)
    done = set()
    if os.path.exists(args.output):
        for line in open(args.output):
            if line.strip():
                r = json.loads(line)
                done.add((r["workload"], r["index"], r["sync"]))
    todo = [j for j in jobs if (j[0], j[2], j[3]) not in done]
    # a fixed shuffle: a run stopped early has covered every workload evenly
    random.Random(0).shuffle(todo)
    print(f"{len(jobs)} runs planned ({len(extra)} native-only configurations), "
          f"{len(todo)} to do", flush=True)
    t0, n = time.perf_counter(), 0
    try:
        with ProcessPoolExecutor(args.workers) as ex, open(args.output, "a") as f:
            futs = [ex.submit(_job, j) for j in todo]
            for fut in as_completed(futs):
                r = fut.result()
                r["extra"] = (r["workload"], r["index"]) in extra
                f.write(json.dumps(r) + "\n")
                f.flush()
                n += 1
                if n % 100 == 0 or n == len(todo):
                    print(f"{n}/{len(todo)} in {time.perf_counter() - t0:.0f} s", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {n} runs; rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
