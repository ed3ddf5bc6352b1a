"""tsim's timing parameters (data of the hardware file, ``hw.timing``) and its cost model
(``vtatune.sim.timing.Timing``); the board table (``vtatune.hardware.platforms``)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from vtatune.errors import ConfigurationError
from vtatune.hardware.config import PLATFORMS, HwConfig, Platform
from vtatune.hardware.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, MemType, Opcode
from vtatune.hardware.timing_params import TIMING_FIELDS, TimingParams
from vtatune.sim.timing import Timing, row_bursts
from vtatune.sim.tsim import TimingSimulator

HW = "pynq_1x16_i8w8a32_15_15_18_17"


def test_shipped_timing_is_the_documented_fit():
    # docs/tsim.md: the fit of scripts/calibrate_tsim.py, the same on both PYNQ bitstreams;
    # the rest are the HLS design's values
    for name in (HW, "pynq_4x8_i8w8a32_15_16_16_18"):
        t = HwConfig.load(name).timing
        assert isinstance(t, TimingParams)
        assert (t.mem_latency, t.mem_write_latency, t.inp_row_cycles, t.pad_run_cycles,
                t.gemm_loop_cycles) == (31, 47, 35, 35, 2)
        assert t.wgt_beat_cycles == pytest.approx(2.2, abs=0.01)
        assert t.host_launch_us == pytest.approx(28.2, abs=0.1) and t.host_per_insn_ns == 0.0
        assert (t.bus_bytes_per_cycle, t.axi_burst_beats, t.axi_outstanding) == (8.0, 16, 16)
        assert (t.fetch_burst, t.gemm_fill, t.alu_ii, t.alu_fill, t.nop_cycles, t.insn_overhead) == (16, 4, 2, 4, 1, 1)
        assert set(vars(t)) == set(TIMING_FIELDS)  # field-by-field access keeps working


def test_every_parameter_has_a_range_and_the_defaults_are_inside():
    assert list(TIMING_FIELDS) == [f.name for f in dataclasses.fields(TimingParams)]
    defaults = TimingParams()
    for name, spec in TIMING_FIELDS.items():
        assert spec.lo <= getattr(defaults, name) <= spec.hi
        assert isinstance(getattr(defaults, name), spec.kind)


def test_unknown_timing_key_and_notes(tmp_path):
    d = HwConfig.load(HW).to_dict()
    d["timing"]["_why"] = "notes are skipped"
    assert HwConfig.from_dict(d).timing == HwConfig.load(HW).timing
    d["timing"]["mem_latncy"] = 3
    with pytest.raises(ConfigurationError) as err:
        HwConfig.from_dict(d)
    assert err.value.field == "timing.mem_latncy"
    d["timing"] = [1, 2]
    with pytest.raises(ConfigurationError) as err:
        HwConfig.from_dict(d)
    assert err.value.field == "timing"


def test_custom_timing_round_trips_through_json(tmp_path):
    d = HwConfig.load(HW).to_dict()
    d["timing"].update(mem_latency=32, bus_bytes_per_cycle=2.5, alu_ii=1)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(d))
    hw = HwConfig.load(str(path))
    assert (hw.timing.mem_latency, hw.timing.bus_bytes_per_cycle, hw.timing.alu_ii) == (32, 2.5, 1)
    assert HwConfig.from_dict(hw.to_dict()) == hw


@pytest.mark.parametrize("key,value", [("insn_queue_depth", 0), ("dep_queue_depth", 1 << 40),
                                       ("dep_queue_depth", 2.0)])
def test_queue_depths_are_bounded(key, value):
    d = HwConfig.load(HW).to_dict()
    d["queues"] = {key: value}
    with pytest.raises(ConfigurationError) as err:
        HwConfig.from_dict(d)
    assert err.value.field == f"queues.{key}"


def _tm(**kw) -> tuple[HwConfig, Timing]:
    base = HwConfig.load(HW)
    hw = dataclasses.replace(base, timing=dataclasses.replace(base.timing, **kw))
    return hw, Timing.from_hw(hw)


def _mem(kind, y, x, **kw) -> MemInsn:
    opcode = Opcode.STORE if kind == "store" else Opcode.LOAD
    mt = {"inp": MemType.INP, "wgt": MemType.WGT, "uop": MemType.UOP, "acc": MemType.ACC,
          "store": MemType.OUT}[kind]
    return MemInsn(opcode=opcode, memory_type=mt, y_size=y, x_size=x, x_stride=x, **kw)


def test_cost_model_formulas():
    hw, tm = _tm(mem_latency=30, mem_write_latency=40, inp_row_cycles=20, pad_run_cycles=7,
                 wgt_beat_cycles=2.0, gemm_loop_cycles=3, insn_overhead=1)
    assert tm.params is hw.timing and tm.freq_mhz == 100 and tm.beat_bytes == 8
    # INP rows of 10 x 16 B: per row latency + load_pad_2d's row work, then 20 beats
    assert tm.insn_cycles(_mem("inp", 3, 10), hw) == 1 + 3 * (30 + 20) + 3 * 160 / 8
    # padding: (1 + 1) pad rows of 12 + 3 rows x 2 pad columns = 30 zeros, 2 + 3 * 2 runs
    padded = _mem("inp", 3, 10, y_pad_0=1, y_pad_1=1, x_pad_0=1, x_pad_1=1)
    assert tm.insn_cycles(padded, hw) == 1 + 3 * 50 + 60 + 30 + 8 * 7
    # weights: 2 rows of 2 elements x 256 B = 128 beats, written at 2 cycles per beat
    assert tm.insn_cycles(_mem("wgt", 2, 2), hw) == 1 + 2 * 30 + 2 * 128
    # micro-ops: one row whatever y_size says (HLS), 4 B each
    assert tm.insn_cycles(_mem("uop", 5, 16), hw) == 1 + 30 + 64 / 8
    # stores: per row the write response, then the data
    assert tm.insn_cycles(_mem("store", 4, 7), hw) == 1 + 4 * 40 + 4 * 7 * 16 / 8
    gemm = GemmInsn(uop_bgn=2, uop_end=5, iter_out=2, iter_in=5)           # 3 * 2 * 5 = 30
    alu = AluInsn(uop_bgn=2, uop_end=5, iter_out=2, iter_in=5)
    assert tm.insn_cycles(gemm, hw) == 1 + 4 + 30 + 10 * 3                   # 10 loop restarts
    assert tm.insn_cycles(alu, hw) == 1 + 4 + 2 * 30
    assert tm.insn_cycles(GemmInsn(uop_bgn=5, uop_end=5, iter_out=2), hw) == 1   # empty: overhead only
    assert tm.insn_cycles(FinishInsn(), hw) == 1 and tm.insn_cycles(None, hw) == 1
    assert tm.accel_ms(250_000) == 2.5                                      # 100 MHz
    hw2, tm2 = _tm(host_launch_us=41.8, host_per_insn_ns=100.0, host_per_uop_ns=10.0)
    assert tm2.host_ms(1000, 10) == pytest.approx(0.0418 + 0.1 + 0.0001)


def test_axi_bursts_and_outstanding_requests():
    # 16-beat bursts (128 B); one outstanding burst: each further burst of a row waits for
    # the previous one's round trip, latency + its 16 beats, instead of 16 cycles
    hw, tm = _tm(mem_latency=30, inp_row_cycles=0, axi_outstanding=1)
    row = _mem("inp", 1, 32, dram_base=0)                                  # 512 B: 4 bursts
    assert tm.insn_cycles(row, hw) == 1 + 30 + 64 + 3 * 30
    # a row crossing a 4 KiB boundary is one burst more (5 instead of 4)
    crossing = _mem("inp", 1, 32, dram_base=(4096 - 64) // 16)
    assert tm.insn_cycles(crossing, hw) == 1 + 30 + 64 + 4 * 30
    # enough outstanding bursts (the HLS default, 16) hide the latency of later bursts
    hw16, tm16 = _tm(mem_latency=30, inp_row_cycles=0)
    assert tm16.read_burst_stall == 0 and tm16.insn_cycles(crossing, hw16) == 1 + 30 + 64
    assert row_bursts(4096 - 64, 0, 512, 1, 128) == 5 and row_bursts(0, 512, 512, 3, 128) == 12


def test_burst_count_of_a_stream_matches_row_by_row_splitting():
    # random 2-D loads (addresses, strides, row lengths) against the row-by-row reference
    import numpy as np
    from vtatune.sim.timing import insn_features
    hw = HwConfig.load(HW)
    rng = np.random.default_rng(3)
    insns = [MemInsn(opcode=Opcode.LOAD, memory_type=int(rng.choice([MemType.INP, MemType.WGT])),
                     dram_base=int(rng.integers(0, 5000)), y_size=int(rng.integers(1, 40)),
                     x_size=int(rng.integers(1, 700)), x_stride=int(rng.integers(0, 900)))
             for _ in range(60)] + [None, GemmInsn(uop_bgn=0, uop_end=2, iter_out=3, iter_in=4)]
    f = insn_features(insns, hw)
    for bb in (128, 256, 4096):
        want = [row_bursts(i.dram_base * e, i.x_stride * e, i.x_size * e, i.y_size, bb)
                if isinstance(i, MemInsn) else 0
                for i in insns for e in [hw.inp_elem_bytes if isinstance(i, MemInsn) and i.memory_type == MemType.INP
                                         else hw.wgt_elem_bytes]]
        assert f.bursts(bb).tolist() == want


def test_tsim_uses_the_configured_timing():
    # fetch of 2 instructions: 10 + 32 / 4 = 18; GEMM of 6 iterations in 3 loop passes
    # (iter_out 2 x iter_in 3): 1 + 4 + 6 + 6 * 2 = 23; FINISH: 1 -> 42 cycles
    hw, _ = _tm(mem_latency=10, bus_bytes_per_cycle=4.0, host_launch_us=0.0, host_per_insn_ns=0.0,
                gemm_loop_cycles=2)
    res = TimingSimulator(hw).execute([GemmInsn(uop_bgn=0, uop_end=1, iter_out=2, iter_in=3), FinishInsn()])
    assert res.cycles == 42.0 and res.accel_ms == 42 / 100_000 and res.host_ms == 0.0


def test_platform_table_moved_and_still_importable():
    from vtatune.hardware import platforms
    assert PLATFORMS is platforms.PLATFORMS and Platform is platforms.Platform
    assert HwConfig.load("ultra96_1x16_i8w8a32_15_15_18_17").platform.freq_mhz == 333
    assert HwConfig.load("de10nano_1x16_i8w8a32_15_15_18_17").platform.ip_base[0] == 0xFF220000
