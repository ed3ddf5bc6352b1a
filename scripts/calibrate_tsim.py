#!/usr/bin/env python3
"""Fit tsim's free timing parameters to the PYNQ-Z1 calibration measurements.

    python scripts/calibrate_tsim.py [--write]

The five layers of shared/calibration.md (TopHub measurements, time per call) are compiled
with vtatune's compiler and timed with tsim in timing-only mode.  For every point of a grid
over the accelerator's memory parameters (request latency, sustained bytes per cycle) the
host's launch cost and per-instruction cost are solved by non-negative least squares on
relative error; the best point is reported with per-layer measured vs simulated times, and
with the leave-one-out errors (each layer predicted by a fit of the other four).  The fit
itself lives in vtatune.sim.calibration.
``--write`` stores the fitted values in the ``timing`` section of the shipped PYNQ
configuration JSON.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.sim.calibration import CALIBRATION, fit, leave_one_out, simulate_grid
from vtatune.workloads.suites import get_workload

ROOT = pathlib.Path(__file__).resolve().parents[1]


def programs(hw):
    """The calibration layers compiled with their TopHub configurations; TopHub's times were
    measured with the streams of the TVM 0.7-era stack: one dependence pass (docs/tsim.md
    explains why)."""
    return [compile_program(get_workload(p.layer, hw), p.knobs, hw, sync="single")
            for p in CALIBRATION]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the fit in hw/pynq_*.json")
    args = ap.parse_args()
    base = HwConfig.load()
    measured = np.array([p.measured_ms for p in CALIBRATION])
    sims = simulate_grid(programs(base), base)
    f = fit(sims, measured)
    rel = f.predicted_ms / measured - 1
    print(f"fit: mem_latency={f.mem_latency} cycles, bus_bytes_per_cycle={f.bus_bytes_per_cycle}, "
          f"host_launch_us={f.host_launch_us:.1f}, host_per_insn_ns={f.host_per_insn_ns:.1f}; "
          f"worst |error| {100 * f.worst_rel_error:.1f} %")
    print("| layer | config (h1, w1, ci1, co1, oc, h) | measured ms | simulated ms | accelerator ms | error |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p, a, pred, r in zip(CALIBRATION, f.accel_ms, f.predicted_ms, rel):
        print(f"| {p.layer} | {p.tile_h}, {p.tile_w}, {p.tile_ci}, {p.tile_co}, {p.oc_nthread}, "
              f"{p.h_nthread} | {p.measured_ms:.3f} | {pred:.3f} | {a:.3f} | {100 * r:+.1f} % |")
    loo = leave_one_out(sims, measured)
    print("leave-one-out (fit on the other four, predict this one): "
          + ", ".join(f"{p.layer} {100 * e:+.1f} %" for p, e in zip(CALIBRATION, loo)))
    if args.write:
        for path in sorted((ROOT / "hw").glob("pynq_*.json")):
            data = json.loads(path.read_text())
            timing = data.get("timing", {})
            timing.update({"mem_latency": f.mem_latency, "mem_write_latency": f.mem_latency,
                           "bus_bytes_per_cycle": f.bus_bytes_per_cycle,
                           "host_launch_us": round(f.host_launch_us, 1),
                           "host_per_insn_ns": round(f.host_per_insn_ns, 1)})
            data["timing"] = timing
            path.write_text(json.dumps(data, indent=2) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
