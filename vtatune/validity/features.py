"""Features of VTA template configurations for the validity classifier (issue 11 item 1).

Two feature sets, both computed from the workload, the hardware configuration and the knob
values alone (nothing is compiled) and vectorised over configuration indices:

``knob``
    What Rieber et al. 2022 and AutoTVM's ``"knob"`` feature type give a model: per knob its
    value (a split's inner factor = the tile size, a thread count) and its candidate position
    in the knob's list.  Nothing about the workload, so a model trained on one layer sees
    the same numbers mean different things on another layer.

``derived``
    Quantities the compiler's checks are made of, written out from the template's loop
    structure (``vtatune/compiler/conv2d.py``, ``conv2d_transpose.py``, ``dense.py``):

    * workload shape (``wl_*``): the padded-correlation geometry the accelerator runs (a
      conv2d_transpose is the stride-1 correlation of the dilated input, padded k-1-p), so
      a model transfers between workloads of one template;
    * tile sizes and the fraction of each split axis a tile covers (``frac_*``);
    * loop extents (tiles per axis ``n_*``, number of output tiles, tile x reduction steps);
    * the input window of a tile (rows, columns, channel blocks) and the per-buffer SRAM
      footprint in bytes, per virtual thread and x threads (``cthread`` replicates every
      allocation), and as a fraction of the INP / WGT / ACC SRAM (``*_frac`` > 1 overflows);
    * padding: whether the template pads at all (only when the row padding is non-zero),
      the share of row / column tiles whose input window reaches into the padding, the
      tile_ci > 1 on a padded layer flag, the number of non-unit dimensions of the input
      tile's DMA;
    * DMA shape flags: output / input tile spans whole rows, whole height;
    * threads: count, both thread axes in use (two closure variables), ragged thread
      splits;
    * micro-ops: non-unit GEMM loops, micro-ops per GEMM / reset kernel after the two
      outermost loops are folded, their share of the micro-op SRAM, and the accumulator
      step between consecutive micro-ops of the innermost unrolled loop (0 = two micro-ops
      in a row write the same accumulator).

Conv-family templates (conv2d, group conv2d, conv2d_transpose) share ``CONV_DERIVED``;
dense has ``DENSE_DERIVED``.  Columns are float64.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ValidityModelError
from ..hardware.config import HwConfig
from ..space import ConfigSpace, SpaceError, space_for
from ..space.indexing import digits_of
from ..workloads.workload import CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, Workload

FEATURE_SETS = ("knob", "derived")

CONV_DERIVED: tuple[str, ...] = (
    # workload shape (the correlation the accelerator runs)
    "wl_batch_blocks", "wl_in_h", "wl_in_w", "wl_ci_blocks", "wl_co_blocks", "wl_kh", "wl_kw",
    "wl_stride_h", "wl_stride_w", "wl_pad_h", "wl_pad_w", "wl_out_h", "wl_out_w", "wl_groups",
    # knobs and the share of each axis a tile covers
    "tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread",
    "frac_h", "frac_w", "frac_ci", "frac_co",
    # loop extents
    "n_b0", "n_h0", "n_w0", "n_co0", "n_ci0", "n_tiles", "n_tile_steps",
    # input window of one tile
    "inp_rows", "inp_cols", "inp_ch",
    # SRAM per virtual thread, x threads, and as fractions of each SRAM
    "inp_bytes", "wgt_bytes", "acc_bytes",
    "inp_frac", "wgt_frac", "acc_frac",
    "inp_total_bytes", "wgt_total_bytes", "acc_total_bytes",
    "inp_total_frac", "wgt_total_frac", "acc_total_frac", "max_total_frac",
    # padding
    "padded", "row_tiles_padded_frac", "col_tiles_padded_frac", "ci_tile_gt1_padded",
    "inp_dma_dims",
    # DMA shape flags
    "out_full_rows", "out_full_height", "inp_full_rows", "inp_full_height",
    # threads
    "threads", "two_thread_axes", "ragged_h", "ragged_co",
    # micro-ops
    "gemm_loops", "gemm_uops", "reset_uops", "uop_frac", "gemm_inner_ext", "gemm_inner_dst_step",
)

DENSE_DERIVED: tuple[str, ...] = (
    "wl_batch_blocks", "wl_ci_blocks", "wl_co_blocks",
    "tile_b", "tile_ci", "tile_co", "oc_nthread",
    "frac_b", "frac_ci", "frac_co",
    "n_b0", "n_co0", "n_ci0", "n_tiles", "n_tile_steps",
    "inp_bytes", "wgt_bytes", "acc_bytes",
    "inp_frac", "wgt_frac", "acc_frac",
    "inp_total_bytes", "wgt_total_bytes", "acc_total_bytes",
    "inp_total_frac", "wgt_total_frac", "acc_total_frac", "max_total_frac",
    "threads", "closure_vars", "ragged_co",
    "gemm_loops", "gemm_uops", "reset_uops", "uop_frac",
)

_CHUNK = 16384  # rows per block when a feature broadcasts over tile positions


def _check_kind(kind: str) -> None:
    if kind not in FEATURE_SETS:
        raise ValidityModelError("features", f"unknown feature set {kind!r}; known: "
                                             f"{', '.join(FEATURE_SETS)}")


def feature_names(template: str, kind: str, knob_names: Sequence[str] | None = None
                  ) -> tuple[str, ...]:
    """Column names of ``features`` for a template (``Workload.template``) and feature set.
    ``knob_names`` (the space's knobs, definition order) is needed for ``knob`` only; by
    default the VTA template's knobs."""
    _check_kind(kind)
    if kind == "derived":
        return DENSE_DERIVED if template == DENSE else CONV_DERIVED
    if knob_names is None:
        from ..space import CONV_KNOBS, DENSE_KNOBS
        knob_names = DENSE_KNOBS if template == DENSE else CONV_KNOBS
    return tuple(n for k in knob_names for n in (k, f"{k}_idx"))


def check_indices(space: ConfigSpace, indices) -> np.ndarray:
    """``indices`` as an int64 array inside ``[0, space.size)`` (``SpaceError`` on
    "indices" otherwise); ``None`` = every configuration."""
    if indices is None:
        return np.arange(space.size, dtype=np.int64)
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise SpaceError("indices", f"expected a 1-D sequence of indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise SpaceError("indices", f"expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= space.size):
        bad = int(arr[(arr < 0) | (arr >= space.size)][0])
        raise SpaceError("indices", f"{bad} is out of range for a space of size {space.size}")
    return arr


def knob_values(space: ConfigSpace, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Knob name -> float64 array of the knob's value at each index."""
    digits = digits_of(indices, space.dims)
    out = {}
    for j, (name, knob) in enumerate(space.knobs.items()):
        out[name] = np.asarray(knob.candidates, dtype=np.float64)[digits[:, j]]
    return out


def features(wl: Workload, hw: HwConfig, indices=None, kind: str = "derived",
             space: ConfigSpace | None = None) -> np.ndarray:
    """``(len(indices), len(feature_names(...)))`` float64 features of the configurations
    at ``indices`` (all of them when None) of ``wl``'s space on ``hw``."""
    _check_kind(kind)
    wl = wl.bind(hw)
    space = space if space is not None else space_for(wl, hw)
    idx = check_indices(space, indices)
    if kind == "knob":
        digits = digits_of(idx, space.dims)
        cols = []
        for j, knob in enumerate(space.knobs.values()):
            cols.append(np.asarray(knob.candidates, dtype=np.float64)[digits[:, j]])
            cols.append(digits[:, j].astype(np.float64))
        return np.stack(cols, axis=1) if cols else np.empty((idx.size, 0))
    k = knob_values(space, idx)
    fn = _dense_derived if wl.template == DENSE else _conv_derived
    try:
        cols = fn(wl, hw, k)
    except KeyError as exc:
        raise ValidityModelError("knobs", f"the space of {wl.name or wl.template} has no knob "
                                          f"{exc.args[0]!r}") from None
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- helpers
def _fold_uops(exts: list, dsts: list, blocked: list):
    """Micro-ops of one kernel after FoldUopLoop: unit loops vanish, the first two remaining
    loops become the instruction's iteration loops unless one is unrolled or guarded
    (folding stops there); every other iteration is one micro-op (a guard may skip some:
    this counts the product).  ``exts``/``dsts`` (accumulator step of each loop)/``blocked``
    are per loop, outermost first, scalars or per-configuration arrays.  Returns
    (micro-ops, non-unit loops, extent and accumulator step of the innermost unrolled loop;
    1 and -1 when nothing is unrolled)."""
    m = np.broadcast(*[np.asarray(e) for e in exts]).shape[0]
    uops, seen = np.ones(m), np.zeros(m)
    stop = np.zeros(m, dtype=bool)
    inner_ext, inner_dst = np.ones(m), np.full(m, -1.0)
    for ext, dst, blk in zip(exts, dsts, blocked):
        ext = np.broadcast_to(np.asarray(ext, dtype=np.float64), (m,))
        blk = np.broadcast_to(np.asarray(blk, dtype=bool), (m,))
        nonunit = ext != 1
        eligible = nonunit & (seen < 2) & ~stop
        folded = eligible & ~blk
        stop |= eligible & blk
        seen += nonunit
        unrolled = nonunit & ~folded
        uops *= np.where(unrolled, ext, 1.0)
        inner_ext = np.where(unrolled, ext, inner_ext)   # later loops are further inside
        inner_dst = np.where(unrolled, dst, inner_dst)
    return uops, seen, inner_ext, inner_dst


def _padded_share(n_tiles: np.ndarray, step: np.ndarray, window: np.ndarray, pad: int,
                  extent: int) -> np.ndarray:
    """Share of the tiles along one axis whose input window reaches into the padding:
    tile i reads input positions [i*step - pad, i*step - pad + window)."""
    out = np.zeros(n_tiles.shape[0])
    if n_tiles.size == 0:
        return out
    top = int(n_tiles.max())
    pos = np.arange(top, dtype=np.float64)[None, :]
    for s in range(0, n_tiles.shape[0], _CHUNK):
        nt, st, win = (a[s:s + _CHUNK, None] for a in (n_tiles, step, window))
        start = pos * st - pad
        hit = (pos < nt) & ((start < 0) | (start + win > extent))
        out[s:s + _CHUNK] = hit.sum(axis=1) / nt[:, 0]
    return out


def _sram(hw: HwConfig, inp: np.ndarray, wgt: np.ndarray, acc: np.ndarray, threads: np.ndarray):
    """Bytes and SRAM fractions per buffer, per thread and x threads."""
    cap = {"inp": hw.inp_buff_depth * hw.inp_elem_bytes, "wgt": hw.wgt_buff_depth * hw.wgt_elem_bytes,
           "acc": hw.acc_buff_depth * hw.acc_elem_bytes}
    b = {"inp": inp * hw.inp_elem_bytes, "wgt": wgt * hw.wgt_elem_bytes, "acc": acc * hw.acc_elem_bytes}
    per = [b[s] for s in ("inp", "wgt", "acc")]
    frac = [b[s] / cap[s] for s in ("inp", "wgt", "acc")]
    tot = [b[s] * threads for s in ("inp", "wgt", "acc")]
    tfrac = [t / cap[s] for t, s in zip(tot, ("inp", "wgt", "acc"))]
    return per + frac + tot + tfrac + [np.maximum.reduce(tfrac)]


# ----------------------------------------------------------------------------- conv family
def _conv_derived(wl: Workload, hw: HwConfig, k: dict[str, np.ndarray]) -> list[np.ndarray]:
    B, BI, BO = hw.batch, hw.block_in, hw.block_out
    transpose = wl.template == CONV2D_TRANSPOSE
    if transpose:  # the stride-1 correlation of the dilated input, padded k - 1 - p
        H, W = (wl.height - 1) * wl.stride_h + 1, (wl.width - 1) * wl.stride_w + 1
        ph, pw, sh, sw = wl.kernel_h - 1 - wl.pad_h, wl.kernel_w - 1 - wl.pad_w, 1, 1
    else:
        H, W, ph, pw, sh, sw = wl.height, wl.width, wl.pad_h, wl.pad_w, wl.stride_h, wl.stride_w
    OH, OW, KH, KW = wl.out_height, wl.out_width, wl.kernel_h, wl.kernel_w
    nb = wl.batch // B
    CIb, COb = wl.in_channels // BI, wl.out_channels // BO
    grouped = wl.template == GROUP_CONV2D
    ci_red = CIb // wl.groups if grouped else CIb
    cpg = COb // wl.groups

    b1, h1, w1, ci1, co1 = (k[n] for n in ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co"))
    nt_oc, nt_h = k["oc_nthread"], k["h_nthread"]
    one = np.ones_like(h1)
    threads = nt_oc * nt_h
    n_b0, n_h0, n_w0, n_co0, n_ci0 = nb / b1, OH / h1, OW / w1, COb / co1, ci_red / ci1
    n_tiles = nb * n_h0 * n_w0 * n_co0     # the template's output loops run every batch block
    rows, cols = (h1 - 1) * sh + KH, (w1 - 1) * sw + KW
    # a group conv tile spanning several groups loads the input channels of all of them
    in_ch = (np.maximum(1, np.floor(co1 / cpg)) - 1) * ci_red + ci1 if grouped else ci1
    inp_e, wgt_e = in_ch * rows * cols, co1 * ci1 * KH * KW
    acc_e = co1 * h1 * w1 + (co1 if wl.has_bias else 0)
    padded = ph != 0  # the template pads only when the row padding is non-zero
    if padded:
        row_pad = _padded_share(n_h0, h1 * sh, rows, ph, H)
        col_pad = _padded_share(n_w0, w1 * sw, cols, pw, W)
    else:
        row_pad = col_pad = np.zeros_like(h1)
    inp_dims = (in_ch != 1).astype(float) + (rows != 1) + (cols != 1) + (B != 1) + (BI != 1)

    if transpose:  # (ci, w/2, co, h/4 | w%2, kw, kh, h%4 unrolled); ragged splits are guarded
        wj, hi = np.ceil(w1 / 2), np.ceil(h1 / 4)
        rag_w, rag_h = np.mod(w1, 2) != 0, np.mod(h1, 4) != 0
        g_uops, g_loops, g_ext, g_dst = _fold_uops(
            [ci1, wj, co1, hi, 2, KW, KH, 4], [0, 2, h1 * w1, 4 * w1, 1, 0, 0, w1],
            [False, rag_w, False, rag_h, True, True, True, True])
        reset = _fold_uops([wj, co1, hi, 2, 4], [2, h1 * w1, 4 * w1, 1, w1],
                           [rag_w, False, rag_h, True, True])
    else:  # (ci, w, kw, kh, co, h) with accumulator steps (0, 1, 0, 0, h1*w1, w1)
        g_uops, g_loops, g_ext, g_dst = _fold_uops(
            [ci1, w1, KW, KH, co1, h1], [0, 1, 0, 0, h1 * w1, w1], [False] * 6)
        reset = _fold_uops([w1, co1, h1], [1, h1 * w1, w1], [False] * 3)
    r_uops = reset[0]

    return [
        nb * one, H * one, W * one, ci_red * one, COb * one, KH * one, KW * one,
        sh * one, sw * one, ph * one, pw * one, OH * one, OW * one, wl.groups * one,
        b1, h1, w1, ci1, co1, nt_oc, nt_h,
        h1 / OH, w1 / OW, ci1 / ci_red, co1 / COb,
        n_b0, n_h0, n_w0, n_co0, n_ci0, n_tiles, n_tiles * n_ci0,
        rows, cols, in_ch,
        *_sram(hw, inp_e, wgt_e, acc_e, threads),
        float(padded) * one, row_pad, col_pad, ((in_ch > 1) & padded).astype(float), inp_dims,
        (w1 == OW).astype(float), (h1 == OH).astype(float), (cols >= W).astype(float),
        (rows >= H).astype(float),
        threads, ((nt_oc > 1) & (nt_h > 1)).astype(float),
        ((nt_h > 1) & (np.mod(n_h0, nt_h) != 0)).astype(float),
        ((nt_oc > 1) & (np.mod(n_co0, nt_oc) != 0)).astype(float),
        g_loops, g_uops, r_uops, g_uops / hw.uop_buff_depth, g_ext, g_dst,
    ]


# ----------------------------------------------------------------------------- dense
def _dense_derived(wl: Workload, hw: HwConfig, k: dict[str, np.ndarray]) -> list[np.ndarray]:
    nb, CIb, COb = wl.batch // hw.batch, wl.in_channels // hw.block_in, wl.out_channels // hw.block_out
    b1, ci1, co1, nt_oc = (k[n] for n in ("tile_b", "tile_ci", "tile_co", "oc_nthread"))
    one = np.ones_like(b1)
    n_b0, n_co0, n_ci0 = nb / b1, COb / co1, CIb / ci1
    n_tiles = n_b0 * n_co0
    acc_e = b1 * co1 * (2 if wl.has_bias else 1)  # bias tile has the result's shape
    g_uops, g_loops, _, _ = _fold_uops([ci1, co1], [0, 1], [False, False])
    r_uops = _fold_uops([co1], [1], [False])[0]
    return [
        nb * one, CIb * one, COb * one,
        b1, ci1, co1, nt_oc,
        b1 / nb, ci1 / CIb, co1 / COb,
        n_b0, n_co0, n_ci0, n_tiles, n_tiles * b1 * n_ci0,
        *_sram(hw, ci1, co1 * ci1, acc_e, nt_oc),
        nt_oc, (nt_oc > 1).astype(float) + (b1 > 1),
        ((nt_oc > 1) & (np.mod(n_co0, nt_oc) != 0)).astype(float),
        g_loops, g_uops, r_uops, g_uops / hw.uop_buff_depth,
    ]
