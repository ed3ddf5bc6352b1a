"""Tests of the functional simulator (fsim) against the VTA dossier (/work/shared/vta-spec.md).

Every expected value comes from an independent numpy/Python reference written here from
the text of §2.11 (sequential loop semantics, "bit-exact reference = HLS"), §2.10 (element
layouts) and §3.3 (profiler counters); where HLS and TVM's fsim differ we follow the HLS
column of §3.4.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from vtatune.errors import (DramRangeError, MissingFinishError, SramRangeError,
                            TokenDeadlockError, UndefinedBehaviourError, UnfinishedWorkError)
from vtatune.hardware import isa
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluOp, MemType

try:  # tests/core may become a package one day
    from .progs import Prog
except ImportError:  # pragma: no cover - rootdir-less layout (no __init__.py)
    from progs import Prog

CFG_4X8 = "pynq_4x8_i8w8a32_15_16_16_18"
INP, WGT, ACC, OUT, UOP = MemType.INP, MemType.WGT, MemType.ACC, MemType.OUT, MemType.UOP
MIN, MAX, ADD, SHR, MUL = AluOp.MIN, AluOp.MAX, AluOp.ADD, AluOp.SHR, AluOp.MUL
I32_MAX, I32_MIN = (1 << 31) - 1, -(1 << 31)


# =============================================================================== references
def wrap32(x):
    """Two's-complement wrap of (arrays of) Python/int64 integers to int32, as int64."""
    x = np.asarray(x, dtype=np.int64)
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def low8(x) -> np.ndarray:
    """Low 8 bits of each value, read as int8 (the OUT shadow / stored byte)."""
    return (np.asarray(x, dtype=np.int64) & 0xFF).astype(np.uint8).view(np.int8)


def sext16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def ref_load_2d(dram: np.ndarray, base: int, y_size: int, x_size: int, x_stride: int,
                y_pad_0=0, y_pad_1=0, x_pad_0=0, x_pad_1=0) -> np.ndarray:
    """§2.11 LOAD: the sequence of SRAM elements written, starting at sram_base.
    ``dram`` is an array of elements, ``base`` an index into it."""
    zero = np.zeros(dram.shape[1:], dtype=dram.dtype)
    width = x_pad_0 + x_size + x_pad_1
    seq = [zero] * (y_pad_0 * width)
    for r in range(y_size):
        seq += [zero] * x_pad_0
        seq += [dram[base + r * x_stride + c] for c in range(x_size)]
        seq += [zero] * x_pad_1
    seq += [zero] * (y_pad_1 * width)
    return np.array(seq, dtype=dram.dtype).reshape((-1,) + dram.shape[1:])


def _walk(uops, kw):
    """The (acc-dst, src, wgt) index triples of a GEMM/ALU in sequential order (§2.11)."""
    for o in range(kw.get("iter_out", 0)):
        for i in range(kw.get("iter_in", 0)):
            for (d, s, w) in uops:
                yield (d + o * kw.get("dst_factor_out", 0) + i * kw.get("dst_factor_in", 0),
                       s + o * kw.get("src_factor_out", 0) + i * kw.get("src_factor_in", 0),
                       w + o * kw.get("wgt_factor_out", 0) + i * kw.get("wgt_factor_in", 0))


def ref_gemm(acc, out, inp, wgt, uops, kw):
    """Sequential GEMM of §2.11 on int64 copies; returns the set of touched ACC indexes.
    acc: (n, B, BO) int64, out: (n, B, BO) int8, inp: (n, B, BI), wgt: (n, BO, BI)."""
    touched = set()
    for a, x, w in _walk(uops, kw):
        xi = inp[x].astype(np.int64)          # (B, BI)
        wi = wgt[w].astype(np.int64)          # (BO, BI), row = output channel
        prod = np.zeros(acc.shape[1:], dtype=np.int64)
        for b in range(xi.shape[0]):
            for c in range(wi.shape[0]):
                prod[b, c] = int(np.dot(xi[b], wi[c]))
        new = wrap32(acc[a] + prod)
        out[a] = low8(new)                    # HLS out shadow (also on reset, §2.11)
        acc[a] = 0 if kw.get("reset_reg", 0) else new
        touched.add(a)
    return touched


def alu_lane(op: int, a: int, b: int) -> int:
    if op == MIN:
        return min(a, b)
    if op == MAX:
        return max(a, b)
    if op == ADD:
        return int(wrap32(a + b))
    if op == SHR:  # HLS: low 5 bits of b as a signed 5-bit number; negative = left shift
        s = b & 31
        if s >= 16:
            s -= 32
        return int(wrap32(a >> s if s >= 0 else a << -s))
    raise AssertionError(op)


def ref_alu(acc, out, uops, kw):
    """Sequential ALU of §2.11 (src indexes ACC); returns the set of touched indexes."""
    op = kw["alu_opcode"]
    touched = set()
    for a, s, _ in _walk(uops, kw):
        lhs = [int(v) for v in acc[a].ravel()]
        if kw.get("use_imm", 0):
            rhs = [sext16(kw.get("imm", 0))] * len(lhs)
        else:
            rhs = [int(v) for v in acc[s].ravel()]
        res = np.array([alu_lane(op, x, y) for x, y in zip(lhs, rhs)], dtype=np.int64)
        acc[a] = res.reshape(acc.shape[1:])
        out[a] = low8(acc[a])
        touched.add(a)
    return touched


def expected_uop_word(hw: HwConfig, dst: int, src: int, wgt: int) -> int:
    """§2.8: dst [0, A), src [A, A+S), wgt [A+S, A+S+W), S = max(A, I)."""
    a, i = hw.log_acc_buff_depth, hw.log_inp_buff_depth
    s = max(a, i)
    return dst | (src << a) | (wgt << (a + s))


def stored_block(p: Prog, base: int, y: int, x: int, stride: int) -> np.ndarray:
    """The y*x OUT elements a STORE wrote at DRAM element base with row pitch ``stride``."""
    raw = p.read_out(base, (y - 1) * stride + x)
    return np.concatenate([raw[r * stride:r * stride + x] for r in range(y)])


# =============================================================================== 1. round trips
def test_roundtrip_inp_2d():
    rng = np.random.default_rng(1)
    p = Prog()
    data = p.rand_inp(rng, 40)
    base = p.put(data, INP)
    p.load(INP, 5, base + 2, y_size=3, x_size=4, x_stride=7, push_next=1)
    p.finish(pop_prev=1)
    p.run()
    exp = ref_load_2d(data, 2, 3, 4, 7)
    got = p.sim.sram.inp[5:5 + 12]
    np.testing.assert_array_equal(got, exp.astype(np.float32))
    # §2.10: element = [BATCH][BLOCK_IN] int8 row-major; check one element byte-wise
    np.testing.assert_array_equal(got[4].astype(np.int8).tobytes(),
                                  data[2 + 7].tobytes())
    assert not p.sim.sram.inp[17:64].any()


