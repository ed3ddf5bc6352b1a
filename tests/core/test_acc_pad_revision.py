"""ACC-load padding is a revision of the HLS compute module (``HwConfig.acc_load_pad``).

Up to apache/tvm-vta commit 6096ca0 the compute module loaded ACC with ``load_2d`` (pad
fields ignored, the rows packed densely at ``sram_base``); since then with ``load_pad_2d``
(zero rows before/after, zero elements before/after each row, like INP).  The published
PYNQ bitstreams predate the change (docs/hardware.md), so the default ignores the pads.

Every stream here is built by hand; the expected ACC SRAM contents are written out with
numpy index arithmetic from the rule above, never taken from the simulator.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vtatune.errors import SramRangeError
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluOp, MemType
from vtatune.sim.tsim import TimingSimulator

try:
    from .progs import Prog
except ImportError:  # collected without the package context
    from progs import Prog

ACC, OUT = MemType.ACC, MemType.OUT
HW = HwConfig.load()                               # pynq 1x16: acc_load_pad False
HW_PAD = dataclasses.replace(HW, acc_load_pad=True)
HW48 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")

SIMS = ["fsim", "tsim"]


def make_prog(hw: HwConfig, sim: str) -> Prog:
    p = Prog(hw)
    if sim == "tsim":
        p.sim = TimingSimulator(hw)
    return p


def distinct_acc(rng, hw: HwConfig, n: int) -> np.ndarray:
    """n ACC elements, every lane non-zero (a zero could hide a missing pad)."""
    a = rng.integers(1, 1 << 30, size=(n, hw.batch, hw.block_out), dtype=np.int64)
    a *= rng.choice([-1, 1], size=a.shape)
    return a.astype(np.int32)


def sentinel_fill(p: Prog, rng, n: int) -> np.ndarray:
    """Load n non-zero ACC elements at SRAM 0 (instruction 0) and return them."""
    s = distinct_acc(rng, p.hw, n)
    p.load(ACC, 0, p.put(s, ACC), 1, n)
    return s


# ------------------------------------------------------------------------- the two rules
@pytest.mark.parametrize("sim", SIMS)
def test_default_revision_ignores_acc_pads(sim):
    rng = np.random.default_rng(1)
    p = make_prog(HW, sim)
    sent = sentinel_fill(p, rng, 48)
    data = distinct_acc(rng, HW, 12)              # DRAM rows of pitch 4, we read 2 x 3
    p.load(ACC, 5, p.put(data, ACC), y_size=2, x_size=3, x_stride=4,
           y_pad_0=1, y_pad_1=2, x_pad_0=1, x_pad_1=2)
    p.finish()
    res = p.run()
    exp = sent.copy()
    # load_2d: row r, element c -> SRAM 5 + 3r + c, from DRAM element 4r + c
    for r in range(2):
        for c in range(3):
            exp[5 + 3 * r + c] = data[4 * r + c]
    np.testing.assert_array_equal(p.sim.sram.acc[:48], exp)
    assert res.counters["acc_load_nbytes"] == (48 + 6) * 64


@pytest.mark.parametrize("sim", SIMS)
def test_padded_revision_zero_fills_acc_pads(sim):
    rng = np.random.default_rng(2)
    p = make_prog(HW_PAD, sim)
    sent = sentinel_fill(p, rng, 48)
    data = distinct_acc(rng, HW, 12)
    p.load(ACC, 5, p.put(data, ACC), y_size=2, x_size=3, x_stride=4,
           y_pad_0=1, y_pad_1=2, x_pad_0=1, x_pad_1=2)
    p.finish()
    res = p.run()
    # load_pad_2d: a 5 x 6 block (1 + 2 + 2 rows, 1 + 3 + 2 columns) from SRAM 5 on,
    # zeros except rows 1..2, columns 1..3
    exp = sent.copy()
    exp[5:5 + 30] = 0
    for r in range(2):
        for c in range(3):
            exp[5 + (1 + r) * 6 + (1 + c)] = data[4 * r + c]
    np.testing.assert_array_equal(p.sim.sram.acc[:48], exp)
    assert np.all(p.sim.sram.acc[35:48] == sent[35:48])   # nothing beyond the block
    # the profiler counts the transferred elements only (x_size * y_size), as for INP
    assert res.counters["acc_load_nbytes"] == (48 + 6) * 64


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("hw", [HW, HW_PAD], ids=["load_2d", "load_pad_2d"])
def test_unpadded_acc_load_is_the_same_on_both_revisions(sim, hw):
    rng = np.random.default_rng(3)
    p = make_prog(hw, sim)
    sent = sentinel_fill(p, rng, 24)
    data = distinct_acc(rng, hw, 10)
    p.load(ACC, 2, p.put(data, ACC), y_size=2, x_size=4, x_stride=5)
    p.finish()
    p.run()
    exp = sent.copy()
    exp[2:6], exp[6:10] = data[0:4], data[5:9]
    np.testing.assert_array_equal(p.sim.sram.acc[:24], exp)


@pytest.mark.parametrize("sim", SIMS)
def test_pads_only_acc_load(sim):
    """x_size 0 with pads: load_pad_2d still writes its zero rows and columns (X = 3,
    rows = 2 + 1 + 1 -> 12 zeros, no data, nothing counted); load_2d moves nothing."""
    rng = np.random.default_rng(4)
    pads = dict(y_pad_0=2, y_pad_1=1, x_pad_0=1, x_pad_1=2)
    for hw, zeros in ((HW, 0), (HW_PAD, 12)):
        p = make_prog(hw, sim)
        sent = sentinel_fill(p, rng, 32)
        p.load(ACC, 7, p.put(distinct_acc(rng, hw, 4), ACC), y_size=1, x_size=0, x_stride=1, **pads)
        p.finish()
        res = p.run()
        exp = sent.copy()
        exp[7:7 + zeros] = 0
        np.testing.assert_array_equal(p.sim.sram.acc[:32], exp)
        assert res.counters["acc_load_nbytes"] == 32 * 64


def test_padded_acc_load_range_is_checked_on_the_padded_extent():
    """2 rows x 2 elements at SRAM depth - 4 fit without pads; with one zero row after
    them the block needs 6 elements and runs past the buffer."""
    depth = HW.acc_buff_depth
    for hw, fails in ((HW, False), (HW_PAD, True)):
        p = Prog(hw)
        data = distinct_acc(np.random.default_rng(5), hw, 4)
        p.load(ACC, depth - 4, p.put(data, ACC), y_size=2, x_size=2, x_stride=2, y_pad_1=1)
        p.finish()
        if fails:
            with pytest.raises(SramRangeError) as ei:
                p.run()
            assert ei.value.insn_index == 0 and ei.value.field == "sram_base"
        else:
            p.run()
            np.testing.assert_array_equal(p.sim.sram.acc[depth - 4:], data)


def test_padded_acc_load_on_4x8():
    """BATCH 4, BLOCK 8: an ACC element is (4, 8) int32 = 128 bytes."""
    hw = dataclasses.replace(HW48, acc_load_pad=True)
    rng = np.random.default_rng(6)
    p = Prog(hw)
    data = distinct_acc(rng, hw, 6)
    assert data.shape == (6, 4, 8)
    p.load(ACC, 0, p.put(data, ACC), y_size=3, x_size=2, x_stride=2, x_pad_1=1, y_pad_0=1)
    p.finish()
    res = p.run()
    exp = np.zeros((12, 4, 8), np.int32)             # 4 rows x 3 columns
    for r in range(3):
        exp[(1 + r) * 3:(1 + r) * 3 + 2] = data[2 * r:2 * r + 2]
    np.testing.assert_array_equal(p.sim.sram.acc[:12], exp)
    assert res.counters["acc_load_nbytes"] == 6 * 128


@pytest.mark.parametrize("sim", SIMS)
def test_padded_bias_reaches_dram_through_alu_and_store(sim):
    """End to end: LOAD ACC (padded) -> ALU SHR 0 (copies ACC into the OUT shadow) ->
    STORE; DRAM gets the low bytes of the zero-padded block."""
    rng = np.random.default_rng(7)
    for hw in (HW, HW_PAD):
        p = make_prog(hw, sim)
        data = rng.integers(-1000, 1000, size=(4, 1, 16)).astype(np.int32)
        p.load(ACC, 0, p.put(np.full((16, 1, 16), 99, np.int32), ACC), 1, 16)  # stale values
        p.load(ACC, 0, p.put(data, ACC), y_size=2, x_size=2, x_stride=2,
               y_pad_0=1, x_pad_0=1)
        p.uops([(0, 0, 0)])
        p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=9, dst_factor_in=1, src_factor_in=1,
              alu_opcode=AluOp.SHR, use_imm=1, imm=0, push_next=1)
        out = p.buffer(9 * 16, OUT)
        p.store(0, out, 1, 9, pop_prev=1, push_prev=1)
        p.finish(pop_next=1)
        p.run()
        if hw.acc_load_pad:   # 3 x 3 block: zero row, then [0, d0, d1], [0, d2, d3]
            block = np.zeros((9, 1, 16), np.int32)
            block[[4, 5, 7, 8]] = data
        else:                 # d0..d3 densely at 0..3, then the stale 99s
            block = np.concatenate([data, np.full((5, 1, 16), 99, np.int32)])
        np.testing.assert_array_equal(p.read_out(out, 9), block.astype(np.int8))
