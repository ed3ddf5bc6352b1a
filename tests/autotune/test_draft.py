"""The VTA draft model (issue 15 item 3): values and orders derived by hand from the cycle
model's definition (docs/tsim.md, ``hw.timing`` of pynq_1x16: insn_overhead 1, gemm_fill 4,
gemm_loop_cycles 2, alu_fill 4, alu_ii 2), not read back from the implementation."""
import numpy as np
import pytest

from vtatune.autotune.draft import draft_cycles_batch, draft_model
from vtatune.hardware.config import HwConfig
from vtatune.space.templates import space_for
from vtatune.workloads.suites import resolve_workload
from vtatune.workloads.workload import DENSE, Workload

HW = "pynq_1x16_i8w8a32_15_15_18_17"


@pytest.fixture(scope="module")
def hw():
    return HwConfig.load(HW)


def dense(cin, cout, **k):
    knobs = {"tile_b": 1, "tile_ci": 16, "tile_co": 16, "oc_nthread": 1}
    knobs.update(k)
    return Workload(DENSE, 1, 1, cin, cout), {n: [v] for n, v in knobs.items()}


def test_dense_gemm_and_alu_cycles_by_hand(hw):
    wl, knobs = dense(256, 256)   # 16 x 16 blocks, one tile, one reduction step
    c = draft_cycles_batch(wl, hw, knobs)
    # GEMM: 16*16 = 256 micro-op executions, one micro-op folded into a 16x16 loop:
    # 1 (overhead) + 4 (fill) + 256 (one per cycle) + 256 iterations * 2 (loop) = 773;
    # accumulator reset: 1 + 4 + 16 vectors = 21
    assert c["gemm"][0] == pytest.approx(773 + 21)
    # shift/clip epilogue: 3 ALU stages of 1 + 4 + 2 * 16 vectors
    assert c["alu"][0] == pytest.approx(3 * 37)


def test_twice_the_gemm_work_ranks_slower(hw):
    one = draft_cycles_batch(dense(256, 256)[0], hw, dense(256, 256)[1])
    two = draft_cycles_batch(dense(256, 512)[0], hw, dense(256, 512)[1])  # two output tiles
    assert two["gemm"][0] == pytest.approx(2 * one["gemm"][0])
    assert two["latency_ms"][0] > one["latency_ms"][0]


def test_larger_tiles_with_fewer_dma_bytes_rank_faster(hw):
    wl, _ = resolve_workload("resnet18.C9", hw)   # 7x7 output, 256 -> 512, 3x3
    base = {"tile_b": 1, "tile_w": 7, "tile_ci": 8, "tile_co": 8, "oc_nthread": 1,
            "h_nthread": 1}
    # tile_h 7: the weights stream once; tile_h 1: seven times (7 row tiles), same GEMM work
    big = draft_cycles_batch(wl, hw, {**{n: [v] for n, v in base.items()}, "tile_h": [7]})
    small = draft_cycles_batch(wl, hw, {**{n: [v] for n, v in base.items()}, "tile_h": [1]})
    # weights: 256*512*9 = 1,179,648 B per pass at 8 B/cycle and 2.1994 cycles per beat
    wgt_pass = 256 * 512 * 9 / 8 * 2.1994
    assert small["load"][0] - big["load"][0] > 6 * wgt_pass * 0.99
    assert big["latency_ms"][0] < small["latency_ms"][0]


def test_threads_overlap_and_sram_overflow_ranks_last(hw):
    wl, _ = resolve_workload("resnet18.C9", hw)
    base = {"tile_b": [1], "tile_h": [7], "tile_w": [7], "tile_ci": [8], "tile_co": [8],
            "h_nthread": [1]}
    one = draft_cycles_batch(wl, hw, {**base, "oc_nthread": [1]})
    two = draft_cycles_batch(wl, hw, {**base, "oc_nthread": [2]})
    # one virtual thread: load, compute, store serialise; two: the phases overlap
    parts = [one[k][0] for k in ("load", "gemm", "alu", "store")]
    assert one["accel"][0] == pytest.approx(sum(parts))
    assert two["accel"][0] < one["accel"][0]
    # an 8 x 32 weight tile of 3x3 = 2304 entries > 1024 WGT entries: cannot compile
    over = draft_cycles_batch(wl, hw, {**base, "oc_nthread": [1], "tile_co": [32]})
    assert not over["sram_ok"][0] and np.isinf(over["latency_ms"][0])


def test_model_ranks_invalid_last_and_scores_fast(hw):
    wl, _ = resolve_workload("resnet18.C9", hw)
    wl = wl.bind(hw)
    space = space_for(wl, hw)
    dm = draft_model(space, wl, hw)
    s = dm.score_all()
    assert s.shape == (space.size,) and dm.calls == space.size
    top = dm.top(20)
    assert len(top) == 20 and np.all(np.diff(s[top]) <= 0)
    assert dm.valid(top).all()          # the compiler's verdict filtered the shortlist
    finite = np.isfinite(s)
    assert (~finite).any() and s[top].min() > s[~finite].max()