def test_roundtrip_wgt_2d():
    rng = np.random.default_rng(2)
    p = Prog()
    data = p.rand_wgt(rng, 20)
    base = p.put(data, WGT)
    p.load(WGT, 3, base + 1, y_size=2, x_size=3, x_stride=5, push_next=1)
    p.finish(pop_prev=1)
    p.run()
    exp = ref_load_2d(data, 1, 2, 3, 5)
    np.testing.assert_array_equal(p.sim.sram.wgt[3:9], exp.astype(np.float32))
    # WGT element: [BLOCK_OUT][BLOCK_IN], row = output channel, raw DRAM byte order
    flat = np.frombuffer(data[1 + 5 + 2].tobytes(), dtype=np.int8).reshape(16, 16)
    np.testing.assert_array_equal(p.sim.sram.wgt[3 + 5], flat.astype(np.float32))


def test_roundtrip_acc_via_alu_copy_and_store():
    rng = np.random.default_rng(3)
    p = Prog()
    data = p.rand_acc(rng, 30)
    data[0, 0, :4] = [I32_MAX, I32_MIN, -1, 0x1234_5680]
    base = p.put(data, ACC)
    y, x, stride = 3, 4, 6
    out_stride = 5
    obase = p.buffer(4096, OUT, fill=0x5A)
    p.load(ACC, 10, base, y_size=y, x_size=x, x_stride=stride)
    p.uops([(10, 10, 0)])
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=y * x, dst_factor_in=1, src_factor_in=1,
          alu_opcode=SHR, use_imm=1, imm=0, push_next=1)
    p.store(10, obase, y_size=y, x_size=x, x_stride=out_stride, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    p.run()
    exp = ref_load_2d(data, 0, y, x, stride)
    np.testing.assert_array_equal(p.sim.sram.acc[10:10 + y * x], exp)
    np.testing.assert_array_equal(stored_block(p, obase, y, x, out_stride), low8(exp))
    # gaps between strided rows and bytes after the block are untouched
    raw = np.frombuffer(p.read(obase, OUT, 3 * out_stride + 4), dtype=np.uint8).reshape(-1, 16)
    for r in range(y):
        assert (raw[r * out_stride + x:(r + 1) * out_stride] == 0x5A).all()
    assert (raw[(y - 1) * out_stride + x:] == 0x5A).all()


def test_roundtrip_uop():
    p = Prog()
    uops = [(0, 0, 0), (1, 2, 3), (2047, 2047, 1023), (5, 1000, 7), (1234, 17, 512)]
    p.uops(uops, sram_base=100)
    p.finish()
    res = p.run()
    hw = p.hw
    exp = np.array([expected_uop_word(hw, *u) for u in uops], dtype=np.uint32)
    np.testing.assert_array_equal(p.sim.sram.uop[100:105], exp)
    assert exp[2] == 0xFFFF_FFFF  # all three fields full: exactly 32 bits
    assert not p.sim.sram.uop[:100].any() and not p.sim.sram.uop[105:200].any()
    assert res.counters["uop_load_nbytes"] == 5 * 4


def test_uop_load_ignores_y_size_stride_and_pads_hls():
    """§2.11/§3.4 (HLS column): LOAD UOP copies x_size uops densely from dram_base to
    sram_base and ignores y_size, x_stride and pads."""
    p = Prog()
    marker = [(7, 7, 7)] * 40
    p.uops(marker, sram_base=0)
    words = [(i, i + 1, i + 2) for i in range(1, 31)]
    base = p.put(isa.encode_uops([isa.Uop(*u) for u in words], p.hw), UOP)
    p.load(UOP, 4, base, y_size=3, x_size=5, x_stride=9, y_pad_0=1, y_pad_1=2, x_pad_0=1,
           x_pad_1=3)
    p.finish()
    p.run()
    hw = p.hw
    mark = expected_uop_word(hw, 7, 7, 7)
    exp = np.full(40, mark, dtype=np.uint32)
    exp[4:9] = [expected_uop_word(hw, *u) for u in words[:5]]
    np.testing.assert_array_equal(p.sim.sram.uop[:40], exp)


def test_store_out_shadow_strided():
    """OUT via STORE: the OUT shadow written by a GEMM goes densely from out-SRAM
    sram_base + r*x_size to DRAM (dram_base + r*x_stride) * OUT_ELEM_BYTES."""
    rng = np.random.default_rng(4)
    p = Prog()
    inp, wgt = p.rand_inp(rng, 8), p.rand_wgt(rng, 1)
    p.load(INP, 0, p.put(inp, INP), 1, 8)
    p.load(WGT, 0, p.put(wgt, WGT), 1, 1, push_next=1)
    p.uops([(20, 0, 0)])
    p.gemm(uop_bgn=0, uop_end=1, iter_out=2, iter_in=4, dst_factor_out=4, dst_factor_in=1,
           src_factor_out=4, src_factor_in=1, pop_prev=1, push_next=1)
    obase = p.buffer(4096, OUT, fill=0xA5)
    p.store(22, obase + 3, y_size=3, x_size=2, x_stride=7, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    p.run()
    acc = np.zeros((64, 1, 16), np.int64)
    out = np.zeros((64, 1, 16), np.int8)
    ref_gemm(acc, out, inp, wgt, [(20, 0, 0)], dict(iter_out=2, iter_in=4, dst_factor_out=4,
                                                    dst_factor_in=1, src_factor_out=4,
                                                    src_factor_in=1))
    np.testing.assert_array_equal(stored_block(p, obase + 3, 3, 2, 7), out[22:28])
    raw = np.frombuffer(p.read(obase, OUT, 40), dtype=np.uint8).reshape(40, 16)
    written = {3 + r * 7 + c for r in range(3) for c in range(2)}
    for k in range(40):
        if k not in written:
            assert (raw[k] == 0xA5).all(), k


def test_load_acc_does_not_update_out_shadow_hls():
    """§2.11 out shadow / §3.4: a STORE after LOAD ACC stores what the last GEMM/ALU wrote
    to OUT, not the freshly loaded accumulator."""
    rng = np.random.default_rng(5)
    p = Prog()
    first = p.rand_acc(rng, 4, -1000, 1000)
    second = p.rand_acc(rng, 4, -1000, 1000)
    p.load(ACC, 0, p.put(first, ACC), 1, 4)
    p.uops([(0, 0, 0)])
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=4, dst_factor_in=1, src_factor_in=1,
          alu_opcode=ADD, use_imm=1, imm=3)
    p.load(ACC, 0, p.put(second, ACC), 1, 4, push_next=1)
    obase = p.buffer(4096, OUT)
    p.store(0, obase, 1, 4, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    p.run()
    np.testing.assert_array_equal(p.sim.sram.acc[:4], second)
    np.testing.assert_array_equal(p.read_out(obase, 4), low8(first.astype(np.int64) + 3))


# =============================================================================== 2./3. padding
INP_PADS = [
    dict(y_pad_0=2), dict(y_pad_1=3), dict(x_pad_0=1), dict(x_pad_1=2),
    dict(y_pad_0=1, y_pad_1=2, x_pad_0=3, x_pad_1=1),
    dict(y_pad_0=15, y_pad_1=15, x_pad_0=15, x_pad_1=15),
]


@pytest.mark.parametrize("pads", INP_PADS, ids=lambda d: "-".join(f"{k}{v}" for k, v in d.items()))
def test_load_inp_padding(pads):
    rng = np.random.default_rng(6)
    p = Prog()
    y, x, stride, sbase = 3, 4, 9, 3
    width = pads.get("x_pad_0", 0) + x + pads.get("x_pad_1", 0)
    total = width * (pads.get("y_pad_0", 0) + y + pads.get("y_pad_1", 0))
    # fill SRAM with non-zero sentinels first, so zero pads are visible
    n_sent = sbase + total + 10
    sentinel = p.rand_inp(rng, n_sent, nonzero=True)
    p.load(INP, 0, p.put(sentinel, INP), 1, n_sent)
    data = p.rand_inp(rng, 40, nonzero=True)
    p.load(INP, sbase, p.put(data, INP) + 1, y, x, stride, **pads, push_next=1)
    p.finish(pop_prev=1)
    res = p.run()
    exp = sentinel.copy()
    exp[sbase:sbase + total] = ref_load_2d(data, 1, y, x, stride, **pads)
    np.testing.assert_array_equal(p.sim.sram.inp[:n_sent], exp.astype(np.float32))
    # §3.3: padding is not counted
    assert res.counters["inp_load_nbytes"] == (n_sent + y * x) * p.hw.inp_elem_bytes


def test_load_wgt_ignores_padding_hls():
    """§2.11/§3.4 (HLS column): WGT pads are ignored; data lands densely."""
    rng = np.random.default_rng(7)
    p = Prog()
    sentinel = p.rand_wgt(rng, 24, nonzero=True)
    p.load(WGT, 0, p.put(sentinel, WGT), 1, 24)
    data = p.rand_wgt(rng, 16, nonzero=True)
    p.load(WGT, 2, p.put(data, WGT), y_size=2, x_size=3, x_stride=5, y_pad_0=1, y_pad_1=2,
           x_pad_0=1, x_pad_1=3, push_next=1)
    p.finish(pop_prev=1)
    res = p.run()
    exp = sentinel.copy()
    exp[2:8] = ref_load_2d(data, 0, 2, 3, 5)
    np.testing.assert_array_equal(p.sim.sram.wgt[:24], exp.astype(np.float32))
    assert res.counters["wgt_load_nbytes"] == (24 + 6) * p.hw.wgt_elem_bytes


def test_load_acc_ignores_padding_like_hls():
    """HLS loads ACC with load_2d, which has no pad parameters: the rows land densely at
    sram_base and the pad fields are ignored.  (The dossier's §2.11 table says ACC pads are
    honoured; the HLS source says otherwise -- see docs/fsim.md.)"""
    rng = np.random.default_rng(8)
    p = Prog()
    sentinel = p.rand_acc(rng, 40)
    sentinel[sentinel == 0] = 1
    p.load(ACC, 0, p.put(sentinel, ACC), 1, 40)
    data = p.rand_acc(rng, 20)
    data[data == 0] = 1
    pads = dict(y_pad_0=1, y_pad_1=1, x_pad_0=1, x_pad_1=2)
    p.load(ACC, 3, p.put(data, ACC), y_size=2, x_size=3, x_stride=4, **pads)
    p.finish()
    p.run()
    exp = sentinel.copy()
    exp[3:3 + 6] = ref_load_2d(data, 0, 2, 3, 4)  # 2 rows x 3 elements, no zeros
    np.testing.assert_array_equal(p.sim.sram.acc[:40], exp)


# =============================================================================== 4. GEMM
GEMM_CASES = {
    "all_factors": ([(0, 0, 0), (1, 3, 1), (2, 5, 2)],
                    dict(iter_out=3, iter_in=4, dst_factor_out=12, dst_factor_in=3,
                         src_factor_out=20, src_factor_in=4, wgt_factor_out=6, wgt_factor_in=1)),
    "wgt_per_uop_only": ([(0, 0, 0), (1, 3, 1), (2, 5, 2)],
                         dict(iter_out=3, iter_in=4, dst_factor_out=12, dst_factor_in=3,
                              src_factor_out=20, src_factor_in=4)),
    "wgt_inner_only": ([(0, 0, 0), (1, 3, 1), (2, 5, 2)],
                       dict(iter_out=3, iter_in=4, dst_factor_out=12, dst_factor_in=3,
                            src_factor_out=20, src_factor_in=4, wgt_factor_in=2)),
    "wgt_outer_only": ([(0, 0, 0), (1, 3, 1), (2, 5, 2)],
                       dict(iter_out=3, iter_in=4, dst_factor_out=12, dst_factor_in=3,
                            src_factor_out=20, src_factor_in=4, wgt_factor_out=5)),
    "accumulate_inner": ([(0, 1, 0), (1, 2, 3)],
                         dict(iter_out=3, iter_in=4, dst_factor_out=2, dst_factor_in=0,
                              src_factor_out=16, src_factor_in=3, wgt_factor_out=1,
                              wgt_factor_in=4)),
    "accumulate_outer": ([(0, 1, 0), (1, 2, 3)],
                         dict(iter_out=4, iter_in=3, dst_factor_out=0, dst_factor_in=2,
                              src_factor_out=9, src_factor_in=2, wgt_factor_out=2)),
    "accumulate_all_dup_uops": ([(0, 1, 0), (0, 2, 1), (1, 5, 2)],
                                dict(iter_out=3, iter_in=4, dst_factor_out=0, dst_factor_in=0,
                                     src_factor_out=11, src_factor_in=2, wgt_factor_out=3,
                                     wgt_factor_in=1)),
    "overlapping_walk": ([(0, 0, 0), (2, 1, 4)],
                         dict(iter_out=4, iter_in=4, dst_factor_out=1, dst_factor_in=1,
                              src_factor_out=7, src_factor_in=13, wgt_factor_out=1,
                              wgt_factor_in=2)),
}


def _gemm_program(p: Prog, rng, uops, kw, n_inp=128, n_wgt=32, n_acc=64, acc_bias=True):
    inp, wgt = p.rand_inp(rng, n_inp), p.rand_wgt(rng, n_wgt)
    # initial accumulators across the whole int32 range, so that accumulation wraps
    acc0 = p.rand_acc(rng, n_acc) if acc_bias else np.zeros((n_acc, p.hw.batch, p.hw.block_out),
                                                             np.int32)
    if acc_bias:
        acc0[:4] = np.where(rng.integers(0, 2, acc0[:4].shape) == 1, I32_MAX - 5, I32_MIN + 5)
    p.load(INP, 0, p.put(inp, INP), 1, n_inp)
    p.load(WGT, 0, p.put(wgt, WGT), 1, n_wgt, push_next=1)
    p.load(ACC, 0, p.put(acc0, ACC), 1, n_acc)
    p.uops(uops)
    return inp, wgt, acc0


@pytest.mark.parametrize("case", list(GEMM_CASES))
def test_gemm_against_sequential_reference(case):
    uops, kw = GEMM_CASES[case]
    rng = np.random.default_rng(40 + list(GEMM_CASES).index(case))
    p = Prog()
    inp, wgt, acc0 = _gemm_program(p, rng, uops, kw)
    p.gemm(uop_bgn=0, uop_end=len(uops), **kw, pop_prev=1, push_next=1)
    obase = p.buffer(64 * 16, OUT)
    p.store(0, obase, 1, 64, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    res = p.run()
    acc = acc0.astype(np.int64)
    out = np.zeros(acc.shape, np.int8)
    touched = sorted(ref_gemm(acc, out, inp, wgt, uops, kw))
    np.testing.assert_array_equal(p.sim.sram.acc[:64], acc)
    stored = p.read_out(obase, 64)
    np.testing.assert_array_equal(stored[touched], out[touched])
    assert res.counters["gemm_counter"] == kw["iter_out"] * kw["iter_in"] * len(uops)


def test_gemm_wraps_int32():
    """An accumulator at INT32_MAX plus a positive dot product wraps to negative."""
    p = Prog()
    inp = np.full((1, 1, 16), 127, np.int8)
    wgt = np.full((1, 16, 16), 127, np.int8)
    acc0 = np.full((1, 1, 16), I32_MAX - 10, np.int32)
    p.load(INP, 0, p.put(inp, INP), 1, 1)
    p.load(WGT, 0, p.put(wgt, WGT), 1, 1, push_next=1)
    p.load(ACC, 0, p.put(acc0, ACC), 1, 1)
    p.uops([(0, 0, 0)])
    p.gemm(uop_bgn=0, uop_end=1, iter_out=1, iter_in=3, pop_prev=1)
    p.finish()
    p.run()
    expect = (I32_MAX - 10 + 3 * 16 * 127 * 127) - (1 << 32)
    assert (p.sim.sram.acc[0] == expect).all()
    assert (p.sim.sram.out[0] == low8(expect)).all()


def test_gemm_reset_zeroes_and_is_not_counted():
    rng = np.random.default_rng(9)
    uops, kw = GEMM_CASES["all_factors"]
    p = Prog()
    inp, wgt, acc0 = _gemm_program(p, rng, uops, kw)
    p.gemm(uop_bgn=0, uop_end=len(uops), **kw, pop_prev=1)
    # reset kernel: runtime-style uops with src = wgt = 0, placed after the GEMM kernel
    rkw = dict(iter_out=2, iter_in=3, dst_factor_out=10, dst_factor_in=2, reset_reg=1)
    reset_uops = [(1, 0, 0), (20, 0, 0)]
    p.uops(reset_uops, sram_base=len(uops))
    p.gemm(uop_bgn=len(uops), uop_end=len(uops) + 2, **rkw)
    p.finish()
    res = p.run()
    acc = acc0.astype(np.int64)
    out = np.zeros(acc.shape, np.int8)
    ref_gemm(acc, out, inp, wgt, uops, kw)
    reset_idx = {a for a, _, _ in _walk(reset_uops, rkw)}
    ref_gemm(acc, out, inp, wgt, reset_uops, rkw)
    assert all((acc[a] == 0).all() for a in reset_idx)
    np.testing.assert_array_equal(p.sim.sram.acc[:64], acc)
    assert (p.sim.sram.acc[sorted(reset_idx)] == 0).all()
    assert res.counters["gemm_counter"] == kw["iter_out"] * kw["iter_in"] * len(uops)


def test_gemm_reset_out_shadow_hls():
    """§2.11: an HLS reset GEMM still writes the out shadow with low8(old acc + product)
    (the old value on the first visit, 0 on later visits of the same accumulator)."""
    rng = np.random.default_rng(10)
    p = Prog()
    inp, wgt = p.rand_inp(rng, 6, nonzero=True), p.rand_wgt(rng, 3, nonzero=True)
    acc0 = p.rand_acc(rng, 8)
    p.load(INP, 0, p.put(inp, INP), 1, 6)
    p.load(WGT, 0, p.put(wgt, WGT), 1, 3, push_next=1)
    p.load(ACC, 0, p.put(acc0, ACC), 1, 8)
    uops = [(0, 0, 0), (3, 1, 1)]
    # the inner loop visits each accumulator twice (dst_factor_in = 0)
    kw = dict(iter_out=2, iter_in=2, dst_factor_out=1, src_factor_out=2, src_factor_in=1,
              wgt_factor_in=1, reset_reg=1)
    p.uops(uops)
    p.gemm(uop_bgn=0, uop_end=2, **kw, pop_prev=1, push_next=1)
    obase = p.buffer(4096, OUT)
    p.store(0, obase, 1, 8, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    res = p.run()
    acc = acc0.astype(np.int64)
    out = np.zeros(acc.shape, np.int8)
    touched = sorted(ref_gemm(acc, out, inp, wgt, uops, kw))
    np.testing.assert_array_equal(p.sim.sram.acc[:8], acc)
    np.testing.assert_array_equal(p.read_out(obase, 8)[touched], out[touched])
    assert res.counters["gemm_counter"] == 0


@pytest.mark.parametrize("kw", [dict(iter_out=0, iter_in=3), dict(iter_out=2, iter_in=0)])
def test_gemm_zero_loop_bound_does_nothing(kw):
    rng = np.random.default_rng(11)
    p = Prog()
    inp, wgt, acc0 = _gemm_program(p, rng, [(0, 0, 0)], kw, n_inp=4, n_wgt=2, n_acc=4)
    p.gemm(uop_bgn=0, uop_end=1, dst_factor_in=1, **kw, pop_prev=1)
    p.finish()
    res = p.run()
    np.testing.assert_array_equal(p.sim.sram.acc[:4], acc0)
    assert res.counters["gemm_counter"] == 0


# =============================================================================== 5. ALU
def _alu_program(p: Prog, acc0: np.ndarray, steps, store=True):
    """LOAD ACC acc0 at 0, then one ALU per (uops, kw) step, then STORE everything."""
    n = len(acc0)
    p.load(ACC, 0, p.put(acc0, ACC), 1, n)
    kernels, pos = [], 0
    for uops, _ in steps:
        kernels.append((pos, pos + len(uops)))
        pos += len(uops)
    p.uops([u for uops, _ in steps for u in uops])
    obase = p.buffer(n * p.elem_bytes(OUT), OUT) if store else None
    for k, ((bgn, end), (_, kw)) in enumerate(zip(kernels, steps)):
        last = k == len(steps) - 1
        p.alu(uop_bgn=bgn, uop_end=end, **kw, push_next=int(last and store))
    if store:
        p.store(0, obase, 1, n, pop_prev=1, push_prev=1)
        p.finish(pop_next=1)
    else:
        p.finish()
    res = p.run()
    acc = acc0.astype(np.int64)
    out = np.zeros(acc.shape, np.int8)
    touched = set()
    for uops, kw in steps:
        touched |= ref_alu(acc, out, uops, kw)
    return res, acc, out, sorted(touched), obase


def _check_alu(p, acc, out, touched, obase):
    np.testing.assert_array_equal(p.sim.sram.acc[:len(acc)], acc)
    if obase is not None:
        stored = p.read_out(obase, len(acc))
        np.testing.assert_array_equal(stored[touched], out[touched])


def _edge_acc(p, rng, n):
    acc0 = p.rand_acc(rng, n)
    acc0[0, 0, :8] = [I32_MAX, I32_MIN, 0, -1, 1, 255, -256, 0x40000000]
    return acc0


IMM_CASES = [(MIN, -5), (MIN, 1000), (MAX, 0), (MAX, -32768), (MAX, 32767), (ADD, 32767),
             (ADD, -32768), (ADD, 1), (SHR, 0), (SHR, 3), (SHR, 15), (SHR, -1), (SHR, -16),
             (SHR, 20), (SHR, 31), (SHR, -17)]


@pytest.mark.parametrize("op,imm", IMM_CASES, ids=[f"{AluOp(o).name}{i}" for o, i in IMM_CASES])
def test_alu_immediate(op, imm):
    rng = np.random.default_rng(12)
    p = Prog()
    acc0 = _edge_acc(p, rng, 12)
    kw = dict(iter_out=3, iter_in=4, dst_factor_out=4, dst_factor_in=1, alu_opcode=op,
              use_imm=1, imm=imm)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 0, 0)], kw)])
    _check_alu(p, acc, out, touched, obase)
    assert res.counters["alu_counter"] == 12


