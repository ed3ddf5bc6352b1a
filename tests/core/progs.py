"""Helpers that build small VTA programs for the functional-simulator tests.

Only program *construction* lives here (DRAM buffers, instruction lists), plus the counters
the original TVM simulator reported for the two captured reference programs.  Expected values
are computed by the independent numpy references in ``test_fsim.py``; nothing here looks
at how the simulator works inside.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vtatune.hardware import isa
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import MemType, Opcode

# Counters that TVM's own simulator reported for the captured programs
# (tests/data/reference-programs/README.md).
REFERENCE_COUNTERS = {
    "C10_203": dict(gemm_counter=25088, alu_counter=4704, inp_load_nbytes=86528,
                    wgt_load_nbytes=131072, out_store_nbytes=25088, uop_load_nbytes=136,
                    acc_load_nbytes=0),
    "C2_1584": dict(gemm_counter=451584, alu_counter=37632, inp_load_nbytes=616192,
                    wgt_load_nbytes=4128768, out_store_nbytes=200704, uop_load_nbytes=128,
                    acc_load_nbytes=0),
}
from vtatune.sim.fsim import FunctionalSimulator

UOP_BYTES = 4


class Prog:
    """A simulator, its DRAM buffers and an instruction list under construction."""

    def __init__(self, hw: HwConfig | None = None):
        self.hw = hw or HwConfig.load()
        self.sim = FunctionalSimulator(self.hw)
        self.insns: list = []

    # ------------------------------------------------------------------ element sizes
    def elem_bytes(self, mt: int) -> int:
        hw = self.hw
        return {MemType.INP: hw.batch * hw.block_in,
                MemType.WGT: hw.block_out * hw.block_in,
                MemType.ACC: hw.batch * hw.block_out * 4,
                MemType.OUT: hw.batch * hw.block_out,
                MemType.UOP: UOP_BYTES}[mt]

    # ------------------------------------------------------------------ random data
    def rand_inp(self, rng, n: int, nonzero: bool = False) -> np.ndarray:
        a = rng.integers(-128, 128, size=(n, self.hw.batch, self.hw.block_in), dtype=np.int8)
        return _nonzero(a) if nonzero else a

    def rand_wgt(self, rng, n: int, nonzero: bool = False) -> np.ndarray:
        a = rng.integers(-128, 128, size=(n, self.hw.block_out, self.hw.block_in), dtype=np.int8)
        return _nonzero(a) if nonzero else a

    def rand_acc(self, rng, n: int, lo: int = -(1 << 31), hi: int = 1 << 31) -> np.ndarray:
        return rng.integers(lo, hi, size=(n, self.hw.batch, self.hw.block_out), dtype=np.int64
                            ).astype(np.int32)

    # ------------------------------------------------------------------ DRAM
    def put(self, data: np.ndarray | bytes, mt: int) -> int:
        """Copy ``data`` to a fresh DRAM buffer; return its base in ``mt`` elements."""
        raw = data if isinstance(data, (bytes, bytearray)) else np.ascontiguousarray(data).tobytes()
        addr = self.sim.dram.alloc(max(len(raw), 1))
        if raw:
            self.sim.dram.write(addr, raw)
        e = self.elem_bytes(mt)
        assert addr % e == 0
        return addr // e

    def buffer(self, nbytes: int, mt: int, fill: int = 0) -> int:
        """A DRAM buffer of ``nbytes`` filled with byte ``fill``; base in ``mt`` elements."""
        return self.put(bytes([fill]) * nbytes, mt)

    def read(self, base: int, mt: int, n_elems: int) -> bytes:
        e = self.elem_bytes(mt)
        return self.sim.dram.read(base * e, n_elems * e)

    def read_out(self, base: int, n_elems: int) -> np.ndarray:
        """OUT elements at DRAM element base ``base`` as int8 (n, BATCH, BLOCK_OUT)."""
        raw = self.read(base, MemType.OUT, n_elems)
        return np.frombuffer(raw, dtype=np.int8).reshape(n_elems, self.hw.batch, self.hw.block_out)

    # ------------------------------------------------------------------ instructions
    def add(self, insn) -> int:
        self.insns.append(insn)
        return len(self.insns) - 1

    def load(self, mt: int, sram_base: int, dram_base: int, y_size: int, x_size: int,
             x_stride: int | None = None, y_pad_0: int = 0, y_pad_1: int = 0, x_pad_0: int = 0,
             x_pad_1: int = 0, **deps) -> int:
        return self.add(isa.MemInsn(
            opcode=Opcode.LOAD, memory_type=mt, sram_base=sram_base, dram_base=dram_base,
            y_size=y_size, x_size=x_size, x_stride=x_size if x_stride is None else x_stride,
            y_pad_0=y_pad_0, y_pad_1=y_pad_1, x_pad_0=x_pad_0, x_pad_1=x_pad_1, **deps))

    def store(self, sram_base: int, dram_base: int, y_size: int, x_size: int,
              x_stride: int | None = None, **deps) -> int:
        return self.add(isa.MemInsn(
            opcode=Opcode.STORE, memory_type=MemType.OUT, sram_base=sram_base,
            dram_base=dram_base, y_size=y_size, x_size=x_size,
            x_stride=x_size if x_stride is None else x_stride, **deps))

    def uops(self, uops: Sequence[tuple[int, int, int]], sram_base: int = 0, **deps) -> int:
        """Put the micro-ops (dst, src, wgt) in DRAM and LOAD UOP them at ``sram_base``."""
        blob = isa.encode_uops([isa.Uop(*u) for u in uops], self.hw)
        base = self.put(blob, MemType.UOP)
        return self.load(MemType.UOP, sram_base, base, 1, len(uops), **deps)

    def gemm(self, **kw) -> int:
        return self.add(isa.GemmInsn(**kw))

    def alu(self, **kw) -> int:
        return self.add(isa.AluInsn(**kw))

    def finish(self, **deps) -> int:
        return self.add(isa.FinishInsn(**deps))

    def run(self):
        return self.sim.execute(self.insns)


def _nonzero(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[a == 0] = 1
    return a
