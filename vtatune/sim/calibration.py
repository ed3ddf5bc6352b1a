"""Fitting tsim's timing parameters to measured layer times (docs/tsim.md, Calibration).

A measured layer becomes a :class:`Case`: its compiled stream reduced once to tsim's
parameter-free instruction features (``vtatune.sim.timing.InsnFeatures``) and schedule
inputs.  ``predict`` re-costs and re-schedules the features for any parameter values —
exactly what tsim does for the program, without running its functional core or decoding
the stream again — so a fit evaluates thousands of parameter sets in seconds.

The fit (``fit``) adjusts ``FIT_PARAMS`` (one set for every case, whatever its hardware
configuration) to minimise squared log errors, robustly: least trimmed squares (the
``coverage`` share of cases the candidate reproduces best counts, found by concentration
steps from several starts), then one reweighting step — every case within 2.5 estimated
standard deviations of the trimmed fit — and rounding of the integer parameters.  A case
that no parameter set reconciles with the others therefore cannot drag the parameters
(docs/tsim.md explains why the published times need this).  ``leave_one_out`` refits
without each case and predicts it.

Compiling the layers is the caller's business (``scripts/calibrate_tsim.py``, the tests), so
the simulator package does not depend on the compiler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..hardware.config import HwConfig
from ..hardware.timing_params import TIMING_FIELDS
from .dram import Dram
from .fsim import FunctionalSimulator
from .timing import UOP, InsnFeatures, Timing, insn_features
from .tsim import MOD_INDEX, TOKEN_INDEX, TimingSimulator, schedule


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

#: The parameters the fit adjusts (the others keep the hardware file's values).
FIT_PARAMS = ("mem_latency", "mem_write_latency", "inp_row_cycles", "pad_run_cycles",
              "wgt_beat_cycles", "gemm_loop_cycles", "host_launch_us", "host_per_insn_ns")
#: Scale of each fitted parameter (finite-difference steps, damping).
_SCALE = {"mem_latency": 10.0, "mem_write_latency": 10.0, "inp_row_cycles": 10.0,
          "pad_run_cycles": 10.0, "wgt_beat_cycles": 0.2, "gemm_loop_cycles": 1.0,
          "host_launch_us": 10.0, "host_per_insn_ns": 100.0}
#: Starting points of the trimmed fit (besides the hardware file's values).
STARTS = (
    {"mem_latency": 64, "mem_write_latency": 64, "inp_row_cycles": 0, "pad_run_cycles": 0,
     "wgt_beat_cycles": 1.0, "gemm_loop_cycles": 0, "host_launch_us": 40.0, "host_per_insn_ns": 0.0},
    {"mem_latency": 32, "mem_write_latency": 32, "inp_row_cycles": 30, "pad_run_cycles": 30,
     "wgt_beat_cycles": 2.0, "gemm_loop_cycles": 2, "host_launch_us": 30.0, "host_per_insn_ns": 100.0},
    {"mem_latency": 16, "mem_write_latency": 128, "inp_row_cycles": 60, "pad_run_cycles": 10,
     "wgt_beat_cycles": 1.5, "gemm_loop_cycles": 4, "host_launch_us": 10.0, "host_per_insn_ns": 500.0},
)


@dataclass
class Case:
    """A measured program prepared for fitting: its features and schedule inputs."""

    name: str
    measured_ms: float
    hw: HwConfig
    features: InsnFeatures
    mods: list
    need_give: list
    finish: list
    n_insns: int
    n_uops: int
    group: str = ""           # where the measurement comes from (network block, bitstream)
    measured_at: float = 0.0  # when (Unix time; 0 unknown)

    @classmethod
    def from_program(cls, prog, name: str, measured_ms: float, group: str = "",
                     measured_at: float = 0.0) -> "Case":
        """``prog`` a compiled ``vtatune.compiler.program.Program``."""
        hw = prog.hw
        sim = FunctionalSimulator(hw, Dram())
        insns, routes, need_give, finish = sim._prepare(
            np.frombuffer(prog.insn_blob, dtype=np.uint8))
        feats = insn_features(insns, hw)
        ng = [(tuple(TOKEN_INDEX[q] for q in a), tuple(TOKEN_INDEX[q] for q in b)) for a, b in need_give]
        n_uops = int(feats.nbytes[feats.kind == UOP].sum() // 4)
        return cls(name, float(measured_ms), hw, feats, [MOD_INDEX[m] for m in routes], ng,
                   list(finish), len(insns), n_uops, group, float(measured_at))


def timing_for(case: Case, values: dict | None = None) -> Timing:
    """The cost model of ``case``'s hardware with ``values`` (fitted parameters) in place
    of the hardware file's."""
    hw = case.hw
    return Timing(hw.timing, hw.platform.freq_mhz, hw.bus_width // 8, **(values or {}))


def predict_case(case: Case, values: dict | None = None) -> tuple[float, float]:
    """(accelerator ms, host ms) of one call of ``case`` under ``values``."""
    tm = timing_for(case, values)
    q = case.hw.queues
    s = schedule(tm, case.mods, case.need_give, case.finish, tm.costs(case.features),
                 cap=q.insn_queue_depth + 1, dep_cap=q.dep_queue_depth)
    return tm.accel_ms(s.end), tm.host_ms(case.n_insns, case.n_uops)


def predict(cases: Sequence[Case], values: dict | None = None) -> np.ndarray:
    """Latency (accelerator + host, ms per call) of every case under ``values``."""
    return np.array([sum(predict_case(c, values)) for c in cases])


def simulate_accel(prog, hw: HwConfig) -> tuple[float, int]:
    """(accelerator ms, instruction count) of a compiled program under tsim itself in
    timing-only mode (the check that ``predict`` and tsim agree)."""
    dram = Dram()
    for name, data in prog.dram_contents(prog.random_inputs(0)).items():
        dram.map(prog.regions[name][0], data)
    sim = TimingSimulator(hw, dram, functional=False, check_races=False)
    res = sim.run(prog.insn_addr, prog.insn_count)
    return res.accel_ms, prog.insn_count


# ----------------------------------------------------------------------------- fitting
def _bounds(name: str) -> tuple[float, float]:
    spec = TIMING_FIELDS[name]
    return float(spec.lo), float(min(spec.hi, 1e5))


def _default(case: Case, name: str) -> float:
    """A parameter's value in ``case``'s hardware file (a start for parameters ``STARTS``
    does not name)."""
    return float(getattr(case.hw.timing, name))


def _values(free: Sequence[str], x: np.ndarray, fixed: dict | None = None) -> dict:
    v = dict(fixed or {})
    v.update({k: float(xi) for k, xi in zip(free, x)})
    return v


def log_errors(cases: Sequence[Case], values: dict) -> np.ndarray:
    """``log(predicted / measured)`` of every case."""
    meas = np.array([c.measured_ms for c in cases])
    return np.log(predict(cases, values) / meas)


def levenberg_marquardt(resid: Callable[[np.ndarray], np.ndarray], x0: Sequence[float],
                        lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, *,
                        max_iter: int = 30, tol: float = 1e-3) -> np.ndarray:
    """Minimise ``sum(resid(x)**2)`` within the box [lo, hi]: damped Gauss-Newton steps on
    a forward-difference Jacobian (steps of 2 % of a parameter or 1 % of its scale: the
    model is piecewise linear, smaller steps would see only its kinks)."""
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    r = resid(x)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(max_iter):
        J = np.empty((r.size, x.size))
        for k in range(x.size):
            h = max(0.02 * abs(x[k]), 0.01 * scale[k])
            xk = x.copy()
            xk[k] = x[k] + h if x[k] + h <= hi[k] else x[k] - h
            J[:, k] = (resid(xk) - r) / (xk[k] - x[k])
        A, g = J.T @ J, J.T @ r
        d = np.diag(A) + 1e-12
        improved = False
        for _ in range(10):
            try:
                step = np.linalg.solve(A + lam * np.diag(d), -g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            xn = np.clip(x + step, lo, hi)
            rn = resid(xn)
            cn = float(rn @ rn)
            if cn < cost:
                improved = cost - cn > tol * max(cost, 1e-12)
                x, r, cost = xn, rn, cn
                lam = max(lam / 3, 1e-9)
                break
            lam *= 4
        if not improved:
            break
    return x


@dataclass
class Fit:
    """A fitted parameter set and what it does on every case."""

    values: dict                  # FIT_PARAMS -> value (integer parameters rounded)
    log_errors: np.ndarray        # every case, log(predicted / measured)
    trimmed: list                 # indices of the cases of the best trimmed fit
    used: list                    # indices of the cases of the final (reweighted) fit
    sigma: float                  # robust scale of the log errors (trimmed fit)
    trimmed_ss: float = 0.0       # sum of the h smallest squared log errors (trimmed fit)

    @property
    def rel_errors(self) -> np.ndarray:
        return np.exp(self.log_errors) - 1


def _trimmed_scale(ss: float, h: int, n: int) -> float:
    """Consistent standard deviation from the ``h`` smallest of ``n`` squared residuals
    (normal errors: the variance of a normal truncated to its central h/n share)."""
    q = (1 + h / n) / 2
    z = _norm_ppf(q)
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    frac = 1 - 2 * z * phi / (2 * q - 1)
    return math.sqrt(ss / h / max(frac, 1e-9))


def _norm_ppf(p: float) -> float:
    """Standard normal quantile (bisection on erf: no scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def fit(cases: Sequence[Case], use: Sequence[int] | None = None, *,
        free: Sequence[str] = FIT_PARAMS, fixed: dict | None = None,
        starts: Sequence[dict] | None = None, coverage: float = 0.55, cutoff: float = 2.5,
        min_sigma: float = 0.02) -> Fit:
    """Robust fit of ``free`` over the cases ``use`` (default all) — module docstring.
    ``fixed`` holds other parameters at given values instead of the hardware file's (the
    ablations of scripts/calibrate_tsim.py); ``starts`` are starting values (default: the
    first case's hardware file and ``STARTS``); the reweighting keeps the cases within ``cutoff`` robust standard
    deviations, the deviation taken at least ``min_sigma`` (log units: the run-to-run noise
    of board measurements is of that order)."""
    use = list(range(len(cases))) if use is None else list(use)
    free = list(free)
    lo = np.array([_bounds(k)[0] for k in free])
    hi = np.array([_bounds(k)[1] for k in free])
    scale = np.array([_SCALE.get(k, 1.0) for k in free])
    if starts is None:
        t = cases[use[0]].hw.timing
        starts = [{k: getattr(t, k) for k in free}, *STARTS]
    h = max(len(free) + 1, min(len(use), int(coverage * len(use))))

    held = dict(fixed or {})

    def resid(x, idx):
        return log_errors([cases[i] for i in idx], _values(free, x, held))

    best = None
    for start in starts:
        x = np.array([float(start.get(k, _default(cases[use[0]], k))) for k in free])
        subset = None
        for _ in range(8):  # concentration steps (short fits until the subset settles)
            r = resid(x, use)
            new = sorted(use[j] for j in np.argsort(np.abs(r))[:h])
            if new == subset:
                break
            subset = new
            x = levenberg_marquardt(lambda y: resid(y, subset), x, lo, hi, scale, max_iter=6)
        x = levenberg_marquardt(lambda y: resid(y, subset), x, lo, hi, scale)
        r = resid(x, use)
        ss = float(np.sort(r ** 2)[:h].sum())
        if best is None or ss < best[0]:
            best = (ss, x, subset)
    ss, x, subset = best
    sigma = max(_trimmed_scale(ss, h, len(use)), min_sigma)
    r = resid(x, use)
    used = sorted(i for i, e in zip(use, r) if abs(e) <= cutoff * sigma)
    if len(used) > len(free):
        x = levenberg_marquardt(lambda y: resid(y, used), x, lo, hi, scale)
    # integer parameters to whole cycles, then the others once more
    ints = [k for k in free if TIMING_FIELDS[k].kind is int]
    fixed = {**held, **{k: float(round(v)) for k, v in zip(free, x) if k in ints}}
    rest = [k for k in free if k not in ints]
    if rest:
        xr = np.array([v for k, v in zip(free, x) if k not in ints])
        sel = [free.index(k) for k in rest]
        xr = levenberg_marquardt(lambda y: log_errors([cases[i] for i in used], _values(rest, y, fixed)),
                                 xr, lo[sel], hi[sel], scale[sel])
        fixed.update({k: float(v) for k, v in zip(rest, xr)})
    values = {k: (int(fixed[k]) if k in ints else round(fixed[k], 4)) for k in free}
    values = {**held, **values}
    return Fit(values, log_errors(cases, values), subset, used, sigma, ss)


def leave_one_out(cases: Sequence[Case], which: Sequence[int] | None = None, *,
                  start: dict | None = None, **kw) -> np.ndarray:
    """For each case ``k`` of ``which`` (default all): fit on all the others, predict ``k``;
    the relative errors ``predicted / measured - 1``.  ``start`` (e.g. the full fit's
    values) replaces the default starting points."""
    which = range(len(cases)) if which is None else which
    out = []
    for k in which:
        others = [i for i in range(len(cases)) if i != k]
        f = fit(cases, others, starts=None if start is None else [start], **kw)
        out.append(float(predict([cases[k]], f.values)[0] / cases[k].measured_ms - 1))
    return np.array(out)


__all__ = ["CALIBRATION", "FIT_PARAMS", "Case", "CalibrationPoint", "Fit", "fit",
           "leave_one_out", "log_errors", "predict", "predict_case", "simulate_accel",
           "levenberg_marquardt"]
