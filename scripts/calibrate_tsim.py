#!/usr/bin/env python3
"""Fit tsim's timing parameters to the published PYNQ-Z1 layer times.

    python scripts/calibrate_tsim.py [--write] [--loo] [--diagnose] [--ablation] [--markdown FILE]

The measurements: the five ResNet-18 layers of shared/calibration.md and the TopHub records
of scripts/data/tophub-pynq-z1.log (a copy of shared/board-times/tophub-pynq-z1.log: 1x16
and 4x8 bitstreams).  Every record is parsed with ``parse_autotvm_input``, its entity applied
through the task's space, and compiled with the TVM 0.7-era token scheme (``sync="single"``);
records that do not parse or compile are listed with the reason and left out.  One parameter
set is fitted for both hardware configurations (vtatune.sim.calibration.fit: robust least
squares on log errors); the script prints the fit residual of every record, and with
``--loo`` the leave-one-out error of every record (refit without it, predict it: ~6 min on
one core).  ``--diagnose`` fits the store path of the records measured on 2019-08-09/10
alone (docs/tsim.md, "Two setups"); ``--ablation`` refits the model without (or with) one
mechanism at a time.  ``--write`` stores the fitted values in the ``timing``
section of the shipped PYNQ configuration files; ``--markdown`` writes the tables
(docs/tsim.md quotes them).  Records marked ¹ are outside the final fit (robust: they
disagree with the parameter set the other records agree on).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.sim.calibration import CALIBRATION, Case, fit, leave_one_out, predict
from vtatune.task.task import VtaTask
from vtatune.workloads.autotvm import parse_autotvm_input
from vtatune.workloads.suites import get_workload

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOARD_LOG = ROOT / "scripts" / "data" / "tophub-pynq-z1.log"
HW_FILES = ("pynq_1x16_i8w8a32_15_15_18_17.json", "pynq_4x8_i8w8a32_15_16_16_18.json")


def calibration_records(log: pathlib.Path = BOARD_LOG) -> tuple[list[dict], list[tuple[str, str]]]:
    """(records, skipped): the five calibration layers and every record of ``log`` compiled
    with ``sync="single"`` — dicts with name, group, measured_ms, measured_at (Unix time, 0
    unknown) and prog; ``skipped`` lists (record, reason) of those that failed."""
    hw = HwConfig.load("pynq_1x16_i8w8a32_15_15_18_17")
    records = [dict(name=p.layer, group="ResNet-18 1x16 (calibration.md)", measured_ms=p.measured_ms,
                    measured_at=0.0,
                    prog=compile_program(get_workload(p.layer, hw), p.knobs, hw, sync="single"))
               for p in CALIBRATION]
    skipped = []
    block = ""
    for line in log.read_text().splitlines():
        if line.startswith("#"):
            block = line[1:].strip()
            continue
        if not line.strip():
            continue
        rec = json.loads(line)
        label = f"{block}: {rec['input'][1]} {rec['input'][2][:2]}"
        try:
            task = parse_autotvm_input(rec)
            vt = VtaTask(task.workload, task.hw, "single")
            knobs = vt.space.apply_entity(rec["config"])[0].knobs
            prog = compile_program(task.workload, knobs, task.hw, sync="single")
        except Exception as exc:  # a record we cannot rebuild: reported, not fitted
            skipped.append((label, f"{type(exc).__name__}: {exc}"))
            continue
        group = f"{block.split(' - ')[0]} {task.hw.name.split('_')[1]}"
        records.append(dict(name=task.workload.name, group=group, measured_ms=rec["result"][0][0] * 1e3,
                            measured_at=float(rec["result"][3]), prog=prog))
    return records, skipped


def calibration_cases(log: pathlib.Path = BOARD_LOG) -> tuple[list[Case], list[tuple[str, str]]]:
    """(cases, skipped): ``calibration_records`` prepared for the fit."""
    records, skipped = calibration_records(log)
    return [Case.from_program(r["prog"], r["name"], r["measured_ms"], r["group"], r["measured_at"])
            for r in records], skipped


#: The TopHub 1x16 records measured on 2019-08-09/10 (ResNet-50, VGG, AlexNet blocks): the
#: robust fit finds them inconsistent with every other record (docs/tsim.md, "Two setups").
EARLY_CAMPAIGN = (1565308800.0, 1565481600.0)  # 2019-08-09 00:00 UTC .. 2019-08-11 00:00 UTC


def diagnose(cases, values) -> list[str]:
    """Fit ``store_beat_cycles`` alone, the other parameters as fitted, on the records of
    ``EARLY_CAMPAIGN``: how much slower the store path of that setup would have to be."""
    from vtatune.sim.calibration import levenberg_marquardt, log_errors
    early = [c for c in cases if EARLY_CAMPAIGN[0] <= c.measured_at < EARLY_CAMPAIGN[1]]
    if not early:
        return ["no record of the early campaign"]
    x = levenberg_marquardt(lambda y: log_errors(early, {**values, "store_beat_cycles": float(y[0])}),
                            [1.0], np.array([0.0]), np.array([1e4]), np.array([1.0]))
    k = float(x[0])
    rel = predict(early, {**values, "store_beat_cycles": k}) / np.array([c.measured_ms for c in early]) - 1
    out = [f"early campaign ({len(early)} records): store_beat_cycles = {k:.1f} reproduces them"]
    out += [f"  {c.group}: {c.name}: {100 * r:+.1f} %" for c, r in zip(early, rel)]
    out.append(summary("  early campaign with that store path", rel))
    return out


def table(cases, pred, rel, loo=None, used=None) -> list[str]:
    head = "| # | record | hw | measured ms | simulated ms | fit error |" + (" LOO error |" if loo is not None else "")
    rows = [head, "|" + " --- |" * (6 + (loo is not None))]
    for i, (c, p, r) in enumerate(zip(cases, pred, rel)):
        mark = "" if used is None or i in used else " ¹"
        line = (f"| {i} | {c.group}: {c.name}{mark} | {c.hw.name.split('_')[1]} | {c.measured_ms:.3f} | "
                f"{p:.3f} | {100 * r:+.1f} % |")
        if loo is not None:
            line += f" {100 * loo[i]:+.1f} % |"
        rows.append(line)
    return rows


def summary(name: str, err: np.ndarray) -> str:
    a = np.abs(err)
    return (f"{name}: mean |error| {100 * a.mean():.1f} %, median {100 * np.median(a):.1f} %, "
            f"within 15 %: {int(np.sum(a <= 0.15))}/{a.size} ({100 * np.mean(a <= 0.15):.0f} %)")


#: Variants of the model: each drops (fixed=) or adds (free=) one mechanism; --ablation refits
#: every one on the same records.
ABLATIONS = [
    ("the model as shipped", {}, ()),
    ("weights at bus speed (wgt_beat_cycles = 1)", {"wgt_beat_cycles": 1.0}, ()),
    ("no load_pad_2d row cost (inp_row_cycles = 0)", {"inp_row_cycles": 0}, ()),
    ("no zero-fill run cost (pad_run_cycles = 0)", {"pad_run_cycles": 0}, ()),
    ("no GEMM loop restart (gemm_loop_cycles = 0)", {"gemm_loop_cycles": 0}, ()),
    ("1 outstanding AXI burst", {"axi_outstanding": 1}, ()),
    ("2 outstanding AXI bursts", {"axi_outstanding": 2}, ()),
    ("+ host cost per micro-op (host_per_uop_ns fitted)", {}, ("host_per_uop_ns",)),
    ("+ store beat interval (store_beat_cycles fitted)", {}, ("store_beat_cycles",)),
    ("previous structure (latencies and host costs only)",
     {"wgt_beat_cycles": 1.0, "inp_row_cycles": 0, "pad_run_cycles": 0, "gemm_loop_cycles": 0}, ()),
]


def ablation(cases, base) -> list[str]:
    """Refit every variant of ``ABLATIONS``; report the trimmed sum of squares and the
    errors on the records of the shipped model's final fit (``base.used``)."""
    from vtatune.sim.calibration import FIT_PARAMS
    out = ["| variant | trimmed SS | mean abs error, shipped fit's records | within 15 %, all records |",
           "| --- | --- | --- | --- |"]
    for label, fixed, extra in ABLATIONS:
        free = [k for k in FIT_PARAMS if k not in fixed] + list(extra)
        t0 = time.time()
        f = fit(cases, free=free, fixed=fixed)
        a = np.abs(f.rel_errors)
        out.append(f"| {label} | {f.trimmed_ss:.4f} | {100 * a[base.used].mean():.1f} % | "
                   f"{int(np.sum(a <= 0.15))}/{a.size} |")
        print(out[-1], f"({time.time() - t0:.0f} s)", {k: f.values[k] for k in free}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the fit in hw/pynq_*.json")
    ap.add_argument("--loo", action="store_true", help="leave-one-out over every record")
    ap.add_argument("--log", type=pathlib.Path, default=BOARD_LOG, help="TopHub records")
    ap.add_argument("--markdown", type=pathlib.Path, help="write the tables to this file")
    ap.add_argument("--ablation", action="store_true",
                    help="refit variants without / with one mechanism each (~10 min)")
    ap.add_argument("--diagnose", action="store_true",
                    help="fit the store path of the 2019-08-09/10 records alone (docs/tsim.md)")
    args = ap.parse_args()
    t0 = time.time()
    cases, skipped = calibration_cases(args.log)
    print(f"{len(cases)} records compiled ({time.time() - t0:.0f} s); skipped {len(skipped)}:")
    for label, why in skipped:
        print(f"  {label}: {why}")
    t0 = time.time()
    f = fit(cases)
    print(f"fit ({time.time() - t0:.0f} s): " + ", ".join(f"{k}={v}" for k, v in f.values.items()))
    print(f"trimmed fit on {len(f.trimmed)} records, robust scale {100 * f.sigma:.1f} % (log), "
          f"final fit on {len(f.used)} records")
    pred = predict(cases, f.values)
    rel = f.rel_errors
    loo = None
    if args.loo:
        t0 = time.time()
        loo = leave_one_out(cases, start=f.values)
        print(f"leave-one-out ({time.time() - t0:.0f} s)")
    out = table(cases, pred, rel, loo, set(f.used))
    out.append("")
    out.append(summary("fit, all records", rel))
    if loo is not None:
        out.append(summary("leave-one-out, all records", loo))
    groups = sorted({c.group for c in cases})
    for g in groups:
        ix = [i for i, c in enumerate(cases) if c.group == g]
        out.append(summary(f"  fit, {g}", rel[ix]) + ("" if loo is None else
                   "; " + summary("LOO", loo[ix])))
    early = np.array([EARLY_CAMPAIGN[0] <= c.measured_at < EARLY_CAMPAIGN[1] for c in cases])
    for label, mask in (("records measured 2019-08-09/10", early), ("all other records", ~early)):
        ix = np.flatnonzero(mask)
        out.append(summary(f"fit, {label}", rel[ix]) + ("" if loo is None else
                   "; " + summary("LOO", loo[ix])))
    if args.diagnose:
        out += [""] + diagnose(cases, f.values)
    if args.ablation:
        out += [""] + ablation(cases, f)
    text = "\n".join(out)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.write:
        for name in HW_FILES:
            path = ROOT / "hw" / name
            data = json.loads(path.read_text())
            timing = data.get("timing", {})
            timing.update(f.values)
            timing["_doc"] = ("fitted by scripts/calibrate_tsim.py (one set for both PYNQ bitstreams) to "
                              "shared/calibration.md and the TopHub records of "
                              "scripts/data/tophub-pynq-z1.log; bus, burst and store values are the "
                              "HLS design's (docs/tsim.md)")
            data["timing"] = timing
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
