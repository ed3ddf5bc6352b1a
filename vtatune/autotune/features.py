"""The VTA loop-nest (``"itervar"``) features of template configurations.

``"itervar"`` features stand in for AutoTVM's ``get_itervar_feature_flatten`` (which walks
the lowered TVM loop nest, unavailable here): the same kind of quantities — loop extents,
strides, bytes touched per buffer, micro-op counts, thread counts — computed directly from
the workload, the hardware configuration and the knobs, with the template's loop structure
(``vtatune/compiler/conv2d.py``, ``conv2d_transpose.py``, ``dense.py``).  Like AutoTVM
(``take_log=True``) every value ``x`` is stored as ``log2(1 + x)``; the thread knobs are
included (AutoTVM appends ``get_other_option()``).  Everything is vectorised over
configurations: ``itervar_features_batch`` takes arrays of knob values.

Conv-family templates (``conv2d``, ``group_conv2d``, ``conv2d_transpose``) give
``len(CONV_FEATURES)`` = 50 columns, ``dense`` gives ``len(DENSE_FEATURES)`` = 34; the names,
in column order, are in ``CONV_FEATURES`` / ``DENSE_FEATURES``.  A conv2d_transpose is
described by the stride-1 correlation the accelerator runs (dilated input, k-1-p padding).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import ConfigurationError
from ..workloads.workload import CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, Workload
from ..tuning.features import FeatureFn, knob_feature_fn

if TYPE_CHECKING:
    from ..hardware.config import HwConfig
    from ..space.config import ConfigSpace

#: Names of the conv-family itervar features, in column order.
CONV_FEATURES: tuple[str, ...] = (
    # knobs and threads
    "tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread", "threads",
    # outer loop extents (tiles per axis) and totals
    "n_b", "n_h0", "n_w0", "n_co0", "n_koo", "n_tiles", "n_tile_steps",
    # GEMM loop nest (ci, w, kw, kh, co, h): extents, then INP / ACC / WGT strides
    "gemm_ext_ci", "gemm_ext_w", "gemm_ext_kw", "gemm_ext_kh", "gemm_ext_co", "gemm_ext_h",
    "inp_stride_ci", "inp_stride_w", "inp_stride_kh", "inp_stride_h",
    "acc_stride_w", "acc_stride_co", "acc_stride_h", "wgt_stride_ci", "wgt_stride_kh",
    "wgt_stride_co",
    # on-chip tiles: input rows/cols, bytes per buffer, SRAM occupancy (all threads)
    "inp_rows", "inp_cols", "inp_tile_bytes", "wgt_tile_bytes", "acc_tile_bytes",
    "out_tile_bytes", "inp_sram_frac", "wgt_sram_frac", "acc_sram_frac",
    # DRAM traffic per buffer (bytes, whole operator)
    "dram_inp_bytes", "dram_wgt_bytes", "dram_out_bytes", "dram_total_bytes",
    # micro-ops and instructions
    "gemm_ops_per_kernel", "gemm_uops_per_kernel", "reset_uops_per_kernel", "uop_frac",
    "n_insns", "ragged_threads",
)

#: Names of the dense itervar features, in column order.
DENSE_FEATURES: tuple[str, ...] = (
    "tile_b", "tile_ci", "tile_co", "oc_nthread", "threads",
    "n_b0", "n_co0", "n_koo", "n_tiles", "n_tile_steps",
    "gemm_ext_ci", "gemm_ext_co", "inp_stride_ci", "acc_stride_co", "wgt_stride_ci",
    "wgt_stride_co",
    "inp_tile_bytes", "wgt_tile_bytes", "acc_tile_bytes", "out_tile_bytes",
    "inp_sram_frac", "wgt_sram_frac", "acc_sram_frac",
    "dram_inp_bytes", "dram_wgt_bytes", "dram_out_bytes", "dram_total_bytes",
    "gemm_ops_per_kernel", "gemm_uops_per_kernel", "reset_uops_per_kernel", "uop_frac",
    "n_insns", "closure_vars", "ragged_threads",
)

_N_ALU = {"shift_clip": 3, "bias": 4, "relu": 2}  # ALU stages of each epilogue


def itervar_feature_names(workload: Workload) -> tuple[str, ...]:
    """Column names of ``itervar_features`` for ``workload``'s template."""
    return DENSE_FEATURES if workload.template == DENSE else CONV_FEATURES


def _uops(exts: list[np.ndarray], blocked: list[np.ndarray | bool]) -> np.ndarray:
    """Micro-ops per kernel (FoldUopLoop): unit loops vanish, the first two remaining loops
    become the instruction's iteration loops unless one is unrolled/guarded (folding stops
    there); every other loop iteration is one micro-op."""
    m = exts[0].shape[0]
    uops = np.ones(m, dtype=np.float64)
    seen = np.zeros(m, dtype=np.int64)
    stop = np.zeros(m, dtype=bool)
    for ext, blk in zip(exts, blocked):
        nonunit = ext != 1
        eligible = nonunit & (seen < 2) & ~stop
        folded = eligible & ~np.asarray(blk)
        stop |= eligible & np.asarray(blk)
        seen += nonunit
        uops *= np.where(nonunit & ~folded, ext, 1)
    return uops


