"""tsim: same results as fsim, timing that follows the model's parameters, virtual-thread
overlap, the data-race check, traces."""
import dataclasses

import numpy as np
import pytest

from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluOp, MemType
from vtatune.sim.bundle import load_bundle, run_bundle
from vtatune.sim.tsim import TimingSimulator, chrome_trace
from vtatune.measure.runners import run_program

try:
    from .progs import Prog
except ImportError:  # rootdir-relative import without a package
    from progs import Prog

INP, WGT = MemType.INP, MemType.WGT


@pytest.mark.parametrize("name", ["C10_203", "C2_1584"])
def test_tsim_results_equal_fsim(ref_dir, name):
    bundle = load_bundle(ref_dir / f"{name}.npz")
    f_final, f_res = run_bundle(bundle, "fsim")
    t_final, t_res = run_bundle(bundle, "tsim")
    for (a, da), (b, db) in zip(f_final.regions, t_final.regions):
        assert a == b and np.array_equal(da, db)
    assert t_res.counters == f_res.counters
    assert t_res.races == [] and t_res.cycles > 0
    # the accelerator cannot beat its GEMM peak: one micro-op iteration per cycle
    assert t_res.cycles >= t_res.counters["gemm_counter"]


def _timed(p: Prog, hw=None):
    hw = hw or p.hw
    return TimingSimulator(hw, p.sim.dram).execute(p.insns)


def _hw(**timing):
    base = HwConfig.load()
    return dataclasses.replace(base, timing=dataclasses.replace(base.timing, **timing))


def _load_prog(x_size: int) -> Prog:
    p = Prog()
    base = p.buffer(x_size * 16, INP)
    p.load(INP, 0, base, 1, x_size, push_next=1)
    p.finish(pop_prev=1)
    return p


def test_dma_bytes_cost_what_the_model_says():
    hw = _hw(mem_latency=10, bus_bytes_per_cycle=4.0, inp_row_cycles=0)
    short, long_ = _timed(_load_prog(64), hw), _timed(_load_prog(128), hw)
    # 64 more INP elements of 16 bytes at 4 bytes per cycle: 256 more cycles, same latency
    assert long_.cycles - short.cycles == pytest.approx(64 * 16 / 4.0)

    # one more row = one more request: + latency + its bytes (+ load_pad_2d's row work)
    def two_rows(row_cycles):
        p = Prog()
        base = p.buffer(2 * 64 * 16, INP)
        p.load(INP, 0, base, 2, 64, x_stride=64, push_next=1)
        p.finish(pop_prev=1)
        return _timed(p, _hw(mem_latency=10, bus_bytes_per_cycle=4.0, inp_row_cycles=row_cycles))
    assert two_rows(0).cycles - short.cycles == pytest.approx(10 + 64 * 16 / 4.0)
    assert two_rows(25).cycles - two_rows(0).cycles == pytest.approx(2 * 25)


def _one_load(mt: int, x_size: int, **pads) -> Prog:
    p = Prog()
    base = p.buffer(x_size * p.elem_bytes(mt), mt)
    p.load(mt, 0, base, 1, x_size, push_next=1, **pads)
    p.finish(pop_prev=1)
    return p


def test_weights_enter_their_sram_at_one_beat_per_wgt_beat_cycles():
    # 512 bytes either way: 32 INP elements or 2 weight elements = 64 bus beats
    for k in (1.0, 2.0, 3.5):
        hw = _hw(mem_latency=10, inp_row_cycles=0, wgt_beat_cycles=k)
        inp, wgt = _timed(_one_load(INP, 32), hw), _timed(_one_load(WGT, 2), hw)
        assert wgt.cycles - inp.cycles == pytest.approx(64 * (k - 1))


def test_padding_costs_one_cycle_per_zero_and_a_start_per_run():
    hw = _hw(mem_latency=10, inp_row_cycles=0, pad_run_cycles=9)
    plain = _timed(_one_load(INP, 8), hw)
    # one row of 8 with 2 pad rows above, 1 below, 1 column left: X = 9;
    # zeros 3 * 9 + 1 = 28, runs: above, below, left of the row = 3
    padded = _timed(_one_load(INP, 8, y_pad_0=2, y_pad_1=1, x_pad_0=1), hw)
    assert padded.cycles - plain.cycles == pytest.approx(28 + 3 * 9)


def _contention(other: str) -> float:
    """A LOAD UOP (compute) started together with a 4 KiB LOAD INP (load module) or STORE
    (store module); FINISH waits for both."""
    p = Prog()
    inp = p.buffer(4096, INP)
    out = p.buffer(4096, MemType.OUT)
    uops = p.put(bytes(4 * 256), MemType.UOP)
    if other == "load":
        p.load(INP, 0, inp, 1, 256, push_next=1)
    elif other == "store":
        p.store(0, out, 1, 256, push_prev=1)
    else:
        p.load(INP, 0, inp, 1, 0)  # a NOP: the same stream length (fetch time)
    p.load(MemType.UOP, 0, uops, 1, 256)
    p.finish(pop_prev=int(other == "load"), pop_next=int(other == "store"))
    return _timed(p, _hw(mem_latency=10, mem_write_latency=10, inp_row_cycles=0)).cycles


