"""Lowering of ``dense_packed.vta`` (TVM v0.14 schedule).

Output loops ``b0, co0`` (tile_b x tile_co blocks; a ``cthread`` split of co0 moves
outward).  Inside a tile, for every batch block of the tile: micro-op reset, then per block
of ``tile_ci`` input channels the loads and the GEMM over (ci, co); then the ALU epilogue,
and one STORE per batch block.  The batch-block variable is free in the micro-op kernels,
so it becomes part of their closure (one kernel per value).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..hardware.config import HwConfig
from ..hardware.isa import MemType
from ..workloads.workload import Workload
from . import ir, packing
from .common import (Allocation, Loop, alu_kernel, check_lowering_passes, closure_check,
                     epilogue_stages, gemm_kernel)
from .copy_pattern import CopyStmt
from .dma import drop_unit, get_2d_pattern
from .profiles import DEFAULT_PROFILE
from .runtime import Runtime, runtime_error


@dataclass
class DenseLowering:
    wl: Workload
    knobs: dict
    hw: HwConfig
    bases: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        wl, hw, k = self.wl, self.hw, self.knobs
        self.B, self.BI, self.BO = hw.batch, hw.block_in, hw.block_out
        self.nb = wl.batch // hw.batch
        self.CIb, self.COb = wl.in_channels // self.BI, wl.out_channels // self.BO
        self.b1, self.ci1, self.co1 = k["tile_b"], k["tile_ci"], k["tile_co"]
        self.nt_oc = k["oc_nthread"]
        self.nthreads = self.nt_oc
        self.n_b0, self.n_co0, self.n_koo = self.nb // self.b1, self.COb // self.co1, self.CIb // self.ci1
        self.stages = epilogue_stages(wl.epilogue, wl.requant)
        self.has_bias = wl.has_bias
        self.allocs = [Allocation("inp", "data", self.ci1),
                       Allocation("wgt", "weight", self.co1 * self.ci1),
                       Allocation("acc", "res", self.b1 * self.co1)]
        if self.has_bias:
            self.allocs.append(Allocation("acc", "bias", self.b1 * self.co1))
        self.inp_elems, self.wgt_elems, self.acc_elems = (a.elems for a in self.allocs[:3])

    # ------------------------------------------------------------------ checks
    def inp_pattern(self):
        B, BI = self.B, self.BI
        return get_2d_pattern(*drop_unit([(self.ci1, B * BI), (B, BI), (BI, 1)]), B * BI,
                              "local.inp_buffer", allow_fold=True)

    def wgt_pattern(self):
        BO, BI = self.BO, self.BI
        dims = [(self.co1, self.CIb * BO * BI), (self.ci1, BO * BI), (BO, BI), (BI, 1)]
        return get_2d_pattern(*drop_unit(dims), BO * BI, "local.wgt_buffer", allow_fold=True)

    def store_pattern(self):
        B, BO = self.B, self.BO
        return get_2d_pattern(*drop_unit([(self.co1, B * BO), (B, BO), (BO, 1)]), B * BO,
                              "local.acc_buffer", allow_fold=True)

    def bias_pattern(self):
        B, BO = self.B, self.BO
        dims = [(self.b1, self.COb * B * BO), (self.co1, B * BO), (B, BO), (BO, 1)]
        return get_2d_pattern(*drop_unit(dims), B * BO, "local.acc_buffer", allow_fold=True)

    def patterns(self):
        return (self.inp_pattern(), self.wgt_pattern(), self.store_pattern(),
                self.bias_pattern() if self.has_bias else None)

    def copy_statements(self):
        """(CopyStmt, 2-D pattern check) of every DMA statement, in program order: a ragged
        ``cthread`` split of the output-channel tiles guards the weight, bias and output
        copies (``conv2d.Conv2DLowering.copy_statements`` explains the rule)."""
        rag = self.nt_oc > 1 and self.n_co0 % self.nt_oc != 0
        out = [(CopyStmt("data -> local.inp_buffer", False), self.inp_pattern),
               (CopyStmt("weight -> local.wgt_buffer", rag), self.wgt_pattern)]
        if self.has_bias:
            out.append((CopyStmt("bias -> local.acc_buffer", rag), self.bias_pattern))
        out.append((CopyStmt("res -> output (store)", rag), self.store_pattern))
        return out

    def check_lowering(self, profile: str = DEFAULT_PROFILE) -> None:
        check_lowering_passes(self, profile)

    def kernels(self, t: int, bb: int):
        acc0 = t * self.acc_elems + bb * self.co1
        out = [(("reset", t, bb), gemm_kernel([Loop("co", self.co1, 1, 0, 0)], (acc0, 0, 0), reset=True)),
               (("gemm", t, bb), gemm_kernel([Loop("ci", self.ci1, 0, 1, 1), Loop("co", self.co1, 1, 0, self.ci1)],
                                             (acc0, t * self.inp_elems, t * self.wgt_elems), reset=False))]
        return out

    def alu_kernels(self, t: int):
        acc0 = t * self.acc_elems
        out = []
        for st in self.stages:
            if st.imm is None:
                bias0 = self.nthreads * self.acc_elems + t * self.acc_elems
                loops = [(self.b1, self.co1, self.co1), (self.co1, 1, 1)]
                out.append(((st.name, t), alu_kernel(loops, acc0, bias0, st.opcode, None)))
            else:
                loops = [(self.b1, self.co1, self.co1), (self.co1, 1, 1)]
                out.append(((st.name, t), alu_kernel(loops, acc0, acc0, st.opcode, st.imm)))
        return out

    def check_runtime(self) -> None:
        # The batch-block variable of the tile (when b1 > 1) and the virtual thread are
        # both free in the micro-op kernels.
        closure_check(int(self.nt_oc > 1) + int(self.b1 > 1))
        if self.b1 >= 100:  # signature value b1 - 1; the runtime needs value + 1 < 100
            raise runtime_error("closure_too_large", f"micro-op kernel signature {self.b1 - 1}: "
                                                     "value + 1 must be < 100")
        rt = Runtime(self.hw)
        for t in range(self.nthreads):
            for key, rec in self.kernels(t, 0) + self.alu_kernels(t):
                k = rec()
                if len(k.uops) > self.hw.uop_buff_depth:
                    rt.push_kernel(key, lambda k=k: k)

    # ------------------------------------------------------------------ DRAM
    def region_sizes(self) -> dict[str, int]:
        wl = self.wl
        sizes = {"data": wl.batch * wl.in_channels, "kernel": wl.out_channels * wl.in_channels,
                 "out": wl.batch * wl.out_channels}
        if self.has_bias:
            sizes["bias"] = wl.batch * wl.out_channels * 4
        return sizes

    def place(self, regions: dict) -> None:
        hw = self.hw
        self.bases = {"data": regions["data"][0] // hw.inp_elem_bytes,
                      "kernel": regions["kernel"][0] // hw.wgt_elem_bytes,
                      "out": regions["out"][0] // hw.out_elem_bytes,
                      "bias": regions["bias"][0] // hw.acc_elem_bytes if "bias" in regions else 0}

    def pack_inputs(self, inputs: dict) -> dict:
        out = {"data": packing.pack_dense_data(inputs["data"], self.hw),
               "kernel": packing.pack_dense_weight(inputs["kernel"], self.hw)}
        if self.has_bias:
            out["bias"] = packing.pack_bias(inputs["bias"], self.hw, self.wl.batch)
        return out

    def unpack_output(self, raw):
        return packing.unpack_dense(raw.reshape(self.nb, self.COb, self.B, self.BO))

    # ------------------------------------------------------------------ host program
    def build_ir(self):
        Rb = self.bases
        inp_pat, wgt_pat, out_pat, bias_pat = self.patterns()
        recorders = {}

        def pos(env):
            t = env.get("v_oc", 0)
            c0 = env.get("co0o", env.get("co0", 0)) * self.nt_oc + t
            return env.get("b0", 0), c0, t

        def kernel(name):
            def run(env, rt):
                b0, c0, t = pos(env)
                bb = env.get("bb", 0)
                key = (name, t, bb) if name in ("reset", "gemm") else (name, t)
                if key not in recorders:
                    recorders.update(dict(self.kernels(t, bb)))
                    recorders.update(dict(self.alu_kernels(t)))
                rt.push_kernel(key, recorders[key])
            return ir.Payload(name, run)

        def load_inp(env, rt):
            b0, c0, t = pos(env)
            b = b0 * self.b1 + env.get("bb", 0)
            x, y, stride = inp_pat
            rt.load_2d(MemType.INP, Rb["data"] + b * self.CIb + env.get("koo", 0) * self.ci1,
                       t * self.inp_elems, x, y, stride)

        def load_wgt(env, rt):
            b0, c0, t = pos(env)
            x, y, stride = wgt_pat
            rt.load_2d(MemType.WGT, Rb["kernel"] + c0 * self.co1 * self.CIb + env.get("koo", 0) * self.ci1,
                       t * self.wgt_elems, x, y, stride)

        def load_bias(env, rt):
            b0, c0, t = pos(env)
            x, y, stride = bias_pat
            rt.load_2d(MemType.ACC, Rb["bias"] + b0 * self.b1 * self.COb + c0 * self.co1,
                       self.nthreads * self.acc_elems + t * self.acc_elems, x, y, stride)

        def store(env, rt):
            b0, c0, t = pos(env)
            bi = env.get("bi", 0)
            x, y, stride = out_pat
            rt.store_2d(t * self.acc_elems + bi * self.co1,
                        Rb["out"] + (b0 * self.b1 + bi) * self.COb + c0 * self.co1, x, y, stride)

        per_b = [ir.Scope(ir.COMPUTE_Q, [kernel("reset")])]
        per_b += ir.loop("koo", self.n_koo, [
            ir.Scope(ir.LOAD_Q, [ir.Payload("load_inp", load_inp), ir.Payload("load_wgt", load_wgt)]),
            ir.Scope(ir.COMPUTE_Q, [kernel("gemm")])])
        tile = []
        if self.has_bias:
            tile.append(ir.Scope(ir.COMPUTE_Q, [ir.Payload("load_bias", load_bias)]))
        tile += ir.loop("bb", self.b1, per_b)
        for st in self.stages:
            tile.append(ir.Scope(ir.COMPUTE_Q, [kernel(st.name)]))
        tile += ir.loop("bi", self.b1, [ir.Scope(ir.STORE_Q, [ir.Payload("store", store)])])
        if self.nt_oc > 1 and self.n_co0 % self.nt_oc:
            tile = [ir.If(lambda env: pos(env)[1] < self.n_co0, ir.Seq(tile))]
        if self.nt_oc > 1:
            # order [v_oc, co0o, b0] after split + reorder(v_t, x_bo)
            body = ir.loop("co0o", math.ceil(self.n_co0 / self.nt_oc), ir.loop("b0", self.n_b0, tile))
            return ir.Seq([ir.VThread("v_oc", self.nt_oc, ir.Seq(body))])
        return ir.Seq(ir.loop("b0", self.n_b0, ir.loop("co0", self.n_co0, tile)))
