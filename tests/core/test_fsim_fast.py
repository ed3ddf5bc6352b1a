"""fsim's two cores — numpy and compiled (numba, ``vtatune.sim.fsim_jit``) — are the same
simulator: every run gives bit-identical DRAM, SRAM, counters and results, and every error
the same type, message, instruction index and field.

Independent checks ride along: the reference programs' output regions are compared with
the ones TVM's simulator produced (``<name>.after.npz``) and their counters with the
original counters of the reference README; compiled programs' outputs with the numpy
reference operator (``compiler.reference``).  Per-instruction semantics of both cores
against hand-computed values: tests/core/test_fsim_fast_cores.py.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from vtatune import errors
from vtatune.compiler.program import check_config, compile_program
from vtatune.compiler.reference import reference
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import (AluInsn, AluOp, FinishInsn, GemmInsn, MemInsn, MemType,
                                  Opcode, Uop, encode_uops)
from vtatune.measure.runners import load_program, read_output
from vtatune.sim import fsim as fsim_module
from vtatune.sim.bundle import load_bundle
from vtatune.sim.dram import Dram
from vtatune.sim.fsim import JIT_ENV, FunctionalSimulator
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload

try:  # tests/core may become a package one day
    from .progs import REFERENCE_COUNTERS
except ImportError:  # pragma: no cover - rootdir-less layout (no __init__.py)
    from progs import REFERENCE_COUNTERS

pytestmark = pytest.mark.requires("numba", "jit")

HW = HwConfig.load()
HW48 = HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")
SRAM_BUFFERS = ("uop", "inp", "wgt", "acc", "out")


def run_both(hw, make_dram, insn_addr, insn_count):
    """Run the same program on a fresh simulator of each core; per core (result or the
    exception, final DRAM regions, final SRAM, counters)."""
    out = {}
    for jit in (False, True):
        dram = make_dram()
        sim = FunctionalSimulator(hw, dram, jit=jit)
        try:
            res = sim.run(insn_addr, insn_count)
        except errors.VtatuneError as exc:
            res = exc
        out[jit] = (res, [(r.base, r.data.copy()) for r in dram.regions],
                    {b: getattr(sim.sram, b).copy() for b in SRAM_BUFFERS}, dict(sim.counters))
    return out[False], out[True]


def assert_same(a, b):
    (ra, da, sa, ca), (rb, db, sb, cb) = a, b
    if isinstance(ra, Exception):
        assert type(rb) is type(ra), (ra, rb)
        assert str(rb) == str(ra)
        assert (getattr(rb, "insn_index", None), getattr(rb, "field", None)) == \
            (getattr(ra, "insn_index", None), getattr(ra, "field", None))
    else:
        assert not isinstance(rb, Exception), rb
        assert (rb.counters, rb.insn_count, rb.executed, rb.leftover_tokens) == \
            (ra.counters, ra.insn_count, ra.executed, ra.leftover_tokens)
    assert ca == cb
    assert [base for base, _ in da] == [base for base, _ in db]
    for (base, x), (_, y) in zip(da, db):
        assert np.array_equal(x, y), f"DRAM region {base:#x} differs"
    for buf in SRAM_BUFFERS:
        assert np.array_equal(sa[buf], sb[buf]), f"{buf} SRAM differs"


# ----------------------------------------------------------------------------- reference programs
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTERS))
def test_reference_programs_identical_on_both_cores(ref_dir, name):
    bundle = load_bundle(ref_dir / f"{name}.npz")
    a, b = run_both(bundle.hw, bundle.to_dram, bundle.insn_addr, bundle.insn_count)
    assert_same(a, b)
    # independent: TVM's own run of the program
    assert a[0].counters == REFERENCE_COUNTERS[name]
    after = load_bundle(ref_dir / f"{name}.after.npz")
    final = dict(b[1])
    for base, data in after.regions:
        assert np.array_equal(final[base][:data.size], data)


def test_a_simulator_keeps_its_state_across_runs_on_either_core(ref_dir):
    """Counters accumulate and SRAM persists across runs: alternating cores on one
    simulator gives what two runs on one core give."""
    bundle = load_bundle(ref_dir / "C10_203.npz")
    finals = []
    for order in ((False, False), (True, False), (False, True), (True, True)):
        sim = FunctionalSimulator(bundle.hw, bundle.to_dram(), jit=order[0])
        sim.run(bundle.insn_addr, bundle.insn_count)
        sim.jit = order[1]
        sim.run(bundle.insn_addr, bundle.insn_count)
        finals.append((dict(sim.counters), [getattr(sim.sram, k).copy() for k in SRAM_BUFFERS]))
    for counters, sram in finals[1:]:
        assert counters == finals[0][0]
        assert all(np.array_equal(x, y) for x, y in zip(sram, finals[0][1]))
    assert finals[0][0]["gemm_counter"] == 2 * REFERENCE_COUNTERS["C10_203"]["gemm_counter"]


# ----------------------------------------------------------------------------- compiled programs
def _compiled(hw, workload, n, seed):
    """Up to n valid configurations of ``workload`` (seeded sample of its space)."""
    wl = get_workload(workload, hw).bind(hw)
    space = space_for(wl, hw)
    rng = random.Random(seed)
    progs = []
    for _ in range(400):
        knobs = space.get(rng.randrange(space.size)).knobs
        try:
            check_config(wl, knobs, hw)  # the compile-time verdict, without emission
            prog = compile_program(wl, knobs, hw)
        except errors.MeasureError:
            continue
        if prog.insn_count <= 20_000:
            progs.append(prog)
        if len(progs) == n:
            break
    return progs


CASES = [(HW, "resnet18.C5", 2), (HW, "resnet18.C10", 2), (HW, "resnet18.C11", 1),
         (HW, "mobilenet.D7", 1), (HW, "dcgan.CT1", 1), (HW, "dense.0", 1),
         (HW48, "resnet18.C9", 1), (HW48, "resnet18.C7", 1)]


@pytest.mark.parametrize("hw,workload,n", CASES, ids=[f"{h.bitstream}-{w}" for h, w, _ in CASES])
def test_compiled_programs_identical_on_both_cores(hw, workload, n):
    progs = _compiled(hw, workload, n, seed=len(workload))
    assert progs, f"no valid configuration of {workload} sampled"
    for prog in progs:
        inputs = prog.random_inputs(3)
        a, b = run_both(hw, lambda: load_program(prog, inputs), prog.insn_addr, prog.insn_count)
        assert_same(a, b)
        dram = Dram()
        for base, data in b[1]:
            dram.map(base, data)
        got = read_output(prog, dram)
        assert np.array_equal(got, reference(prog.workload, inputs["data"], inputs["kernel"],
                                             inputs.get("bias")))


# ----------------------------------------------------------------------------- hand-built streams
class Stream:
    """A raw program in a DRAM of its own: micro-ops, data and instructions."""

    def __init__(self, hw=HW):
        self.hw = hw
        self.regions: list = []
        self.insns: list = []
        self.next = 1 << 16

    def put(self, data: bytes, elem: int) -> int:
        base = self.next
        self.regions.append((base, np.frombuffer(data, np.uint8).copy()))
        self.next += -(-max(len(data), 1) // 4096) * 4096 + 4096
        return base // elem

    def uops(self, uops, sram_base=0, **deps):
        base = self.put(encode_uops([Uop(*u) for u in uops], self.hw), 4)
        self.insns.append(MemInsn(opcode=Opcode.LOAD, memory_type=MemType.UOP, sram_base=sram_base,
                                  dram_base=base, y_size=1, x_size=len(uops), x_stride=len(uops),
                                  **deps))

    def make(self):
        from vtatune.hardware.isa import encode_program
        blob = encode_program(self.insns, self.hw)
        insn_base = self.put(blob, 16) * 16
        regions = list(self.regions)

        def dram():
            d = Dram()
            for base, data in regions:
                d.map(base, data)
            return d
        return dram, insn_base, len(self.insns)


def _rand(rng, n, shape, lo=-128, hi=128, dtype=np.int8):
    return rng.integers(lo, hi, size=(n,) + shape, dtype=np.int64).astype(dtype).tobytes()


def _loaded(hw=HW, seed=0):
    """A stream that fills INP, WGT and ACC with random data."""
    rng = np.random.default_rng(seed)
    s = Stream(hw)
    b, bi, bo = hw.batch, hw.block_in, hw.block_out
    for mt, n, shape, elem, dt, lo, hi in (
            (MemType.INP, 256, (b, bi), hw.inp_elem_bytes, np.int8, -128, 128),
            (MemType.WGT, 64, (bo, bi), hw.wgt_elem_bytes, np.int8, -128, 128),
            (MemType.ACC, 256, (b, bo), hw.acc_elem_bytes, np.int32, -(1 << 31), 1 << 31)):
        base = s.put(_rand(rng, n, shape, lo, hi, dt), elem)
        s.insns.append(MemInsn(opcode=Opcode.LOAD, memory_type=mt, dram_base=base, y_size=1,
                               x_size=n, x_stride=n, push_next=int(mt != MemType.ACC)))
    return s


def _finish_with_store(s, n_out=256, **alu):
    out = s.put(bytes(n_out * s.hw.out_elem_bytes), s.hw.out_elem_bytes)
    s.insns[-1] = s.insns[-1].__class__(**{**s.insns[-1].field_values, "push_next": 1})
    s.insns.append(MemInsn(opcode=Opcode.STORE, memory_type=MemType.OUT, dram_base=out, y_size=1,
                           x_size=n_out, x_stride=n_out, pop_prev=1, push_prev=1))
    s.insns.append(FinishInsn(pop_next=1))


HAND = {
    # GEMM with every factor, accumulation over both loops and duplicate destinations
    "gemm_dups": lambda s: (s.uops([(0, 0, 0), (0, 1, 1), (3, 2, 2)]),
                            s.insns.append(GemmInsn(pop_prev=1, uop_bgn=0, uop_end=3, iter_out=5, iter_in=4,
                                                    dst_factor_out=2, dst_factor_in=0,
                                                    src_factor_out=7, src_factor_in=3,
                                                    wgt_factor_out=1, wgt_factor_in=2))),
    # reset GEMM visiting accumulators once and several times (OUT shadow rule)
    "gemm_reset": lambda s: (s.uops([(0, 5, 1), (1, 9, 2), (0, 3, 3)]),
                             s.insns.append(GemmInsn(pop_prev=1, reset_reg=1, uop_bgn=0, uop_end=3,
                                                     iter_out=3, iter_in=2, dst_factor_out=4,
                                                     dst_factor_in=1, src_factor_out=11,
                                                     src_factor_in=5, wgt_factor_out=3))),
    # ALU with read-after-write hazards inside the instruction (sequential meaning)
    "alu_hazards": lambda s: (s.uops([(1, 0, 0), (2, 1, 0), (0, 2, 0)]),
                              s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=3, iter_out=4,
                                                     iter_in=3, dst_factor_out=1, dst_factor_in=2,
                                                     src_factor_out=2, src_factor_in=1,
                                                     alu_opcode=AluOp.ADD))),
    "alu_shr_neg": lambda s: (s.uops([(0, 0, 0), (7, 3, 0)]),
                              s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=2, iter_out=2,
                                                     iter_in=8, dst_factor_out=16, dst_factor_in=1,
                                                     alu_opcode=AluOp.SHR, use_imm=1, imm=-37))),
    "alu_min_max_tensor": lambda s: (s.uops([(0, 100, 0), (1, 101, 0)]),
                                     s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=2,
                                                            iter_out=3, iter_in=5, dst_factor_out=10,
                                                            dst_factor_in=2, src_factor_in=1,
                                                            alu_opcode=AluOp.MIN)),
                                     s.insns.append(AluInsn(uop_bgn=0, uop_end=2, iter_in=9,
                                                            dst_factor_in=3, src_factor_in=3,
                                                            alu_opcode=AluOp.MAX, use_imm=1,
                                                            imm=-1000))),
}


@pytest.mark.parametrize("hw", [HW, HW48], ids=["1x16", "4x8"])
@pytest.mark.parametrize("case", sorted(HAND))
def test_hand_built_streams_identical_on_both_cores(case, hw):
    s = _loaded(hw, seed=len(case))
    HAND[case](s)
    _finish_with_store(s)
    a, b = run_both(hw, *s.make())
    assert_same(a, b)
    assert not isinstance(a[0], Exception), a[0]


# ----------------------------------------------------------------------------- errors
def _error_case(kind):
    s = _loaded()
    if kind == "gemm_acc_range":
        s.uops([(2045, 0, 0)])
        s.insns.append(GemmInsn(pop_prev=1, uop_bgn=0, uop_end=1, iter_out=3, iter_in=4,
                                dst_factor_out=1, dst_factor_in=1))
    elif kind == "gemm_wgt_range":
        s.uops([(0, 0, 1000)])
        s.insns.append(GemmInsn(pop_prev=1, uop_bgn=0, uop_end=1, iter_out=30, iter_in=1,
                                wgt_factor_out=1))
    elif kind == "uop_end_range":
        s.insns.append(GemmInsn(pop_prev=1, uop_bgn=8000, uop_end=8200, iter_out=1, iter_in=1))
    elif kind == "alu_mul":
        s.uops([(0, 0, 0)])
        s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=1, iter_out=1, iter_in=1,
                               alu_opcode=AluOp.MUL))
    elif kind == "alu_src_range":
        s.uops([(0, 2047, 0)])
        s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=1, iter_out=2, iter_in=1,
                               src_factor_out=1, alu_opcode=AluOp.ADD))
    elif kind == "load_dram_range":  # INP padding is zeroed before the DRAM read fails
        s.insns.append(MemInsn(opcode=Opcode.LOAD, memory_type=MemType.INP, sram_base=10,
                               dram_base=7, y_size=2, x_size=2, x_stride=2, y_pad_0=1, x_pad_1=1))
    elif kind == "load_sram_range":
        s.insns.append(MemInsn(opcode=Opcode.LOAD, memory_type=MemType.WGT, sram_base=1020,
                               dram_base=0, y_size=2, x_size=4, x_stride=4))
    elif kind == "store_dram_range":
        s.insns.append(MemInsn(opcode=Opcode.STORE, memory_type=MemType.OUT, dram_base=3,
                               y_size=1, x_size=4, x_stride=4, push_prev=1))
        s.insns.append(FinishInsn(pop_next=1))
        return s, False
    elif kind == "deadlock":  # the store waits for a g2s token nobody pushes, FINISH for it
        s.insns.append(MemInsn(opcode=Opcode.STORE, memory_type=MemType.OUT, pop_prev=1,
                               push_prev=1))
        s.insns.append(FinishInsn(pop_next=1))
        return s, False
    elif kind == "missing_finish":
        s.insns.append(GemmInsn(pop_prev=1))
        return s, False
    elif kind == "unfinished":
        s.insns.append(FinishInsn())
        s.insns.append(MemInsn(opcode=Opcode.STORE, memory_type=MemType.OUT, pop_prev=1,
                               dram_base=1, x_size=1, y_size=1, x_stride=1))
        return s, False
    s.insns.append(FinishInsn())
    return s, True


ERRORS = {
    "gemm_acc_range": errors.SramRangeError, "gemm_wgt_range": errors.SramRangeError,
    "uop_end_range": errors.SramRangeError, "alu_mul": errors.UndefinedBehaviourError,
    "alu_src_range": errors.SramRangeError, "load_dram_range": errors.DramRangeError,
    "load_sram_range": errors.SramRangeError, "store_dram_range": errors.DramRangeError,
    "deadlock": errors.TokenDeadlockError, "missing_finish": errors.MissingFinishError,
    "unfinished": errors.UnfinishedWorkError,
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_errors_identical_on_both_cores(kind):
    s, _ = _error_case(kind)
    a, b = run_both(HW, *s.make())
    assert isinstance(a[0], ERRORS[kind]), a[0]
    assert_same(a, b)


@pytest.mark.parametrize("cap", [1000, 3000, 6000])
def test_run_work_cap_identical_on_both_cores(monkeypatch, cap):
    """The work accounting (units per instruction, ALU runs included) is the same, so the
    cap stops both cores at the same instruction with the same figure."""
    monkeypatch.setattr(fsim_module, "MAX_RUN_WORK", cap)
    s = _loaded()
    s.uops([(0, 0, 0), (1, 0, 0)])
    s.insns.append(AluInsn(pop_prev=1, uop_bgn=0, uop_end=2, iter_out=10, iter_in=10,
                           dst_factor_in=1, src_factor_out=1, alu_opcode=AluOp.ADD))
    for _ in range(20):
        s.insns.append(GemmInsn(uop_bgn=0, uop_end=2, iter_out=8, iter_in=16, dst_factor_in=1))
    s.insns.append(FinishInsn())
    a, b = run_both(HW, *s.make())
    assert isinstance(a[0], errors.ResourceLimitError), a[0]
    assert_same(a, b)


def test_iteration_cap_identical_on_both_cores():
    n = FunctionalSimulator(HW, jit=False).max_insn_iterations
    s = Stream()
    s.insns += [GemmInsn(uop_bgn=0, uop_end=1, iter_out=n // 16383 + 1, iter_in=16383),
                FinishInsn()]
    a, b = run_both(HW, *s.make())
    assert isinstance(a[0], errors.ResourceLimitError) and a[0].insn_index == 0
    assert_same(a, b)


# ----------------------------------------------------------------------------- choosing the core
def test_core_selection(monkeypatch):
    monkeypatch.setenv(JIT_ENV, "0")
    assert FunctionalSimulator(HW).jit is False
    monkeypatch.setenv(JIT_ENV, "1")
    assert FunctionalSimulator(HW).jit is True
    monkeypatch.delenv(JIT_ENV)
    assert FunctionalSimulator(HW).jit is True          # numba installed: compiled by default
    assert FunctionalSimulator(HW, jit=False).jit is False


def test_missing_numba_is_a_typed_error(monkeypatch):
    monkeypatch.setattr(fsim_module, "_jit_module", False)
    monkeypatch.delenv(JIT_ENV, raising=False)
    assert FunctionalSimulator(HW).jit is False          # default: the numpy core
    with pytest.raises(errors.MissingDependencyError, match=r"numba"):
        FunctionalSimulator(HW, jit=True)


def test_tsim_is_not_switched_to_the_compiled_core(ref_dir):
    """tsim schedules by time and calls the numpy core per instruction; its results do not
    depend on the fsim core setting."""
    from vtatune.sim.tsim import TimingSimulator
    bundle = load_bundle(ref_dir / "C10_203.npz")
    sim = TimingSimulator(bundle.hw, bundle.to_dram())
    assert sim.jit is False
    res = sim.run(bundle.insn_addr, bundle.insn_count)
    assert res.counters == REFERENCE_COUNTERS["C10_203"] and res.cycles > 0


def test_many_regions_fall_back_to_the_numpy_core(monkeypatch):
    """The compiled core takes at most MAX_REGIONS DRAM regions; a DRAM with more runs on
    the numpy core (same result) instead of failing."""
    from vtatune.sim import fsim_jit
    s = _loaded(seed=9)
    for k in range(fsim_jit.MAX_REGIONS):  # extra unrelated regions
        s.put(bytes([k]) * 64, 1)
    s.uops([(0, 0, 0), (1, 1, 1)])
    s.insns.append(GemmInsn(pop_prev=1, uop_bgn=0, uop_end=2, iter_out=3, iter_in=2,
                            dst_factor_out=2, src_factor_out=2, src_factor_in=5, wgt_factor_in=3))
    _finish_with_store(s)
    make, addr, count = s.make()
    assert len(make().regions) > fsim_jit.MAX_REGIONS
    calls = []
    monkeypatch.setattr(FunctionalSimulator, "_run_compiled",
                        lambda self, raw: calls.append(1))  # must not be reached
    a, b = run_both(HW, make, addr, count)
    assert calls == []
    assert_same(a, b)
    assert not isinstance(a[0], Exception), a[0]