def test_reads_share_one_channel_and_stores_have_their_own():
    alone = _contention("none")
    # the micro-op read waits for the input's 512 beats on the shared read channel
    assert _contention("load") == pytest.approx(alone + 512)
    # the store's 512 beats go over the write channel: the micro-op load is not delayed
    # (FINISH then waits for the store: 1 + 10 + 512 after the fetch, longer than the uops)
    assert _contention("store") == pytest.approx(alone - (1 + 10 + 128) + (1 + 10 + 512))


def test_gemm_loop_restarts_cost_per_outer_and_inner_iteration():
    def prog(iter_out, iter_in, n_uops):
        p = Prog()
        p.uops([(i, i, 0) for i in range(n_uops)])
        p.gemm(uop_bgn=0, uop_end=n_uops, iter_out=iter_out, iter_in=iter_in)
        p.finish()
        return p
    hw0, hw3 = _hw(gemm_loop_cycles=0), _hw(gemm_loop_cycles=3)
    # the same 48 micro-op iterations as 4 x 12 loop passes of 1 uop or 1 pass of 48 uops
    assert _timed(prog(4, 12, 1), hw3).cycles - _timed(prog(4, 12, 1), hw0).cycles == 48 * 3
    assert _timed(prog(1, 1, 48), hw3).cycles - _timed(prog(1, 1, 48), hw0).cycles == 3


def _gemm_prog(iter_out: int) -> Prog:
    p = Prog()
    p.uops([(0, 0, 0), (1, 1, 1), (2, 2, 2)])
    p.gemm(uop_bgn=0, uop_end=3, iter_out=iter_out, iter_in=5, dst_factor_out=3, src_factor_out=3)
    p.finish()
    return p


def test_gemm_work_costs_one_cycle_per_uop_iteration():
    hw = _hw(gemm_loop_cycles=0)  # loop restarts: test_gemm_loop_restarts_...
    a, b = _timed(_gemm_prog(4), hw), _timed(_gemm_prog(8), hw)
    assert b.cycles - a.cycles == 4 * 5 * 3  # twice the outer loop: 60 more iterations
    assert b.counters["gemm_counter"] == 8 * 5 * 3


def test_alu_initiation_interval():
    def prog(n):
        p = Prog()
        p.uops([(0, 0, 0)])
        p.alu(uop_bgn=0, uop_end=1, iter_out=1, iter_in=n, dst_factor_in=1, src_factor_in=1,
              alu_opcode=AluOp.ADD, use_imm=1, imm=1)
        p.finish()
        return p
    hw = HwConfig.load()
    assert _timed(prog(40)).cycles - _timed(prog(20)).cycles == 20 * hw.timing.alu_ii


def test_missing_token_is_a_data_race():
    """LOAD INP then a GEMM reading it: fsim (which runs the load first) gets the right
    answer either way, but only the version with tokens is race-free in tsim."""
    rng = np.random.default_rng(0)

    def prog(with_tokens: bool) -> Prog:
        p = Prog()
        inp = p.put(p.rand_inp(rng, 4), INP)
        wgt = p.put(p.rand_wgt(rng, 1), WGT)
        p.uops([(0, 0, 0)])
        p.load(WGT, 0, wgt, 1, 1)
        p.load(INP, 0, inp, 1, 4, push_next=1)
        p.gemm(uop_bgn=0, uop_end=1, iter_out=4, iter_in=1, dst_factor_out=1, src_factor_out=1,
               pop_prev=int(with_tokens))
        p.finish(pop_prev=int(not with_tokens))  # racy: only FINISH waits for the load
        return p

    racy = prog(False)
    fres = racy.run()
    assert fres.counters["gemm_counter"] == 4  # fsim completes
    tres = _timed(prog(False))
    assert tres.races and "no dependence token" in tres.races[0]
    assert _timed(prog(True)).races == []


def test_virtual_threads_overlap_load_and_compute():
    """Same tiles, one vs two virtual threads: two threads hide loads behind GEMMs."""
    from vtatune.compiler.program import compile_program
    from vtatune.workloads.suites import get_workload
    hw = HwConfig.load()
    wl = get_workload("resnet18.C8", hw)
    cycles = {}
    for oc in (1, 2):
        knobs = dict(tile_b=1, tile_h=14, tile_w=14, tile_ci=1, tile_co=4, oc_nthread=oc, h_nthread=1)
        prog = compile_program(wl, knobs, hw, sync="single")
        res = run_program(prog, prog.random_inputs(0), "tsim", functional=False).result
        assert res.races == []
        cycles[oc] = res.cycles
    assert cycles[2] < 0.9 * cycles[1]


def test_trace_has_one_row_per_module():
    p = _gemm_prog(2)
    res = TimingSimulator(p.hw, p.sim.dram, trace=True).execute(p.insns)
    doc = chrome_trace(res, 100)
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M"}
    assert names == {"fetch", "load", "compute", "store"}
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert any("GEMM" in e["name"] for e in slices)
    assert all(e["dur"] >= 0 for e in slices)
    assert max(e["ts"] + e["dur"] for e in slices) == pytest.approx(res.cycles / 100)


def test_timing_only_mode_keeps_counters_and_timing(ref_dir):
    from vtatune.sim.simulators import create_simulator
    bundle = load_bundle(ref_dir / "C10_203.npz")
    full = create_simulator("tsim", bundle.hw, bundle.to_dram()).run(bundle.insn_addr, bundle.insn_count)
    fast = create_simulator("tsim", bundle.hw, bundle.to_dram(), functional=False).run(
        bundle.insn_addr, bundle.insn_count)
    assert fast.counters == full.counters
    assert fast.cycles == full.cycles and fast.races == []