def _conv_features(wl: Workload, hw: HwConfig, k: Mapping[str, np.ndarray]) -> np.ndarray:
    B, BI, BO = hw.batch, hw.block_in, hw.block_out
    transpose = wl.template == CONV2D_TRANSPOSE
    # conv2d_transpose: the stride-1 correlation over the dilated input
    sh, sw = (1, 1) if transpose else (wl.stride_h, wl.stride_w)
    OH, OW, KH, KW = wl.out_height, wl.out_width, wl.kernel_h, wl.kernel_w
    nb = wl.batch // B
    CIb, COb = wl.in_channels // BI, wl.out_channels // BO
    grouped = wl.template == GROUP_CONV2D
    ci_red = CIb // wl.groups if grouped else CIb
    cpg = COb // wl.groups

    f = {n: np.asarray(k[n], dtype=np.float64) for n in
         ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread")}
    b1, h1, w1, ci1, co1 = f["tile_b"], f["tile_h"], f["tile_w"], f["tile_ci"], f["tile_co"]
    nt_oc, nt_h = f["oc_nthread"], f["h_nthread"]
    threads = nt_oc * nt_h
    n_b, n_h0, n_w0, n_co0, n_koo = nb / b1, OH / h1, OW / w1, COb / co1, ci_red / ci1
    n_tiles = nb * n_h0 * n_w0 * n_co0
    steps = n_tiles * n_koo
    rows, cols = (h1 - 1) * sh + KH, (w1 - 1) * sw + KW
    in_ch = ((np.maximum(1, co1 // cpg) - 1) * ci_red + ci1) if grouped else ci1
    inp_elems, wgt_elems = in_ch * rows * cols, co1 * ci1 * KH * KW
    acc_elems = co1 * h1 * w1 + (co1 if wl.has_bias else 0)
    inp_b, wgt_b = inp_elems * hw.inp_elem_bytes, wgt_elems * hw.wgt_elem_bytes
    acc_b, out_b = acc_elems * hw.acc_elem_bytes, co1 * h1 * w1 * hw.out_elem_bytes
    kk = KH * KW
    zero = np.zeros_like(b1)
    gemm_ops = ci1 * w1 * KW * KH * co1 * h1
    if transpose:  # loops (ci, w/2, co, h/4 | w%2, kw, kh, h%4 unrolled), ragged = guarded
        hi, wj = np.ceil(h1 / 4), np.ceil(w1 / 2)
        rag_h, rag_w = (h1 % 4) != 0, (w1 % 2) != 0
        two, four = np.full_like(b1, 2), np.full_like(b1, 4)
        gemm_uops = _uops([ci1, wj, co1, hi, two, zero + KW, zero + KH, four],
                          [False, rag_w, False, rag_h, True, True, True, True])
        reset_uops = _uops([wj, co1, hi, two, four], [rag_w, False, rag_h, True, True])
    else:
        gemm_uops = _uops([ci1, w1, zero + KW, zero + KH, co1, h1], [False] * 6)
        reset_uops = _uops([w1, co1, h1], [False] * 3)
    n_alu = _N_ALU[wl.epilogue]
    dram_inp, dram_wgt, dram_out = steps * inp_b, steps * wgt_b, n_tiles * out_b
    insns = n_tiles * (3 * n_koo + 2 + n_alu + (1 if wl.has_bias else 0))
    ragged = (((nt_h > 1) & (np.mod(n_h0, nt_h) != 0))
              | ((nt_oc > 1) & (np.mod(n_co0, nt_oc) != 0))).astype(np.float64)
    cols_ = [
        b1, h1, w1, ci1, co1, nt_oc, nt_h, threads,
        n_b, n_h0, n_w0, n_co0, n_koo, n_tiles, steps,
        ci1, w1, zero + KW, zero + KH, co1, h1,
        rows * cols, zero + sw, cols, sh * cols,
        zero + 1, h1 * w1, w1, zero + kk, zero + KW, ci1 * kk,
        rows, cols, inp_b, wgt_b, acc_b, out_b,
        threads * inp_elems / hw.inp_buff_depth, threads * wgt_elems / hw.wgt_buff_depth,
        threads * acc_elems / hw.acc_buff_depth,
        dram_inp, dram_wgt, dram_out, dram_inp + dram_wgt + dram_out,
        gemm_ops, gemm_uops, reset_uops, gemm_uops / hw.uop_buff_depth,
        insns, ragged,
    ]
    return np.stack(cols_, axis=1)


def _dense_features(wl: Workload, hw: HwConfig, k: Mapping[str, np.ndarray]) -> np.ndarray:
    B, BI, BO = hw.batch, hw.block_in, hw.block_out
    nb, CIb, COb = wl.batch // B, wl.in_channels // BI, wl.out_channels // BO
    b1, ci1, co1, nt_oc = (np.asarray(k[n], dtype=np.float64)
                           for n in ("tile_b", "tile_ci", "tile_co", "oc_nthread"))
    threads = nt_oc
    n_b0, n_co0, n_koo = nb / b1, COb / co1, CIb / ci1
    n_tiles = n_b0 * n_co0
    steps = n_tiles * b1 * n_koo            # loads + GEMM per (tile, batch block, ci block)
    inp_elems, wgt_elems = ci1, co1 * ci1
    acc_elems = b1 * co1 * (2 if wl.has_bias else 1)
    inp_b, wgt_b = inp_elems * hw.inp_elem_bytes, wgt_elems * hw.wgt_elem_bytes
    acc_b, out_b = acc_elems * hw.acc_elem_bytes, b1 * co1 * hw.out_elem_bytes
    zero = np.zeros_like(b1)
    gemm_uops = _uops([ci1, co1], [False, False])
    reset_uops = _uops([co1], [False])
    n_alu = _N_ALU[wl.epilogue]
    dram_inp, dram_wgt, dram_out = steps * inp_b, steps * wgt_b, n_tiles * out_b
    insns = n_tiles * (b1 * (1 + 3 * n_koo) + n_alu + b1 + (1 if wl.has_bias else 0))
    ragged = ((nt_oc > 1) & (np.mod(n_co0, nt_oc) != 0)).astype(np.float64)
    cols_ = [
        b1, ci1, co1, nt_oc, threads,
        n_b0, n_co0, n_koo, n_tiles, steps,
        ci1, co1, zero + 1, zero + 1, zero + 1, ci1,
        inp_b, wgt_b, acc_b, out_b,
        threads * inp_elems / hw.inp_buff_depth, threads * wgt_elems / hw.wgt_buff_depth,
        threads * acc_elems / hw.acc_buff_depth,
        dram_inp, dram_wgt, dram_out, dram_inp + dram_wgt + dram_out,
        ci1 * co1, gemm_uops, reset_uops, gemm_uops / hw.uop_buff_depth,
        insns, (nt_oc > 1).astype(np.float64) + (b1 > 1), ragged,
    ]
    return np.stack(cols_, axis=1)


def itervar_features_batch(workload: Workload, hw: HwConfig,
                           knobs: Mapping[str, Any]) -> np.ndarray:
    """Itervar features of many configurations: ``knobs`` maps each knob name of the
    template to an array of values (one per configuration).  Returns ``(m, n_features)``
    float32, ``log2(1 + x)`` of each quantity."""
    wl = workload.bind(hw)
    arrays = {n: np.atleast_1d(np.asarray(v, dtype=np.float64)) for n, v in knobs.items()}
    fn = _dense_features if wl.template == DENSE else _conv_features
    try:
        raw = fn(wl, hw, arrays)
    except KeyError as exc:
        raise ConfigurationError("knobs",
                                 f"missing knob {exc.args[0]!r} for {wl.template}") from None
    return np.log2(1.0 + raw).astype(np.float32)


def itervar_features(workload: Workload, hw: HwConfig, knobs: Mapping[str, Any]) -> np.ndarray:
    """Itervar features of one configuration (``ConfigEntity.knobs``): a 1-D float32 array of
    ``len(itervar_feature_names(workload))`` values (see the module docstring)."""
    return itervar_features_batch(workload, hw, {n: [v] for n, v in knobs.items()})[0]


def itervar_feature_fn(space: ConfigSpace, workload: Workload, hw: HwConfig) -> FeatureFn:
    """Vectorised ``"itervar"`` features of ``space`` (the space of ``workload`` on ``hw``)."""
    names = space.names
    tables = [np.asarray(space[n].candidates, dtype=np.float64) for n in names]
    wl = workload.bind(hw)
    itervar_features_batch(wl, hw, {n: t[:1] for n, t in zip(names, tables)})  # check knobs

    def fn(digits: np.ndarray) -> np.ndarray:
        return itervar_features_batch(wl, hw, {n: t[digits[:, j]]
                                               for j, (n, t) in enumerate(zip(names, tables))})
    return fn


def vta_feature_fn(feature_type: str, space: ConfigSpace, workload: Workload,
                   hw: HwConfig) -> FeatureFn:
    """The feature function of ``feature_type`` (``"itervar"`` or ``"knob"``) for a VTA space."""
    if feature_type == "knob":
        return knob_feature_fn(space)
    if feature_type == "itervar":
        return itervar_feature_fn(space, workload, hw)
    raise ConfigurationError("feature_type",
                             f"expected one of {', '.join(VTA_FEATURE_TYPES)}, got {feature_type!r}")


#: Feature sets of VTA spaces.
VTA_FEATURE_TYPES = ("itervar", "knob")
