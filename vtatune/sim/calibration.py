"""Fitting tsim's free timing parameters to measured layer times (docs/tsim.md, Calibration).

The model has two kinds of free parameters:

* the accelerator's memory parameters (request latency in cycles, sustained bytes per cycle),
  searched on a grid — each grid point needs every calibration layer simulated;
* the host's cost per call (a launch cost and a cost per instruction), which add linearly to
  the simulated accelerator time and are solved, for each grid point, by non-negative least
  squares on relative error.

The grid point whose fit has the smallest worst relative error wins.  This module holds the
data (the PYNQ-Z1 measurements), the timing-only simulation of one program and the fit;
compiling the layers is the caller's business (``scripts/calibrate_tsim.py``, the tests), so
the simulator package does not depend on the compiler.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..hardware.config import HwConfig
from .dram import Dram
from .tsim import TimingSimulator


@dataclass(frozen=True)
class CalibrationPoint:
    """One measured layer: a ResNet-18 workload, its TopHub configuration and the measured
    time per call on the PYNQ-Z1 (shared/calibration.md)."""

    layer: str
    tile_h: int
    tile_w: int
    tile_ci: int
    tile_co: int
    oc_nthread: int
    h_nthread: int
    measured_ms: float

    @property
    def knobs(self) -> dict:
        return dict(tile_b=1, tile_h=self.tile_h, tile_w=self.tile_w, tile_ci=self.tile_ci,
                    tile_co=self.tile_co, oc_nthread=self.oc_nthread, h_nthread=self.h_nthread)


#: The five calibration layers (layer, h1, w1, ci1, co1, oc_nthread, h_nthread, measured ms).
#: TopHub's times were measured with the streams of the TVM 0.7-era stack: compile them with
#: ``sync="single"`` (docs/tsim.md explains why).
CALIBRATION = tuple(CalibrationPoint(*row) for row in [
    ("resnet18.C2", 8, 56, 1, 2, 2, 1, 5.699), ("resnet18.C4", 7, 28, 1, 4, 1, 2, 1.349),
    ("resnet18.C6", 14, 14, 1, 4, 2, 1, 2.669), ("resnet18.C8", 14, 14, 1, 4, 2, 1, 4.934),
    ("resnet18.C10", 7, 7, 1, 16, 2, 1, 1.081)])

#: The grid of memory parameters: request latency (cycles) x sustained bytes per cycle.
LATENCIES = (4, 8, 16, 24, 32, 48, 64, 96)
BANDWIDTHS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)


def grid_timing(base: HwConfig, mem_latency: int, bus_bytes_per_cycle: float) -> HwConfig:
    """``base`` with one grid point's memory parameters and no host cost (the host's share is
    fitted afterwards)."""
    return dataclasses.replace(base, timing=dataclasses.replace(
        base.timing, mem_latency=mem_latency, mem_write_latency=mem_latency,
        bus_bytes_per_cycle=bus_bytes_per_cycle, host_launch_us=0.0, host_per_insn_ns=0.0))


def simulate_accel(prog, hw: HwConfig) -> tuple[float, int]:
    """(accelerator ms, instruction count) of a compiled program (a
    ``vtatune.compiler.program.Program``) under tsim in timing-only mode."""
    dram = Dram()
    for name, data in prog.dram_contents(prog.random_inputs(0)).items():
        dram.map(prog.regions[name][0], data)
    sim = TimingSimulator(hw, dram, functional=False, check_races=False)
    res = sim.run(prog.insn_addr, prog.insn_count)
    return res.accel_ms, prog.insn_count


@dataclass(frozen=True)
class GridSims:
    """Every calibration program simulated at every grid point: ``accel_ms[g, i]`` and
    ``insns[g, i]`` for grid point ``points[g] = (mem_latency, bus_bytes_per_cycle)`` and
    program ``i``."""

    points: tuple[tuple[int, float], ...]
    accel_ms: np.ndarray
    insns: np.ndarray


def simulate_grid(progs: Sequence, base: HwConfig, latencies: Sequence[int] = LATENCIES,
                  bandwidths: Sequence[float] = BANDWIDTHS) -> GridSims:
    """Simulate every program at every grid point (the expensive part of a fit; do it once
    and fit any subset of the points with ``fit``)."""
    points = tuple(itertools.product(latencies, bandwidths))
    accel = np.zeros((len(points), len(progs)))
    insns = np.zeros((len(points), len(progs)))
    for g, (lat, bpc) in enumerate(points):
        hw = grid_timing(base, lat, bpc)
        for i, prog in enumerate(progs):
            accel[g, i], insns[g, i] = simulate_accel(prog, hw)
    return GridSims(points, accel, insns)


def fit_host(accel, insns, measured) -> np.ndarray:
    """Non-negative least squares on relative error for (launch_ms, per_insn_ms): the host's
    cost per call that, added to the accelerator times, best matches the measurements."""
    accel, insns, measured = (np.asarray(a, dtype=float) for a in (accel, insns, measured))
    A = np.stack([np.ones_like(accel), insns], axis=1) / measured[:, None]
    b = (measured - accel) / measured
    best = None
    for cols in ([0, 1], [0], [1], []):
        x = np.zeros(2)
        if cols:
            sol, *_ = np.linalg.lstsq(A[:, cols], b, rcond=None)
            if (sol < 0).any():
                continue
            x[cols] = sol
        err = np.sum((A @ x - b) ** 2)
        if best is None or err < best[0]:
            best = (err, x)
    return best[1]


@dataclass(frozen=True)
class Fit:
    """The fitted parameters, and the prediction for every program of the ``GridSims``
    (``predicted_ms``; ``rel_error`` is only filled for the points the fit used)."""

    mem_latency: int
    bus_bytes_per_cycle: float
    launch_ms: float
    per_insn_ms: float
    worst_rel_error: float         # on the fitted points
    accel_ms: np.ndarray           # all programs, at the chosen grid point
    predicted_ms: np.ndarray       # all programs

    @property
    def host_launch_us(self) -> float:
        return self.launch_ms * 1e3

    @property
    def host_per_insn_ns(self) -> float:
        return self.per_insn_ms * 1e6


def fit(sims: GridSims, measured: Sequence[float], use: Sequence[int] | None = None) -> Fit:
    """The grid point and host costs with the smallest worst relative error over the programs
    ``use`` (default: all); predictions are made for every program."""
    measured = np.asarray(measured, dtype=float)
    use = np.arange(len(measured)) if use is None else np.asarray(use)
    best = None
    for g, (lat, bpc) in enumerate(sims.points):
        accel, insns = sims.accel_ms[g], sims.insns[g]
        launch_ms, per_insn_ms = fit_host(accel[use], insns[use], measured[use])
        pred = accel + launch_ms + per_insn_ms * insns
        score = float(np.max(np.abs(pred[use] / measured[use] - 1)))
        if best is None or score < best.worst_rel_error:
            best = Fit(lat, bpc, float(launch_ms), float(per_insn_ms), score, accel, pred)
    return best


def leave_one_out(sims: GridSims, measured: Sequence[float]) -> np.ndarray:
    """For each program ``k``: fit on all the others, predict ``k``; the relative errors
    ``predicted / measured - 1`` of the held-out predictions."""
    measured = np.asarray(measured, dtype=float)
    n = len(measured)
    out = np.zeros(n)
    for k in range(n):
        f = fit(sims, measured, [i for i in range(n) if i != k])
        out[k] = f.predicted_ms[k] / measured[k] - 1
    return out