@pytest.mark.parametrize("op", [MIN, MAX, ADD, SHR], ids=lambda o: AluOp(o).name)
def test_alu_tensor_operand(op):
    rng = np.random.default_rng(13)
    p = Prog()
    acc0 = _edge_acc(p, rng, 32)
    if op == SHR:
        amounts = np.array([0, 1, 5, 15, 16, 17, 31, 32, 33, -1, -16, 48, 255, -31,
                            I32_MAX, I32_MIN], dtype=np.int64)
        acc0[16:] = rng.permutation(np.resize(amounts, 16 * 16)).reshape(16, 1, 16)
    else:
        acc0[16, 0, :8] = [1, -1, I32_MAX, I32_MIN, -1, 1, 7, I32_MIN]
    kw = dict(iter_out=2, iter_in=8, dst_factor_out=8, dst_factor_in=1, src_factor_out=8,
              src_factor_in=1, alu_opcode=op)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 16, 0)], kw)])
    _check_alu(p, acc, out, touched, obase)
    assert res.counters["alu_counter"] == 16


def test_alu_add_wraps_at_int32_limits():
    p = Prog()
    acc0 = np.zeros((2, 1, 16), np.int32)
    acc0[0, 0, :4] = [I32_MAX, I32_MIN, I32_MAX, -7]
    acc0[1, 0, :4] = [1, -1, I32_MAX, 7]
    kw = dict(iter_out=1, iter_in=1, alu_opcode=ADD)
    _, acc, *_ = _alu_program(p, acc0, [([(0, 1, 0)], kw)], store=False)
    assert p.sim.sram.acc[0, 0, :4].tolist() == [I32_MIN, I32_MAX, -2, 0]
    np.testing.assert_array_equal(p.sim.sram.acc[:2], acc)


