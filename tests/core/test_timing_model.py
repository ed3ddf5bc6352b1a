"""tsim's timing parameters (data of the hardware file, ``hw.timing``) and its cost model
(``vtatune.sim.timing.Timing``); the board table (``vtatune.hardware.platforms``)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from vtatune.errors import ConfigurationError
from vtatune.hardware.config import PLATFORMS, HwConfig, Platform
from vtatune.hardware.isa import AluInsn, FinishInsn, GemmInsn
from vtatune.hardware.timing_params import TIMING_FIELDS, TimingParams
from vtatune.sim.timing import Timing
from vtatune.sim.tsim import TimingSimulator

HW = "pynq_1x16_i8w8a32_15_15_18_17"


def test_shipped_timing_is_the_documented_fit():
    # docs/tsim.md: 64-cycle latencies, 8 bytes per cycle, 41.8 us launch, the rest default
    t = HwConfig.load(HW).timing
    assert isinstance(t, TimingParams)
    assert (t.mem_latency, t.mem_write_latency, t.bus_bytes_per_cycle, t.host_launch_us) == (64, 64, 8.0, 41.8)
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


def test_cost_model_formulas():
    hw = HwConfig.load(HW)
    tm = Timing.from_hw(hw)
    assert tm.params is hw.timing and tm.freq_mhz == 100
    assert tm.request_end(10.0, 64) == 10 + 64 + 64 / 8.0
    assert tm.request_end(10.0, 12, write=True) == 10 + 64 + 1.5
    gemm = GemmInsn(uop_bgn=2, uop_end=5, iter_out=2, iter_in=5)           # 3 * 2 * 5 = 30
    alu = AluInsn(uop_bgn=2, uop_end=5, iter_out=2, iter_in=5)
    assert tm.insn_end(gemm, 100.0) == 100 + 1 + 4 + 30
    assert tm.insn_end(alu, 100.0) == 100 + 1 + 4 + 2 * 30
    assert tm.insn_end(GemmInsn(uop_bgn=5, uop_end=5, iter_out=2), 100.0) == 101   # empty: overhead only
    assert tm.insn_end(FinishInsn(), 7.0) == 8.0 and tm.insn_end(None, 7.0) == 8.0
    assert tm.accel_ms(250_000) == 2.5                                      # 100 MHz
    assert tm.host_ms(1000, 10) == pytest.approx(0.0418)


def test_tsim_uses_the_configured_timing():
    # fetch of 2 instructions: 10 + 32 / 4 = 18; GEMM of 6 iterations: 1 + 4 + 6 = 11;
    # FINISH: 1 -> 30 cycles
    base = HwConfig.load(HW)
    hw = dataclasses.replace(base, timing=dataclasses.replace(
        base.timing, mem_latency=10, bus_bytes_per_cycle=4.0, host_launch_us=0.0))
    res = TimingSimulator(hw).execute([GemmInsn(uop_bgn=0, uop_end=1, iter_out=2, iter_in=3), FinishInsn()])
    assert res.cycles == 30.0 and res.accel_ms == 30 / 100_000 and res.host_ms == 0.0


def test_platform_table_moved_and_still_importable():
    from vtatune.hardware import platforms
    assert PLATFORMS is platforms.PLATFORMS and Platform is platforms.Platform
    assert HwConfig.load("ultra96_1x16_i8w8a32_15_15_18_17").platform.freq_mhz == 333
    assert HwConfig.load("de10nano_1x16_i8w8a32_15_15_18_17").platform.ip_base[0] == 0xFF220000
