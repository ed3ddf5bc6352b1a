"""tsim with the shipped timing parameters reproduces every PYNQ-Z1 calibration
measurement (shared/calibration.md) within 15 %, with one parameter set.  These are the
points the parameters were fitted on (residuals, not predictions); the leave-one-out check
of the fit is in test_tsim_calibration_fit.py."""
import pytest

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.workloads.suites import get_workload
from vtatune.measure.runners import run_program

# layer, h1, w1, ci1, co1, oc_nthread, h_nthread, measured ms per call
CALIBRATION = [("resnet18.C2", 8, 56, 1, 2, 2, 1, 5.699), ("resnet18.C4", 7, 28, 1, 4, 1, 2, 1.349),
               ("resnet18.C6", 14, 14, 1, 4, 2, 1, 2.669), ("resnet18.C8", 14, 14, 1, 4, 2, 1, 4.934),
               ("resnet18.C10", 7, 7, 1, 16, 2, 1, 1.081)]


@pytest.mark.parametrize("layer,h1,w1,ci1,co1,oc,ht,ms", CALIBRATION)
def test_residuals_on_the_fitted_points_within_15_percent(layer, h1, w1, ci1, co1, oc, ht, ms):
    hw = HwConfig.load()
    wl = get_workload(layer, hw)
    knobs = dict(tile_b=1, tile_h=h1, tile_w=w1, tile_ci=ci1, tile_co=co1, oc_nthread=oc, h_nthread=ht)
    prog = compile_program(wl, knobs, hw, sync="single")
    res = run_program(prog, prog.random_inputs(0), "tsim").result
    assert res.latency_ms == pytest.approx(ms, rel=0.15)
    assert res.host_ms == pytest.approx(hw.timing.host_launch_us / 1e3)
    assert res.races == []
