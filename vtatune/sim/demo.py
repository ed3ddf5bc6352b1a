"""The built-in demo program: a small int8 dense layer with VTA's shift/clip epilogue.

``out = int8(clip((x @ w.T) >> 8, 0, 127))`` for x of shape (4*BATCH, 4*BLOCK_IN) and w of
shape (2*BLOCK_OUT, 4*BLOCK_IN), built instruction by instruction with the encoder, run on
fsim and checked against numpy.  It shows the whole path: packed DRAM layouts, micro-op
kernels with both loop levels, dependence tokens, the ALU epilogue and the OUT buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hardware import isa
from ..hardware.config import HwConfig
from ..hardware.isa import AluInsn, AluOp, FinishInsn, GemmInsn, MemInsn, MemType, Opcode, Uop
from .fsim import FunctionalSimulator, RunResult


@dataclass
class DemoOutcome:
    output: np.ndarray
    expected: np.ndarray
    result: RunResult
    program: list

    @property
    def correct(self) -> bool:
        return bool(np.array_equal(self.output, self.expected))


def reference(x: np.ndarray, w: np.ndarray, shift: int = 8) -> np.ndarray:
    acc = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    return np.clip(acc >> shift, 0, 127).astype(np.int8)


def run_demo(hw: HwConfig | None = None, seed: int = 0) -> DemoOutcome:
    hw = hw or HwConfig.load()
    B, BI, BO = hw.batch, hw.block_in, hw.block_out
    nb, ib, ob = 4, 4, 2  # batch blocks, input-channel blocks, output-channel blocks
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(nb * B, ib * BI), dtype=np.int8)
    w = rng.integers(-128, 128, size=(ob * BO, ib * BI), dtype=np.int8)

    sim = FunctionalSimulator(hw)
    # Packed layouts: data (nb, ib, B, BI), weight (ob, ib, BO, BI), output (nb, ob, B, BO).
    x_p = x.reshape(nb, B, ib, BI).transpose(0, 2, 1, 3).copy()
    w_p = w.reshape(ob, BO, ib, BI).transpose(0, 2, 1, 3).copy()
    a_x, a_w = sim.dram.alloc(x_p.nbytes), sim.dram.alloc(w_p.nbytes)
    a_out = sim.dram.alloc(nb * ob * hw.out_elem_bytes)
    sim.dram.write(a_x, x_p)
    sim.dram.write(a_w, w_p)
    # Micro-op kernels: reset (1 uop), GEMM over ib input blocks (ib uops), ALU (1 uop).
    uops = [Uop(0, 0, 0)] + [Uop(0, k, k) for k in range(ib)] + [Uop(0, 0, 0)]
    blob = isa.encode_uops(uops, hw)
    a_uop = sim.dram.alloc(len(blob))
    sim.dram.write(a_uop, blob)
    r_gemm, r_alu = (1, 1 + ib), (1 + ib, 2 + ib)

    def alu(op, imm, **deps):
        return AluInsn(uop_bgn=r_alu[0], uop_end=r_alu[1], iter_out=nb * ob, iter_in=1,
                       dst_factor_out=1, src_factor_out=1, alu_opcode=op, use_imm=1, imm=imm, **deps)

    program = [
        MemInsn(opcode=Opcode.LOAD, memory_type=MemType.UOP, sram_base=0, dram_base=a_uop // 4,
                y_size=1, x_size=len(uops), x_stride=len(uops)),
        MemInsn(opcode=Opcode.LOAD, memory_type=MemType.INP, sram_base=0,
                dram_base=a_x // hw.inp_elem_bytes, y_size=1, x_size=nb * ib, x_stride=nb * ib),
        MemInsn(opcode=Opcode.LOAD, memory_type=MemType.WGT, sram_base=0,
                dram_base=a_w // hw.wgt_elem_bytes, y_size=1, x_size=ob * ib, x_stride=ob * ib,
                push_next=1),
        # acc[n*ob + o] := 0
        GemmInsn(reset_reg=1, uop_bgn=0, uop_end=1, iter_out=nb, iter_in=ob,
                 dst_factor_out=ob, dst_factor_in=1),
        # acc[n*ob + o] += inp[n*ib + k] . wgt[o*ib + k]   (outer loop n, inner loop o)
        GemmInsn(uop_bgn=r_gemm[0], uop_end=r_gemm[1], iter_out=nb, iter_in=ob,
                 dst_factor_out=ob, dst_factor_in=1, src_factor_out=ib, src_factor_in=0,
                 wgt_factor_out=0, wgt_factor_in=ib, pop_prev=1),
        alu(AluOp.SHR, 8),
        alu(AluOp.MIN, 127),
        alu(AluOp.MAX, 0, push_next=1),
        MemInsn(opcode=Opcode.STORE, memory_type=MemType.OUT, sram_base=0,
                dram_base=a_out // hw.out_elem_bytes, y_size=1, x_size=nb * ob, x_stride=nb * ob,
                pop_prev=1, push_prev=1),
        FinishInsn(pop_next=1),
    ]
    result = sim.execute(program)
    out_p = np.frombuffer(sim.dram.read(a_out, nb * ob * hw.out_elem_bytes), dtype=np.int8)
    out = out_p.reshape(nb, ob, B, BO).transpose(0, 2, 1, 3).reshape(nb * B, ob * BO)
    return DemoOutcome(out, reference(x, w), result, program)
