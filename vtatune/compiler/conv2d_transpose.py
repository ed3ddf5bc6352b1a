"""Lowering of ``conv2d_transpose_packed.vta`` (TVM v0.14 schedule).

The host dilates the input by the stride into a DRAM buffer (TVM computes that stage on the
ARM CPU); the accelerator then runs a stride-1 correlation of the dilated input, padded by
k - 1 - p on each side, with the kernel flipped and transposed (IOHW -> OIHW).  The conv
stage splits its row axis by 4 and its column axis by 2, orders (ci, w/2, co, h/4, w%2, kw,
kh, h%4) and unrolls the last four: they become micro-ops and are never folded; a ragged
split adds a bound check that stops folding at the guarded loop and skips micro-ops.
"""
from __future__ import annotations

import math

import numpy as np

from ..workloads.workload import Workload
from . import packing
from .common import Loop, gemm_kernel
from .conv2d import Conv2DLowering


class _Geometry:
    """The correlation the accelerator actually runs."""

    def __init__(self, wl: Workload):
        self.height = (wl.height - 1) * wl.stride_h + 1
        self.width = (wl.width - 1) * wl.stride_w + 1
        self.pad_h = wl.kernel_h - 1 - wl.pad_h
        self.pad_w = wl.kernel_w - 1 - wl.pad_w
        self.stride_h = self.stride_w = 1
        for name in ("in_channels", "out_channels", "kernel_h", "kernel_w", "batch", "epilogue",
                     "requant", "has_bias", "groups", "template"):
            setattr(self, name, getattr(wl, name))
        self.out_height, self.out_width = wl.out_height, wl.out_width


class Conv2DTransposeLowering(Conv2DLowering):
    def __post_init__(self) -> None:
        self.original = self.wl
        self.wl = _Geometry(self.wl)
        super().__post_init__()
        self.wl = self.wl  # the correlation's geometry drives tiling and DMA

    def _split(self):
        h1, w1 = self.h1, self.w1
        return math.ceil(h1 / 4), math.ceil(w1 / 2), bool(h1 % 4), bool(w1 % 2)

    def _guard(self):
        _, _, rag_h, rag_w = self._split()
        if not (rag_h or rag_w):
            return None
        h1, w1 = self.h1, self.w1
        return lambda v: (4 * v.get("hi", 0) + v.get("hii", 0) < h1) and (2 * v.get("wj", 0) + v.get("wjj", 0) < w1)

    def reset_loops(self):
        hi, wj, rag_h, rag_w = self._split()
        h1, w1 = self.h1, self.w1
        return [Loop("wj", wj, 2, 0, 0, guarded=rag_w), Loop("co", self.co1, h1 * w1, 0, 0),
                Loop("hi", hi, 4 * w1, 0, 0, guarded=rag_h),
                Loop("wjj", 2, 1, 0, 0, unrolled=True, guarded=rag_w),
                Loop("hii", 4, w1, 0, 0, unrolled=True, guarded=rag_h)]

    def gemm_loops(self):
        hi, wj, rag_h, rag_w = self._split()
        h1, w1, rows, cols = self.h1, self.w1, self.rows, self.cols
        KH, KW = self.KH, self.KW
        return [Loop("ci", self.ci1, 0, rows * cols, KH * KW),
                Loop("wj", wj, 2, 2, 0, guarded=rag_w),
                Loop("co", self.co1, h1 * w1, 0, self.ci1 * KH * KW),
                Loop("hi", hi, 4 * w1, 4 * cols, 0, guarded=rag_h),
                Loop("wjj", 2, 1, 1, 0, unrolled=True, guarded=rag_w),
                Loop("kw", KW, 0, 1, 1, unrolled=True),
                Loop("kh", KH, 0, cols, KW, unrolled=True),
                Loop("hii", 4, w1, cols, 0, unrolled=True, guarded=rag_h)]

    def kernels(self, t: int):
        out = super().kernels(t)
        acc0 = t * self.acc_elems
        guard = self._guard()
        out[0] = (("reset", t), gemm_kernel(self.reset_loops(), (acc0, 0, 0), reset=True, guard=guard))
        out[1] = (("gemm", t), gemm_kernel(self.gemm_loops(), (acc0, t * self.inp_elems, t * self.wgt_elems),
                                           reset=False, guard=guard))
        return out

    # ------------------------------------------------------------------ DRAM
    def region_sizes(self) -> dict[str, int]:
        sizes = super().region_sizes()
        g = self.wl
        sizes["data"] = g.batch * g.in_channels * g.height * g.width
        return sizes

    def pack_inputs(self, inputs: dict) -> dict:
        wl = self.original
        x = inputs["data"]
        n, c, h, w = x.shape
        dil = np.zeros((n, c, (h - 1) * wl.stride_h + 1, (w - 1) * wl.stride_w + 1), dtype=x.dtype)
        dil[:, :, ::wl.stride_h, ::wl.stride_w] = x  # the host's dilate stage
        k_iohw = inputs["kernel"]
        k_oihw = np.ascontiguousarray(np.flip(k_iohw, axis=(2, 3)).transpose(1, 0, 2, 3))
        out = {"data": packing.pack_data(dil, self.hw), "kernel": packing.pack_kernel(k_oihw, self.hw)}
        if self.has_bias:
            out["bias"] = packing.pack_bias(inputs["bias"], self.hw, wl.batch)
        return out
