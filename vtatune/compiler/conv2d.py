"""Lowering of ``conv2d_packed.vta`` and ``group_conv2d_packed.vta`` (TVM v0.14 schedules).

Output loops ``b, h0, co0, w0`` (with ``cthread`` splits of co0 and h0 moved outward); per
output tile of co1 x h1 x w1 accumulators: micro-op reset, then per block of ``tile_ci``
input channels a padded 2-D load of the input tile and a load of the weight tile followed
by the GEMM kernel over (ci, w, kw, kh, co, h); then the ALU epilogue and one STORE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import UnsupportedError
from ..hardware.config import HwConfig
from ..hardware.isa import MemType
from ..workloads.workload import GROUP_CONV2D, Workload
from . import ir, packing
from .common import (Allocation, Loop, alu_kernel, check_lowering_passes, check_mem_fields,
                     closure_check, epilogue_stages, gemm_kernel)
from .copy_pattern import CopyStmt, PadAxis
from .dma import drop_unit, get_2d_pattern, padded_load_dims
from .profiles import DEFAULT_PROFILE


@dataclass
class Regions:
    """Element bases of the DRAM tensors (physical address / element bytes)."""

    data: int = 0
    kernel: int = 0
    out: int = 0
    bias: int = 0


def axis_order(nt_oc: int, nt_h: int) -> list[str]:
    """The output stage's loop order after the template's splits and reorders."""
    order = ["b", "h0", "co0", "w0"]

    def split_thread(axis: str, vt: str):
        i = order.index(axis)
        order[i:i + 1] = [axis + "o", vt]
        a, b = order.index(vt), order.index("b")
        if a > b:  # reorder(v_t, x_bo): v_t takes the earlier of the two positions
            order[a], order[b] = order[b], order[a]
    if nt_oc > 1:
        split_thread("co0", "v_oc")
    if nt_h > 1:
        split_thread("h0", "v_h")
    return order


@dataclass
class Conv2DLowering:
    wl: Workload
    knobs: dict
    hw: HwConfig
    regions: Regions = field(default_factory=Regions)

    def __post_init__(self) -> None:
        wl, hw, k = self.wl, self.hw, self.knobs
        self.B, self.BI, self.BO = hw.batch, hw.block_in, hw.block_out
        self.nb = wl.batch // hw.batch
        self.CIb, self.COb = wl.in_channels // self.BI, wl.out_channels // self.BO
        self.grouped = wl.template == GROUP_CONV2D
        self.ci_red = self.CIb // wl.groups if self.grouped else self.CIb  # reduction blocks
        self.cpg = self.COb // wl.groups                                    # out blocks per group
        self.OH, self.OW = wl.out_height, wl.out_width
        self.KH, self.KW = wl.kernel_h, wl.kernel_w
        self.h1, self.w1 = k["tile_h"], k["tile_w"]
        self.ci1, self.co1 = k["tile_ci"], k["tile_co"]
        self.nt_oc, self.nt_h = k["oc_nthread"], k["h_nthread"]
        self.nthreads = self.nt_oc * self.nt_h
        self.rows = (self.h1 - 1) * wl.stride_h + self.KH
        self.cols = (self.w1 - 1) * wl.stride_w + self.KW
        self.n_h0, self.n_co0, self.n_w0 = self.OH // self.h1, self.COb // self.co1, self.OW // self.w1
        self.n_koo = self.ci_red // self.ci1
        # TVM pads only when padding[0] != 0 (the template looks at the top pad only).
        self.padded = wl.pad_h != 0
        if wl.pad_h == 0 and wl.pad_w != 0:
            raise UnsupportedError("conv2d with pad_h == 0 and pad_w > 0: the VTA template "
                                   "applies padding only when the row padding is non-zero")
        self.in_ch = self._input_channel_extent()
        self.stages = epilogue_stages(wl.epilogue, wl.requant)
        self.has_bias = wl.has_bias
        self.allocs = [Allocation("inp", "pad_data", self.in_ch * self.rows * self.cols),
                       Allocation("wgt", "kernel", self.co1 * self.ci1 * self.KH * self.KW),
                       Allocation("acc", "res", self.co1 * self.h1 * self.w1)]
        if self.has_bias:
            self.allocs.append(Allocation("acc", "bias", self.co1))
        self.inp_elems, self.wgt_elems, self.acc_elems = (a.elems for a in self.allocs[:3])

    # ------------------------------------------------------------------ geometry
    def _input_channel_extent(self) -> int:
        if not self.grouped:
            return self.ci1
        co1, cpg = self.co1, self.cpg
        if not (cpg % co1 == 0 or co1 % cpg == 0):
            raise UnsupportedError("group_conv2d tiles whose channel blocks straddle groups "
                                   f"unevenly (tile_co {co1}, {cpg} output blocks per group) are not modelled")
        groups_spanned = max(1, co1 // cpg)
        return (groups_spanned - 1) * self.ci_red + self.ci1

    def _in_ch_start(self, co_start: int, k0: int) -> int:
        if not self.grouped:
            return k0
        return (co_start // self.cpg) * self.ci_red + k0

    # ------------------------------------------------------------------ static analysis
    def check_lowering(self, profile: str = DEFAULT_PROFILE) -> None:
        check_lowering_passes(self, profile)

    def ragged(self) -> tuple[bool, bool]:
        """(rows, output channels): a ``cthread`` split that does not divide its tile count."""
        return (self.nt_h > 1 and self.n_h0 % self.nt_h != 0,
                self.nt_oc > 1 and self.n_co0 % self.nt_oc != 0)

    def copy_statements(self):
        """(CopyStmt, 2-D pattern check) of every DMA statement, in program order.  A
        statement is guarded when its region at the ghost tile of a ragged split starts past
        its tensor (TE's bound check on the attached stage); the output stage carries its
        own split's check."""
        wl = self.wl
        rag_h, rag_co = self.ragged()
        rows_ext = wl.height + (2 * wl.pad_h if self.padded else 0)
        inp_moves = ((rag_h and self.n_h0 * self.h1 * wl.stride_h >= rows_ext)
                     or (rag_co and self._in_ch_start(self.n_co0 * self.co1, 0) >= self.CIb))
        co_moves = rag_co and self.n_co0 * self.co1 >= self.COb
        pads = ()
        if self.padded:
            pads = tuple(a for a in (PadAxis("rows", self.rows, self.n_h0 > 1 or self.nt_h > 1)
                                     if wl.pad_h else None,
                                     PadAxis("cols", self.cols, self.n_w0 > 1) if wl.pad_w else None)
                         if a is not None)
        out = [(CopyStmt("pad_data -> local.inp_buffer" if self.padded else "data -> local.inp_buffer",
                         inp_moves, pads), self.inp_pattern),
               (CopyStmt("kernel -> local.wgt_buffer", co_moves), self.wgt_pattern)]
        if self.has_bias:
            out.append((CopyStmt("bias -> local.acc_buffer", co_moves), self.bias_pattern))
        out.append((CopyStmt("res -> output (store)", rag_h or rag_co), self.store_pattern))
        return out

    def check_fields(self) -> None:
        """Every LOAD/STORE field the stream will carry, over all tile positions, against its
        width (the encoder's ``field_overflow``; e.g. a padded tile whose window lies wholly
        in the padding gets a negative ``y_size``), checked in the layout's field order as
        the encoder does."""
        wl = self.wl
        vals: dict[str, list[int]] = {}

        def add(**kv):
            for k, v in kv.items():
                vals.setdefault(k, []).append(v)
        pats = [self.wgt_pattern(), self.store_pattern()] + ([self.bias_pattern()] if self.has_bias else [])
        if not self.padded:
            pats.append(self.inp_pattern())
        for x, y, stride in pats:
            add(x_size=x, y_size=y, x_stride=stride)
        if self.padded:
            H, W = wl.height, wl.width
            add(x_stride=W)
            for i0 in range(self.n_h0):
                r0 = i0 * self.h1 * wl.stride_h - wl.pad_h
                yp0, yp1 = max(0, -r0), max(0, r0 + self.rows - H)
                add(y_pad_0=yp0, y_pad_1=yp1, y_size=self.rows - yp0 - yp1)
            for j0 in range(self.n_w0):
                c0 = j0 * self.w1 * wl.stride_w - wl.pad_w
                xp0, xp1 = max(0, -c0), max(0, c0 + self.cols - W)
                add(x_pad_0=xp0, x_pad_1=xp1, x_size=self.cols - xp0 - xp1)
        from ..hardware import isa
        for f in isa.layouts_for(self.hw).mem.fields:
            if f.name in vals:
                check_mem_fields(self.hw, "MEM", **{f.name: min(vals[f.name])})
                check_mem_fields(self.hw, "MEM", **{f.name: max(vals[f.name])})

    def inp_dims(self):
        wl = self.wl
        H, W, B, BI = wl.height, wl.width, self.B, self.BI
        return [(self.in_ch, H * W * B * BI), (self.rows, W * B * BI), (self.cols, B * BI),
                (B, BI), (BI, 1)]

    def inp_pattern(self):
        shape, strides = drop_unit(self.inp_dims())
        elem = self.B * self.BI
        if not self.padded:
            return get_2d_pattern(shape, strides, elem, "local.inp_buffer", allow_fold=True)
        names = [n for n, (e, _) in zip(("ch", "rows", "cols", "b", "c"), self.inp_dims()) if e != 1]
        # dimensions the pad condition clips (topi.nn.pad only tests padded axes)
        nz = [(n == "rows" and self.wl.pad_h > 0) or (n == "cols" and self.wl.pad_w > 0) for n in names]
        y_dim, x_dim = padded_load_dims(len(shape), nz)
        # the unpadded part of the region has the same strides (its sizes vary per tile)
        return get_2d_pattern(shape, strides, elem, "local.inp_buffer", allow_fold=False), names[y_dim], names[x_dim]

    def wgt_dims(self):
        KH, KW, BO, BI = self.KH, self.KW, self.BO, self.BI
        return [(self.co1, self.ci_red * KH * KW * BO * BI), (self.ci1, KH * KW * BO * BI),
                (KH, KW * BO * BI), (KW, BO * BI), (BO, BI), (BI, 1)]

    def wgt_pattern(self):
        shape, strides = drop_unit(self.wgt_dims())
        return get_2d_pattern(shape, strides, self.BO * self.BI, "local.wgt_buffer", allow_fold=True)

    def bias_pattern(self):
        shape, strides = drop_unit([(self.co1, self.B * self.BO), (self.B, self.BO), (self.BO, 1)])
        return get_2d_pattern(shape, strides, self.B * self.BO, "local.acc_buffer", allow_fold=True)

    def out_dims(self):
        OH, OW, B, BO = self.OH, self.OW, self.B, self.BO
        return [(self.co1, OH * OW * B * BO), (self.h1, OW * B * BO), (self.w1, B * BO), (B, BO), (BO, 1)]

    def store_pattern(self):
        shape, strides = drop_unit(self.out_dims())
        return get_2d_pattern(shape, strides, self.B * self.BO, "local.acc_buffer", allow_fold=True)

    # ------------------------------------------------------------------ micro-op kernels
    def reset_loops(self):
        h1, w1 = self.h1, self.w1
        return [Loop("w", w1, 1, 0, 0), Loop("co", self.co1, h1 * w1, 0, 0), Loop("h", h1, w1, 0, 0)]

    def gemm_loops(self):
        wl, h1, w1, rows, cols = self.wl, self.h1, self.w1, self.rows, self.cols
        kk = self.KH * self.KW
        ci_src = rows * cols
        co_src = (self.ci_red * rows * cols) if (self.grouped and self.co1 >= self.cpg and self.cpg == 1) else 0
        if self.grouped and self.co1 >= self.cpg and self.cpg > 1:
            raise UnsupportedError("group_conv2d with several output blocks per group in one tile is not modelled")
        return [Loop("ci", self.ci1, 0, ci_src, kk),
                Loop("w", w1, 1, wl.stride_w, 0),
                Loop("kw", self.KW, 0, 1, 1),
                Loop("kh", self.KH, 0, cols, self.KW),
                Loop("co", self.co1, h1 * w1, co_src, self.ci1 * kk),
                Loop("h", h1, w1, wl.stride_h * cols, 0)]

    def kernels(self, t: int):
        """(key, recorder) of every micro-op kernel thread ``t`` pushes, in push order."""
        acc0 = t * self.acc_elems
        out = [(("reset", t), gemm_kernel(self.reset_loops(), (acc0, 0, 0), reset=True)),
               (("gemm", t), gemm_kernel(self.gemm_loops(), (acc0, t * self.inp_elems, t * self.wgt_elems),
                                         reset=False))]
        tile = [(self.co1, self.h1 * self.w1, None), (self.h1, self.w1, None), (self.w1, 1, None)]
        for st in self.stages:
            if st.imm is None:  # bias: src = bias[co], broadcast over h, w
                bias0 = self.nthreads * self.acc_elems + t * self.co1
                loops = [(self.co1, self.h1 * self.w1, 1), (self.h1, self.w1, 0), (self.w1, 1, 0)]
                out.append(((st.name, t), alu_kernel(loops, acc0, bias0, st.opcode, None)))
            else:
                loops = [(e, d, d) for e, d, _ in tile]
                out.append(((st.name, t), alu_kernel(loops, acc0, acc0, st.opcode, st.imm)))
        return out

    def check_runtime(self) -> None:
        """The runtime library's checks (category RUNTIME_DEVICE), as the first tile hits them."""
        closure_check(int(self.nt_oc > 1) + int(self.nt_h > 1))
        from .runtime import Runtime
        rt = Runtime(self.hw)
        for t in range(self.nthreads):
            for key, rec in self.kernels(t):
                k = rec()
                if len(k.uops) > self.hw.uop_buff_depth:
                    rt.push_kernel(key, lambda k=k: k)  # raises uop_kernel_too_large

    # ------------------------------------------------------------------ DRAM
    def region_sizes(self) -> dict[str, int]:
        wl = self.wl
        sizes = {"data": wl.batch * wl.in_channels * wl.height * wl.width,
                 "kernel": wl.out_channels * (wl.in_channels // wl.groups) * self.KH * self.KW,
                 "out": wl.batch * wl.out_channels * self.OH * self.OW}
        if self.has_bias:
            sizes["bias"] = wl.batch * wl.out_channels * 4
        return sizes

    def place(self, regions: dict) -> None:
        hw = self.hw
        self.regions = Regions(data=regions["data"][0] // hw.inp_elem_bytes,
                               kernel=regions["kernel"][0] // hw.wgt_elem_bytes,
                               out=regions["out"][0] // hw.out_elem_bytes,
                               bias=regions["bias"][0] // hw.acc_elem_bytes if "bias" in regions else 0)

    def pack_inputs(self, inputs: dict) -> dict:
        out = {"data": packing.pack_data(inputs["data"], self.hw),
               "kernel": packing.pack_kernel(inputs["kernel"], self.hw)}
        if self.has_bias:
            out["bias"] = packing.pack_bias(inputs["bias"], self.hw, self.wl.batch)
        return out

    def unpack_output(self, raw):
        B, BO = self.hw.batch, self.hw.block_out
        return packing.unpack_data(raw.reshape(self.nb, self.COb, self.OH, self.OW, B, BO))

    # ------------------------------------------------------------------ host program
    def build_ir(self):
        wl, R = self.wl, self.regions
        h1, w1, co1 = self.h1, self.w1, self.co1
        rows, cols = self.rows, self.cols
        H, W = wl.height, wl.width
        kernels = {}
        # the DMA patterns are the same for every tile (computed once, not per statement)
        inp_pat, wgt_pat, out_pat = self.inp_pattern(), self.wgt_pattern(), self.store_pattern()
        bias_pat = self.bias_pattern() if self.has_bias else None

        def tile_pos(env):
            t_oc, t_h = env.get("v_oc", 0), env.get("v_h", 0)
            i0 = env.get("h0o", env.get("h0", 0)) * self.nt_h + t_h
            c0 = env.get("co0o", env.get("co0", 0)) * self.nt_oc + t_oc
            return env.get("b", 0), i0, c0, env.get("w0", 0), t_oc * self.nt_h + t_h

        def kernel(name):
            def run(env, rt):
                *_, t = tile_pos(env)
                key = (name, t)
                if key not in kernels:
                    kernels.update({k: r for k, r in self.kernels(t)})
                rt.push_kernel(key, kernels[key])
            return ir.Payload(name, run)

        def load_inp(env, rt):
            b, i0, c0, j0, t = tile_pos(env)
            ch0 = self._in_ch_start(c0 * co1, env.get("koo", 0) * self.ci1)
            r0 = i0 * h1 * wl.stride_h - wl.pad_h
            c0c = j0 * w1 * wl.stride_w - wl.pad_w
            sram = t * self.inp_elems
            if not self.padded:
                x, y, stride = inp_pat
                base = R.data + ((b * self.CIb + ch0) * H + r0) * W + c0c
                rt.load_2d(MemType.INP, base, sram, x, y, stride)
                return
            yp0, yp1 = max(0, -r0), max(0, r0 + rows - H)
            xp0, xp1 = max(0, -c0c), max(0, c0c + cols - W)
            (_, _, stride), ydim, xdim = inp_pat
            base = R.data + ((b * self.CIb + ch0) * H + max(r0, 0)) * W + max(c0c, 0)
            rt.load_2d(MemType.INP, base, sram, cols - xp0 - xp1, rows - yp0 - yp1, W,
                       x_pad_0=xp0, y_pad_0=yp0, x_pad_1=xp1, y_pad_1=yp1)

        def load_wgt(env, rt):
            b, i0, c0, j0, t = tile_pos(env)
            x, y, stride = wgt_pat
            base = R.kernel + ((c0 * co1) * self.ci_red + env.get("koo", 0) * self.ci1) * self.KH * self.KW
            rt.load_2d(MemType.WGT, base, t * self.wgt_elems, x, y, stride)

        def load_bias(env, rt):
            b, i0, c0, j0, t = tile_pos(env)
            x, y, stride = bias_pat
            base = R.bias + b * self.COb + c0 * co1
            rt.load_2d(MemType.ACC, base, self.nthreads * self.acc_elems + t * co1, x, y, stride)

        def store(env, rt):
            b, i0, c0, j0, t = tile_pos(env)
            x, y, stride = out_pat
            base = R.out + ((b * self.COb + c0 * co1) * self.OH + i0 * h1) * self.OW + j0 * w1
            rt.store_2d(t * self.acc_elems, base, x, y, stride)

        tile: list = []
        if self.has_bias:
            tile.append(ir.Scope(ir.COMPUTE_Q, [ir.Payload("load_bias", load_bias)]))
        tile.append(ir.Scope(ir.COMPUTE_Q, [kernel("reset")]))
        tile += ir.loop("koo", self.n_koo, [
            ir.Scope(ir.LOAD_Q, [ir.Payload("load_inp", load_inp), ir.Payload("load_wgt", load_wgt)]),
            ir.Scope(ir.COMPUTE_Q, [kernel("gemm")])])
        for st in self.stages:
            tile.append(ir.Scope(ir.COMPUTE_Q, [kernel(st.name)]))
        tile.append(ir.Scope(ir.STORE_Q, [ir.Payload("store", store)]))

        ragged_h, ragged_co = self.ragged()
        if ragged_h or ragged_co:  # the split's bound check guards the whole tile
            def inside(env):
                _, i0, c0, _, _ = tile_pos(env)
                return i0 < self.n_h0 and c0 < self.n_co0
            tile = [ir.If(inside, ir.Seq(tile))]

        extents = {"b": self.nb, "h0": self.n_h0, "co0": self.n_co0, "w0": self.n_w0,
                   "h0o": math.ceil(self.n_h0 / self.nt_h), "co0o": math.ceil(self.n_co0 / self.nt_oc)}
        body = tile
        for axis in reversed(axis_order(self.nt_oc, self.nt_h)):
            if axis == "v_oc":
                body = [ir.VThread("v_oc", self.nt_oc, ir.Seq(body))]
            elif axis == "v_h":
                body = [ir.VThread("v_h", self.nt_h, ir.Seq(body))]
            else:
                body = ir.loop(axis, extents[axis], body)
        return ir.Seq(body)
