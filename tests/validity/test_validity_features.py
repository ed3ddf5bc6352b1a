"""Derived and knob features: hand-computed examples, vectorisation, and agreement with the
compiler's own SRAM / closure checks."""
import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.errors import ValidityModelError
from vtatune.hardware.config import HwConfig
from vtatune.space import SpaceError, space_for
from vtatune.validity import CONV_DERIVED, DENSE_DERIVED, feature_names, features
from vtatune.validity.labels import sweep_labels
from vtatune.workloads.suites import resolve_workload

HW = HwConfig.load()
# Default PYNQ 1x16 hardware, by hand: BATCH 1, BLOCK 16, int8 inputs/weights, int32 acc.
INP_ELEM = 1 * 16 * 8 // 8      # 16 B per input element
WGT_ELEM = 16 * 16 * 8 // 8     # 256 B per weight element
ACC_ELEM = 1 * 16 * 32 // 8     # 64 B per accumulator element
INP_CAP, WGT_CAP, ACC_CAP = 2 ** 15, 2 ** 18, 2 ** 17   # LOG_*_BUFF_SIZE 15, 18, 17
UOP_DEPTH = 2 ** 15 // 4        # 32 KiB of 4-byte micro-ops


def derived(name, **knobs):
    wl, hw = resolve_workload(name, HW)
    space = space_for(wl, hw)
    i = space.index_of(knobs)
    row = features(wl, hw, [i], "derived")[0]
    return dict(zip(feature_names(wl.template, "derived"), row)), wl, space, i


def test_conv2d_padded_tile_with_oc_threads_by_hand():
    # resnet18.C5: 28x28, 128 -> 128 channels, 3x3, pad 1, stride 1 (8 x 8 channel blocks)
    f, wl, space, i = derived("resnet18.C5", tile_b=1, tile_h=14, tile_w=28, tile_ci=2,
                              tile_co=4, oc_nthread=2, h_nthread=1)
    rows, cols = (14 - 1) * 1 + 3, (28 - 1) * 1 + 3            # 16 x 30 input window
    inp = 2 * rows * cols * INP_ELEM                            # 2 channel blocks
    wgt = 4 * 2 * 3 * 3 * WGT_ELEM
    acc = 4 * 14 * 28 * ACC_ELEM
    assert (rows, cols, inp, wgt, acc) == (16, 30, 15360, 18432, 100352)
    assert (f["inp_rows"], f["inp_cols"], f["inp_ch"]) == (16, 30, 2)
    assert (f["inp_bytes"], f["wgt_bytes"], f["acc_bytes"]) == (inp, wgt, acc)
    # two virtual threads double every buffer
    assert (f["inp_total_bytes"], f["wgt_total_bytes"], f["acc_total_bytes"]) == (2 * inp, 2 * wgt, 2 * acc)
    assert f["inp_frac"] == pytest.approx(inp / INP_CAP)
    assert f["inp_total_frac"] == pytest.approx(0.9375)
    assert f["wgt_total_frac"] == pytest.approx(0.140625)
    assert f["acc_total_frac"] == pytest.approx(200704 / 131072) and f["acc_total_frac"] > 1
    assert f["max_total_frac"] == f["acc_total_frac"]
    assert (f["n_h0"], f["n_w0"], f["n_co0"], f["n_ci0"], f["n_tiles"], f["n_tile_steps"]) == (2, 1, 2, 4, 4, 16)
    assert (f["frac_h"], f["frac_w"], f["frac_ci"], f["frac_co"]) == (0.5, 1.0, 0.25, 0.5)
    # padding: both row tiles touch the pad (row -1, row 29 > 28), the one column tile too
    assert (f["padded"], f["row_tiles_padded_frac"], f["col_tiles_padded_frac"]) == (1, 1.0, 1.0)
    assert f["ci_tile_gt1_padded"] == 1
    assert f["inp_dma_dims"] == 4                               # ch, rows, cols, block
    assert (f["threads"], f["two_thread_axes"], f["ragged_h"], f["ragged_co"]) == (2, 0, 0, 0)
    # GEMM loops (ci 2, w 28, kw 3, kh 3, co 4, h 14): ci and w fold, the rest are micro-ops
    assert (f["gemm_loops"], f["gemm_uops"]) == (6, 3 * 3 * 4 * 14)
    assert (f["gemm_inner_ext"], f["gemm_inner_dst_step"]) == (14, 28)
    assert f["reset_uops"] == 14 and f["uop_frac"] == pytest.approx(504 / UOP_DEPTH)
    assert (f["wl_in_h"], f["wl_ci_blocks"], f["wl_co_blocks"], f["wl_pad_h"]) == (28, 8, 8, 1)
    # the compiler rejects it (the tile_ci > 1 padded load comes first in its pass order)
    assert verdict(wl, space.get(i).knobs, HW)[2] == "pad_not_supported"


def test_conv2d_partial_padding_shares_by_hand():
    f, *_ = derived("resnet18.C5", tile_b=1, tile_h=7, tile_w=14, tile_ci=1, tile_co=1,
                    oc_nthread=1, h_nthread=2)
    # 4 row tiles of 9 input rows starting at -1, 6, 13, 20: the first and the last (20 + 9 > 28)
    assert f["row_tiles_padded_frac"] == 0.5
    # 2 column tiles of 16 columns starting at -1 and 13 (13 + 16 > 28): both
    assert f["col_tiles_padded_frac"] == 1.0
    assert (f["ci_tile_gt1_padded"], f["inp_dma_dims"]) == (0, 3)
    assert f["inp_total_bytes"] == 2 * 1 * 9 * 16 * INP_ELEM
    assert (f["threads"], f["ragged_h"]) == (2, 0)              # 4 row tiles over 2 threads


