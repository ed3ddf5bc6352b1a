"""Compiled programs produce exactly the numpy reference on fsim, for sampled valid
configurations of every suite (fixed seeds) and the calibration configurations."""
import numpy as np
import pytest

from vtatune.compiler.program import compile_program
from vtatune.compiler.reference import reference
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload
from vtatune.measure.runners import run_program

from .conftest import valid_sample

RESNET = [f"resnet18.C{i}" for i in range(2, 12)]
# calibration.md: (layer, h1, w1, ci1, co1, oc_nthread, h_nthread)
CALIBRATION = [("resnet18.C2", 8, 56, 1, 2, 2, 1), ("resnet18.C4", 7, 28, 1, 4, 1, 2),
               ("resnet18.C6", 14, 14, 1, 4, 2, 1), ("resnet18.C8", 14, 14, 1, 4, 2, 1),
               ("resnet18.C10", 7, 7, 1, 16, 2, 1)]


def check(wl, knobs, hw, seed=0):
    prog = compile_program(wl, knobs, hw)
    inputs = prog.random_inputs(seed)
    ex = run_program(prog, inputs)
    out, result = ex.output, ex.result
    expected = reference(prog.workload, inputs["data"], inputs["kernel"], inputs.get("bias"))
    assert out.shape == expected.shape
    assert np.array_equal(out, expected), f"{wl.name} {knobs}: wrong answer"
    assert result.leftover_tokens == {}  # every pushed token was consumed
    return result


def _cases(names, n, seed):
    out = []
    for name in names:
        for wl, cfg, hw in valid_sample(name, n, seed):
            out.append(pytest.param(wl, cfg, hw, id=f"{name}-{cfg.index}"))
    return out


@pytest.mark.parametrize("wl,cfg,hw", _cases(RESNET, 30, seed=18))
def test_resnet18_sampled(wl, cfg, hw):
    res = check(wl, cfg.knobs, hw, seed=cfg.index)
    macs = wl.out_channels * wl.out_height * wl.out_width * wl.kernel_h * wl.kernel_w * wl.in_channels
    assert res.counters["gemm_counter"] * 16 * 16 == macs  # every MAC exactly once


@pytest.mark.parametrize("layer,h1,w1,ci1,co1,oc,ht", CALIBRATION)
def test_calibration_configs(layer, h1, w1, ci1, co1, oc, ht):
    hw = HwConfig.load()
    wl = get_workload(layer, hw)
    knobs = dict(tile_b=1, tile_h=h1, tile_w=w1, tile_ci=ci1, tile_co=co1, oc_nthread=oc, h_nthread=ht)
    space_for(wl, hw).index_of(knobs)  # a real point of the space
    check(wl, knobs, hw)


@pytest.mark.parametrize("wl,cfg,hw", _cases([f"mobilenet.D{i}" for i in range(1, 10)], 10, seed=9)
                         + _cases([f"dcgan.CT{i}" for i in range(1, 4)], 10, seed=3)
                         + _cases([f"dense.{i}" for i in range(3)], 10, seed=5))
def test_other_suites_sampled(wl, cfg, hw):
    check(wl, cfg.knobs, hw, seed=cfg.index)


@pytest.mark.parametrize("name", ["resnet18.C6.bias", "resnet18.C7.relu", "dense.1.bias",
                                  "mobilenet.D5.relu", "dcgan.CT1.bias"])
def test_epilogue_variants(name):
    (wl, cfg, hw), = valid_sample(name, 1, seed=7)
    check(wl, cfg.knobs, hw, seed=2)


@pytest.mark.parametrize("name", ["resnet18.C10", "resnet18.C9", "dense.2", "mobilenet.D9"])
def test_4x8_configuration(name):
    hw = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")
    for wl, cfg, _ in valid_sample(name, 2, seed=4, hw=hw):
        check(wl, cfg.knobs, hw, seed=1)