def test_alu_shr_tensor_amount_is_signed_low_5_bits():
    """§2.11 SHR (HLS): only the low 5 bits of b, read as signed 5-bit, are used."""
    p = Prog()
    acc0 = np.zeros((2, 1, 16), np.int32)
    acc0[0, 0, :] = 1000
    acc0[0, 0, 8:] = -1000
    shifts = [31, 16, 15, 33, -1, 48, 0, 17]
    acc0[1, 0, :8] = shifts
    acc0[1, 0, 8:] = shifts
    kw = dict(iter_out=1, iter_in=1, alu_opcode=SHR)
    _, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 1, 0)], kw)])
    # 31 -> -1: <<1; 16 -> -16: <<16; 15: >>15; 33 -> 1; -1 -> <<1; 48 -> 16 -> -16; 0; 17 -> -15
    exp = [2000, 1000 << 16, 0, 500, 2000, 1000 << 16, 1000, 1000 << 15,
           -2000, -1000 << 16, -1, -500, -2000, -1000 << 16, -1000, -1000 << 15]
    assert p.sim.sram.acc[0, 0].tolist() == [int(wrap32(v)) for v in exp]
    _check_alu(p, acc, out, touched, obase)


def test_alu_shr_negative_immediate_is_left_shift():
    p = Prog()
    acc0 = np.zeros((1, 1, 16), np.int32)
    acc0[0, 0, :4] = [3, -3, 0x12345678, I32_MIN + 1]
    kw = dict(iter_out=1, iter_in=1, alu_opcode=SHR, use_imm=1, imm=-4)
    _alu_program(p, acc0, [([(0, 0, 0)], kw)], store=False)
    assert p.sim.sram.acc[0, 0, :4].tolist() == [48, -48, int(wrap32(0x12345678 << 4)), 16]


