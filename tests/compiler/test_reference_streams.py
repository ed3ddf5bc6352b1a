"""The compiler reproduces, byte for byte, the programs the original TVM v0.14 VTA stack
built for two ResNet-18 template instances (instruction stream, micro-op buffer, DRAM
layout) — tokens, NOPs, virtual-thread interleaving, micro-op kernels and 2-D DMA included."""
import numpy as np
import pytest

from vtatune.compiler.program import compile_program
from vtatune.hardware.config import HwConfig
from vtatune.sim.bundle import load_bundle
from vtatune.workloads import CONV2D, Workload
from vtatune.measure.runners import run_program

CASES = {
    # name: (H, W, CI, CO, k, pad, stride), knobs (from the reference README)
    "C10_203": ((14, 14, 256, 512, 1, 0, 2),
                dict(tile_b=1, tile_h=7, tile_w=7, tile_ci=1, tile_co=16, oc_nthread=2, h_nthread=1)),
    "C2_1584": ((56, 56, 64, 64, 3, 1, 1),
                dict(tile_b=1, tile_h=1, tile_w=28, tile_ci=1, tile_co=4, oc_nthread=1, h_nthread=2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_stream_identical_to_original_stack(ref_dir, name):
    (h, w, ci, co, k, pad, s), knobs = CASES[name]
    wl = Workload(CONV2D, h, w, ci, co, k, k, pad, pad, s, s)
    prog = compile_program(wl, knobs, HwConfig.load())
    ref = load_bundle(ref_dir / f"{name}.npz")
    dram = ref.to_dram()
    assert len(prog.insns) == ref.insn_count
    assert prog.insn_blob == dram.read(ref.insn_addr, ref.insn_count * 16)
    # data, kernel, output and micro-op regions sit at the same physical addresses
    ref_addrs = [a for a, _ in ref.regions]
    assert [prog.regions[n][0] for n in ("data", "kernel", "out", "uop")] == ref_addrs[:4]
    uops = ref.regions[3][1][:prog.uop_words.size * 4].view("<u4")
    assert np.array_equal(uops, prog.uop_words)
    assert not ref.regions[3][1][prog.uop_words.size * 4:].any()


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_program_matches_numpy(name):
    from vtatune.compiler.reference import reference
    (h, w, ci, co, k, pad, s), knobs = CASES[name]
    wl = Workload(CONV2D, h, w, ci, co, k, k, pad, pad, s, s)
    prog = compile_program(wl, knobs, HwConfig.load())
    inputs = prog.random_inputs(seed=1)
    out = run_program(prog, inputs).output
    assert np.array_equal(out, reference(prog.workload, inputs["data"], inputs["kernel"]))