def test_conv2d_strided_1x1_both_threads_by_hand():
    # resnet18.C10: 14x14, 256 -> 512, 1x1, pad 0, stride 2 -> 7x7 output, 16 / 32 blocks
    f, wl, space, i = derived("resnet18.C10", tile_b=1, tile_h=1, tile_w=7, tile_ci=16,
                              tile_co=32, oc_nthread=2, h_nthread=2)
    cols = (7 - 1) * 2 + 1
    assert (f["inp_rows"], f["inp_cols"]) == (1, cols)
    assert f["inp_bytes"] == 16 * 1 * 13 * INP_ELEM == 3328
    assert f["wgt_bytes"] == 32 * 16 * WGT_ELEM == 131072 and f["wgt_frac"] == 0.5
    assert f["wgt_total_frac"] == 4 * 131072 / WGT_CAP == 2.0   # four virtual threads
    assert f["acc_total_bytes"] == 4 * 32 * 7 * ACC_ELEM
    assert (f["padded"], f["row_tiles_padded_frac"], f["col_tiles_padded_frac"]) == (0, 0, 0)
    assert (f["two_thread_axes"], f["ragged_h"], f["ragged_co"]) == (1, 1, 1)  # 7 rows, 1 co tile
    assert (f["out_full_rows"], f["inp_full_rows"]) == (1, 0)  # 13 of 14 input columns
    assert not verdict(wl, space.get(i).knobs, HW)[0]


def test_dense_by_hand():
    # dense.0: batch 128, 128 -> 128 (8 x 8 blocks)
    f, *_ = derived("dense.0", tile_b=4, tile_ci=8, tile_co=2, oc_nthread=2)
    assert tuple(f) == DENSE_DERIVED
    assert (f["inp_bytes"], f["wgt_bytes"], f["acc_bytes"]) == (8 * INP_ELEM, 2 * 8 * WGT_ELEM, 4 * 2 * ACC_ELEM)
    assert f["acc_total_frac"] == pytest.approx(2 * 512 / ACC_CAP)
    assert (f["n_b0"], f["n_co0"], f["n_ci0"], f["n_tiles"], f["n_tile_steps"]) == (32, 4, 1, 128, 512)
    assert (f["closure_vars"], f["ragged_co"], f["gemm_uops"]) == (2, 0, 1)


def test_knob_features_are_values_and_positions():
    wl, hw = resolve_workload("resnet18.C9", HW)
    space = space_for(wl, hw)
    idx = np.array([0, 7, 123, space.size - 1])
    X = features(wl, hw, idx, "knob")
    names = feature_names(wl.template, "knob")
    assert X.shape == (4, 14) and names[:2] == ("tile_b", "tile_b_idx")
    for row, i in zip(X, idx):
        cfg, digits = space.get(int(i)), space.point2knob(int(i))
        assert list(row[0::2]) == [cfg.knobs[n] for n in space.names]
        assert list(row[1::2]) == digits


@pytest.mark.parametrize("name", ["resnet18.C3", "mobilenet.D3", "dcgan.CT2", "dense.2"])
def test_vectorised_rows_equal_single_rows(name):
    wl, hw = resolve_workload(name, HW)
    X = features(wl, hw, None, "derived")
    assert X.shape == (space_for(wl, hw).size, len(feature_names(wl.template, "derived")))
    assert np.isfinite(X).all()
    for i in np.random.default_rng(0).choice(X.shape[0], 12, replace=False):
        assert np.array_equal(features(wl, hw, [int(i)], "derived")[0], X[i])


@pytest.mark.parametrize("name", ["resnet18.C2", "resnet18.C9", "resnet18.C3.bias",
                                  "mobilenet.D2", "dcgan.CT1", "dense.0", "deepbench.24"])
def test_sram_fractions_agree_with_the_compiler(name):
    """An SRAM over its capacity (x threads) is always invalid, the compiler's SRAM reasons
    always come with that SRAM over capacity, and valid configurations fit everywhere."""
    wl, hw = resolve_workload(name, HW)
    X = features(wl, hw, None, "derived")
    names = feature_names(wl.template, "derived")
    col = {n: X[:, names.index(n)] for n in names}
    lab = sweep_labels(wl, hw)
    over = col["max_total_frac"] > 1
    assert not lab.valid[over].any()
    for buf in ("inp", "wgt", "acc"):
        hit = lab.reason == f"{buf}_sram_overflow"
        assert (col[f"{buf}_total_frac"][hit] > 1).all(), buf
    assert (col["max_total_frac"][lab.valid] <= 1).all()
    if wl.template != "dense_packed.vta":
        assert not lab.valid[col["two_thread_axes"] == 1].any()   # closure_too_large


def test_bad_inputs_are_typed():
    wl, hw = resolve_workload("resnet18.C9", HW)
    with pytest.raises(ValidityModelError) as e:
        features(wl, hw, [0], "itervar")
    assert e.value.field == "features"
    with pytest.raises(SpaceError) as e:
        features(wl, hw, [0, 480], "derived")
    assert e.value.field == "indices"
    with pytest.raises(SpaceError) as e:
        features(wl, hw, [0.5], "derived")
    assert e.value.field == "indices"
    assert feature_names("conv2d_packed.vta", "derived") == CONV_DERIVED