def test_alu_relu_and_shift_scale_sequence():
    """SHR 8, MIN 127, MAX 0, then STORE: int8 = clip(acc >> 8, 0, 127)."""
    rng = np.random.default_rng(14)
    p = Prog()
    acc0 = p.rand_acc(rng, 16, -(1 << 20), 1 << 20)
    base = dict(iter_out=4, iter_in=4, dst_factor_out=4, dst_factor_in=1, use_imm=1)
    steps = [([(0, 0, 0)], dict(base, alu_opcode=SHR, imm=8)),
             ([(0, 0, 0)], dict(base, alu_opcode=MIN, imm=127)),
             ([(0, 0, 0)], dict(base, alu_opcode=MAX, imm=0))]
    res, acc, out, touched, obase = _alu_program(p, acc0, steps)
    exp = np.clip(acc0.astype(np.int64) >> 8, 0, 127)
    np.testing.assert_array_equal(acc, exp)  # the reference agrees with the closed form
    np.testing.assert_array_equal(p.sim.sram.acc[:16], exp)
    np.testing.assert_array_equal(p.read_out(obase, 16), exp.astype(np.int8))
    assert res.counters["alu_counter"] == 3 * 16


def test_alu_relu_only():
    rng = np.random.default_rng(15)
    p = Prog()
    acc0 = _edge_acc(p, rng, 8)
    kw = dict(iter_out=1, iter_in=8, dst_factor_in=1, alu_opcode=MAX, use_imm=1, imm=0)
    _alu_program(p, acc0, [([(0, 0, 0)], kw)], store=False)
    np.testing.assert_array_equal(p.sim.sram.acc[:8], np.maximum(acc0, 0))


