"""The calibration fit of tsim (vtatune.sim.calibration, scripts/calibrate_tsim.py): it
reproduces the shipped timing parameters, and how well it predicts a layer it was not
fitted on (leave-one-out).  test_tsim_calibration.py checks the residuals on the fitted
points themselves."""
import numpy as np
import pytest

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.sim.calibration import CALIBRATION, fit, fit_host, leave_one_out, simulate_grid
from vtatune.workloads import get_workload

MEASURED = np.array([p.measured_ms for p in CALIBRATION])


@pytest.fixture(scope="module")
def sims():
    """Every calibration layer (compiled as the script does) simulated at every grid point
    (360 timing-only runs, ~2 s)."""
    hw = HwConfig.load()
    progs = [compile_program(get_workload(p.layer, hw), p.knobs, hw, sync="single")
             for p in CALIBRATION]
    return simulate_grid(progs, hw)


def test_fit_host_recovers_known_host_costs():
    accel = np.array([5.0, 1.2, 2.5, 0.9])
    insns = np.array([270.0, 162.0, 138.0, 121.0])
    measured = accel + 0.04 + 2e-4 * insns
    assert fit_host(accel, insns, measured) == pytest.approx([0.04, 2e-4], rel=1e-9)
    # a host cost that would have to be negative is clamped to zero (non-negative LSQ)
    launch, per_insn = fit_host(accel, insns, accel - 1e-5 * insns)
    assert launch >= 0 and per_insn >= 0


def test_fit_on_all_points_is_the_shipped_timing(sims):
    """Fitting all five layers gives the parameters shipped in hw/pynq_*.json, with the
    residuals docs/tsim.md reports (worst 4.0 %)."""
    f = fit(sims, MEASURED)
    t = HwConfig.load().timing
    assert (f.mem_latency, f.bus_bytes_per_cycle) == (t.mem_latency, t.bus_bytes_per_cycle)
    assert round(f.host_launch_us, 1) == pytest.approx(t.host_launch_us)
    assert round(f.host_per_insn_ns, 1) == pytest.approx(t.host_per_insn_ns)
    assert f.worst_rel_error == pytest.approx(np.max(np.abs(f.predicted_ms / MEASURED - 1)))
    assert f.worst_rel_error < 0.05


def test_leave_one_out_prediction_errors(sims):
    """Each layer predicted by a fit of the other four.  Measured (predicted / measured - 1):
    C2 -0.4 %, C4 +15.1 %, C6 +1.5 %, C8 -1.0 %, C10 -35.2 %.

    Stated bound: every held-out layer within 40 %, and the median within 2 %.  The fit does
    not generalise to every layer: C10 (the weight-heavy layer, the only one whose time moves
    much with the memory parameters) alone pins the memory latency — without it the fit picks
    16 cycles instead of 64 and a 250 ns per-instruction host cost, and under-predicts C10 by
    a third; without C4 (the only layer with two h-threads) it over-predicts C4 by 15 %.
    Five points for four parameters: the fitted-point residuals of 4 % overstate how well
    tsim predicts an unseen layer."""
    loo = leave_one_out(sims, MEASURED)
    assert loo.shape == (len(CALIBRATION),) and np.all(np.isfinite(loo))
    assert np.max(np.abs(loo)) < 0.40, dict(zip([p.layer for p in CALIBRATION], loo))
    assert np.median(np.abs(loo)) < 0.02, dict(zip([p.layer for p in CALIBRATION], loo))