def test_alu_prefix_sum_chain_reads_own_writes():
    """dst = i+1, src = i: each iteration reads what the previous one wrote."""
    rng = np.random.default_rng(16)
    p = Prog()
    acc0 = p.rand_acc(rng, 16)
    kw = dict(iter_out=1, iter_in=15, dst_factor_in=1, src_factor_in=1, alu_opcode=ADD)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(1, 0, 0)], kw)])
    np.testing.assert_array_equal(acc, wrap32(np.cumsum(acc0.astype(np.int64), axis=0)))
    _check_alu(p, acc, out, touched, obase)


def test_alu_chain_across_outer_and_inner_loops():
    """Prefix-max chain walking through both loop levels and two uops."""
    rng = np.random.default_rng(17)
    p = Prog()
    acc0 = p.rand_acc(rng, 20)
    # uops (1,0) and (2,1) per step of 2: dst = 2k+1, 2k+2 reading 2k, 2k+1
    kw = dict(iter_out=3, iter_in=3, dst_factor_out=6, dst_factor_in=2, src_factor_out=6,
              src_factor_in=2, alu_opcode=MAX)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(1, 0, 0), (2, 1, 0)], kw)])
    np.testing.assert_array_equal(acc[:19], np.maximum.accumulate(acc0[:19].astype(np.int64)))
    _check_alu(p, acc, out, touched, obase)


def test_alu_reads_old_value_before_later_write():
    """dst = i, src = i+1: reads happen before the later iteration overwrites src."""
    rng = np.random.default_rng(18)
    p = Prog()
    acc0 = p.rand_acc(rng, 16, -1000, 1000)
    kw = dict(iter_out=1, iter_in=15, dst_factor_in=1, src_factor_in=1, alu_opcode=ADD)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 1, 0)], kw)])
    exp = acc0.astype(np.int64).copy()
    exp[:15] = acc0[:15].astype(np.int64) + acc0[1:16]
    np.testing.assert_array_equal(acc, exp)
    _check_alu(p, acc, out, touched, obase)


@pytest.mark.parametrize("op", [ADD, MIN, SHR], ids=lambda o: AluOp(o).name)
def test_alu_same_dst_written_by_several_iterations(op):
    rng = np.random.default_rng(19)
    p = Prog()
    acc0 = p.rand_acc(rng, 16, -(1 << 30), 1 << 30)
    if op == SHR:
        acc0[1:] = rng.integers(-3, 4, size=acc0[1:].shape)
    kw = dict(iter_out=3, iter_in=5, dst_factor_out=0, dst_factor_in=0, src_factor_out=5,
              src_factor_in=1, alu_opcode=op)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 1, 0)], kw)])
    if op == ADD:
        np.testing.assert_array_equal(acc[0], wrap32(acc0.astype(np.int64).sum(axis=0)))
    if op == MIN:
        np.testing.assert_array_equal(acc[0], acc0.min(axis=0))
    _check_alu(p, acc, out, touched, obase)
    assert res.counters["alu_counter"] == 15


def test_alu_same_dst_with_immediate():
    p = Prog()
    acc0 = np.arange(4 * 16, dtype=np.int32).reshape(4, 1, 16)
    kw = dict(iter_out=2, iter_in=3, dst_factor_out=1, dst_factor_in=0, alu_opcode=ADD,
              use_imm=1, imm=-7)
    res, acc, out, touched, obase = _alu_program(p, acc0, [([(0, 0, 0), (0, 0, 0)], kw)])
    exp = acc0.astype(np.int64).copy()
    exp[0] -= 6 * 7
    exp[1] -= 6 * 7
    np.testing.assert_array_equal(acc, exp)
    _check_alu(p, acc, out, touched, obase)


@pytest.mark.parametrize("seed", range(12))
def test_alu_random_programs(seed):
    """Random uop kernels and factors with overlapping reads and writes."""
    rng = np.random.default_rng(100 + seed)
    p = Prog()
    acc0 = p.rand_acc(rng, 32, -(1 << 12), 1 << 12)
    steps = []
    for _ in range(3):
        uops = [(int(rng.integers(0, 8)), int(rng.integers(0, 8)), 0)
                for _ in range(int(rng.integers(1, 4)))]
        op = int(rng.choice([MIN, MAX, ADD, SHR]))
        kw = dict(iter_out=int(rng.integers(1, 4)), iter_in=int(rng.integers(1, 4)),
                  dst_factor_out=int(rng.integers(0, 4)), dst_factor_in=int(rng.integers(0, 4)),
                  src_factor_out=int(rng.integers(0, 4)), src_factor_in=int(rng.integers(0, 4)),
                  alu_opcode=op, use_imm=int(rng.integers(0, 2)),
                  imm=int(rng.integers(-20, 20)))
        steps.append((uops, kw))
    res, acc, out, touched, obase = _alu_program(p, acc0, steps)
    _check_alu(p, acc, out, touched, obase)


def test_alu_reset_reg_is_ignored():
    """§2.5: ALU reset_reg exists but is ignored by HLS."""
    p = Prog()
    acc0 = np.full((2, 1, 16), 40, np.int32)
    kw = dict(iter_out=1, iter_in=2, dst_factor_in=1, alu_opcode=ADD, use_imm=1, imm=2,
              reset_reg=1)
    _alu_program(p, acc0, [([(0, 0, 0)], kw)], store=False)
    assert (p.sim.sram.acc[:2] == 42).all()


# =============================================================================== 6. tokens
def test_tokens_order_reuse_of_one_inp_slot():
    """Three inputs pass through INP slot 0; each GEMM must see its own input.  Only the
    l2g / g2l tokens order the loads against the GEMMs."""
    rng = np.random.default_rng(20)
    p = Prog()
    wgt = p.rand_wgt(rng, 1)
    datas = [p.rand_inp(rng, 1) for _ in range(3)]
    bases = [p.put(d, INP) for d in datas]
    p.load(WGT, 0, p.put(wgt, WGT), 1, 1)
    p.uops([(0, 0, 0), (1, 0, 0), (2, 0, 0)])
    for k in range(3):
        p.load(INP, 0, bases[k], 1, 1, pop_next=int(k > 0), push_next=1)
        p.gemm(uop_bgn=k, uop_end=k + 1, iter_out=1, iter_in=1, pop_prev=1,
               push_prev=int(k < 2), push_next=int(k == 2))
    obase = p.buffer(4096, OUT)
    p.store(0, obase, 1, 3, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    res = p.run()
    acc = np.zeros((3, 1, 16), np.int64)
    out = np.zeros((3, 1, 16), np.int8)
    for k in range(3):
        ref_gemm(acc, out, datas[k], wgt, [(k, 0, 0)], dict(iter_out=1, iter_in=1))
    np.testing.assert_array_equal(p.sim.sram.acc[:3], acc)
    np.testing.assert_array_equal(p.read_out(obase, 3), out)
    assert res.leftover_tokens == {}


def test_tokens_order_store_before_out_overwrite():
    """Two results leave through OUT slot 0; s2g must hold back the second ALU until the
    first STORE has read the buffer."""
    p = Prog()
    acc0 = np.full((1, 1, 16), 10, np.int32)
    acc0[0, 0, 1] = 250
    p.load(ACC, 0, p.put(acc0, ACC), 1, 1)
    p.uops([(0, 0, 0)])
    o1, o2 = p.buffer(4096, OUT), p.buffer(4096, OUT)
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=ADD, use_imm=1, imm=1,
          push_next=1)
    p.store(0, o1, 1, 1, pop_prev=1, push_prev=1)
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=ADD, use_imm=1, imm=100,
          pop_next=1, push_next=1)
    p.store(0, o2, 1, 1, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    p.run()
    np.testing.assert_array_equal(p.read_out(o1, 1), low8(acc0.astype(np.int64) + 1))
    np.testing.assert_array_equal(p.read_out(o2, 1), low8(acc0.astype(np.int64) + 101))


# =============================================================================== 7. deadlock / finish
def _deadlock_gemm_pops_l2g(p):
    p.uops([(0, 0, 0)])
    p.gemm(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, pop_prev=1)
    p.finish()


def _deadlock_store_pops_g2s(p):
    p.store(0, p.buffer(4096, OUT), 1, 1, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)


def _deadlock_load_pops_g2l(p):
    p.load(INP, 0, p.buffer(4096, INP), 1, 1, pop_next=1, push_next=1)
    p.finish(pop_prev=1)


@pytest.mark.parametrize("build", [_deadlock_gemm_pops_l2g, _deadlock_store_pops_g2s,
                                   _deadlock_load_pops_g2l])
def test_token_deadlock_detected_promptly(build):
    p = Prog()
    build(p)
    t0 = time.monotonic()
    with pytest.raises(TokenDeadlockError):
        p.run()
    assert time.monotonic() - t0 < 2.0


def test_missing_finish():
    p = Prog()
    p.uops([(0, 0, 0)])
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=ADD, use_imm=1, imm=1)
    with pytest.raises(MissingFinishError):
        p.run()


def test_finish_with_work_queued_is_an_error():
    p = Prog()
    p.finish()
    p.store(0, p.buffer(4096, OUT), 1, 1, pop_prev=1)  # can only run after FINISH
    with pytest.raises(UnfinishedWorkError):
        p.run()


# =============================================================================== 8. ranges
@pytest.mark.parametrize("kw", [dict(sram_base=2040, y_size=2, x_size=8),
                                dict(sram_base=2040, y_size=1, x_size=8, x_pad_1=1),
                                dict(sram_base=2047, y_size=1, x_size=1, y_pad_0=1)])
def test_load_inp_sram_overflow(kw):
    p = Prog()
    base = p.buffer(4096, INP)
    p.load(WGT, 0, p.buffer(4096, WGT), 1, 1)
    p.uops([(0, 0, 0)])
    kw = dict(kw)
    idx = p.load(INP, kw.pop("sram_base"), base, kw.pop("y_size"), kw.pop("x_size"), **kw)
    p.finish()
    with pytest.raises(SramRangeError) as ei:
        p.run()
    assert ei.value.insn_index == idx == 2
    assert ei.value.field == "sram_base"


def test_load_inp_exactly_fills_sram():
    p = Prog()
    data = np.ones((8, 1, 16), np.int8)
    p.load(INP, 2040, p.put(data, INP), 1, 8, push_next=1)
    p.finish(pop_prev=1)
    p.run()
    assert (p.sim.sram.inp[2040:] == 1).all()


def test_gemm_walk_past_acc_depth():
    p = Prog()
    p.load(INP, 0, p.buffer(4096, INP), 1, 1)
    p.load(WGT, 0, p.buffer(4096, WGT), 1, 1, push_next=1)
    p.uops([(2042, 0, 0)])
    idx = p.gemm(uop_bgn=0, uop_end=1, iter_out=1, iter_in=3, dst_factor_in=3, pop_prev=1)
    p.finish()
    with pytest.raises(SramRangeError) as ei:
        p.run()
    assert ei.value.insn_index == idx
    assert "dst" in ei.value.field


def test_alu_walk_past_acc_depth():
    p = Prog()
    p.uops([(0, 2044, 0)])  # src reaches 2044 + 4 + 1 = 2049
    idx = p.alu(uop_bgn=0, uop_end=1, iter_out=2, iter_in=2, src_factor_out=4,
                src_factor_in=1, alu_opcode=ADD)
    p.finish()
    with pytest.raises(SramRangeError) as ei:
        p.run()
    assert ei.value.insn_index == idx
    assert "src" in ei.value.field


def _dram_oob_inp(p):
    base = p.buffer(4096, INP)  # 256 INP elements
    p.load(INP, 0, base, y_size=2, x_size=1, x_stride=256, push_next=1)
    p.finish(pop_prev=1)


def _dram_oob_acc(p):
    base = p.buffer(4096, ACC)  # 64 ACC elements
    p.load(ACC, 0, base + 60, y_size=1, x_size=5)
    p.finish()


def _dram_oob_store(p):
    base = p.buffer(4096, OUT)  # 256 OUT elements
    p.uops([(0, 0, 0)])
    p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=SHR, use_imm=1,
          push_next=1)
    p.store(0, base + 255, y_size=2, x_size=1, x_stride=1, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)


def _dram_unmapped(p):
    p.load(WGT, 0, 1, y_size=1, x_size=1, push_next=1)  # byte address 256: below any page
    p.finish(pop_prev=1)


@pytest.mark.parametrize("build", [_dram_oob_inp, _dram_oob_acc, _dram_oob_store,
                                   _dram_unmapped])
def test_dram_out_of_range(build):
    p = Prog()
    build(p)
    with pytest.raises(DramRangeError) as ei:
        p.run()
    assert ei.value.field == "dram_base" and ei.value.insn_index is not None


# =============================================================================== 9. MUL
def test_alu_mul_is_undefined_behaviour():
    p = Prog()
    p.uops([(0, 0, 0)])
    idx = p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=MUL, use_imm=1, imm=3)
    p.finish()
    with pytest.raises(UndefinedBehaviourError) as ei:
        p.run()
    assert ei.value.insn_index == idx


# =============================================================================== 10. 4x8
@pytest.mark.parametrize("case", ["all_factors", "accumulate_inner", "overlapping_walk"])
def test_gemm_4x8(case):
    hw = HwConfig.load(CFG_4X8)
    assert (hw.batch, hw.block_in, hw.block_out) == (4, 8, 8)
    uops, kw = GEMM_CASES[case]
    rng = np.random.default_rng(30)
    p = Prog(hw)
    inp, wgt, acc0 = _gemm_program(p, rng, uops, kw)
    assert inp.shape[1:] == (4, 8) and wgt.shape[1:] == (8, 8) and acc0.shape[1:] == (4, 8)
    p.gemm(uop_bgn=0, uop_end=len(uops), **kw, pop_prev=1, push_next=1)
    obase = p.buffer(64 * 32, OUT)
    p.store(0, obase, 1, 64, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    res = p.run()
    acc = acc0.astype(np.int64)
    out = np.zeros(acc.shape, np.int8)
    touched = sorted(ref_gemm(acc, out, inp, wgt, uops, kw))
    np.testing.assert_array_equal(p.sim.sram.acc[:64], acc)
    np.testing.assert_array_equal(p.read_out(obase, 64)[touched], out[touched])
    assert res.counters["gemm_counter"] == kw["iter_out"] * kw["iter_in"] * len(uops)
    # §2.10 batch layout: row b of an ACC element is batch b; spot-check one product
    walk = list(_walk(uops, kw))
    dsts = [t[0] for t in walk]
    for a, x, w in walk:
        if dsts.count(a) == 1:
            direct = inp[x].astype(np.int64) @ wgt[w].astype(np.int64).T   # (B, BO)
            np.testing.assert_array_equal(out[a], low8(acc0[a].astype(np.int64) + direct))


# =============================================================================== 11. counters
@pytest.mark.parametrize("cfg", [None, CFG_4X8])
def test_counters_match_formulas(cfg):
    hw = HwConfig.load(cfg)
    p = Prog(hw)
    inp_b = hw.batch * hw.block_in * hw.inp_width // 8
    wgt_b = hw.block_out * hw.block_in * hw.wgt_width // 8
    acc_b = hw.batch * hw.block_out * hw.acc_width // 8
    p.load(INP, 0, p.buffer(4096, INP), y_size=2, x_size=3, x_stride=5, y_pad_0=1, y_pad_1=1,
           x_pad_0=1, x_pad_1=1)
    p.load(INP, 100, p.buffer(4096, INP), y_size=4, x_size=0, x_stride=0)  # NOP
    p.load(WGT, 0, p.buffer(4096 * 2, WGT), y_size=2, x_size=2, x_stride=3, push_next=1)
    p.load(ACC, 0, p.buffer(4096 * 2, ACC), y_size=2, x_size=4, x_stride=4)
    p.load(ACC, 0, p.buffer(4096, ACC), y_size=3, x_size=0)  # NOP
    p.uops([(0, 0, 0), (1, 1, 1), (2, 2, 0)])
    p.gemm(uop_bgn=0, uop_end=3, iter_out=2, iter_in=3, dst_factor_out=3, src_factor_in=1,
           pop_prev=1)
    p.gemm(uop_bgn=0, uop_end=3, iter_out=1, iter_in=2, dst_factor_in=3, reset_reg=1)
    p.alu(uop_bgn=0, uop_end=2, iter_out=2, iter_in=2, dst_factor_out=1, dst_factor_in=2,
          alu_opcode=ADD, use_imm=1, imm=1, push_next=1)
    p.store(0, p.buffer(4096, OUT), y_size=2, x_size=3, x_stride=4, pop_prev=1, push_prev=1)
    p.finish(pop_next=1)
    res = p.run()
    assert res.counters == {
        "inp_load_nbytes": 3 * 2 * inp_b,
        "wgt_load_nbytes": 2 * 2 * wgt_b,
        "acc_load_nbytes": 4 * 2 * acc_b,
        "uop_load_nbytes": 3 * 1 * 4,
        "out_store_nbytes": 3 * 2 * hw.batch * hw.block_out * hw.out_width // 8,
        "gemm_counter": 2 * 3 * 3,
        "alu_counter": 2 * 2 * 2,
    }
    assert res.executed == {"load": 3, "compute": 7, "store": 1}
