"""Bit layouts of the HW_VER 0.0.2 instructions and micro-ops, and the fixed ISA widths.

The lowest module of the hardware package: it needs only the four log2 SRAM depths, so
``config`` (which checks that a configuration's layouts fit 128 bits) and ``isa`` (which
encodes and decodes with them) both build on it without importing each other.

Fields are packed LSB-first in declaration order exactly like GCC packs ``uint64_t``
bit-fields: a field never straddles bit 64 (it moves to bit 64 and leaves the rest of the
low word zero).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from ..errors import ConfigurationError

# Fixed ISA widths of hw_spec_const.h (configuration independent).
INS_WIDTH = 128
UOP_WIDTH = 32
OPCODE_BIT_WIDTH = 3
MEMOP_ID_BIT_WIDTH = 3
MEMOP_SRAM_ADDR_BIT_WIDTH = 16
MEMOP_DRAM_ADDR_BIT_WIDTH = 32
MEMOP_SIZE_BIT_WIDTH = 16
MEMOP_STRIDE_BIT_WIDTH = 16
MEMOP_PAD_BIT_WIDTH = 4
LOOP_ITER_WIDTH = 14
ALU_OPCODE_BIT_WIDTH = 3
ALUOP_IMM_BIT_WIDTH = 16


@dataclass(frozen=True)
class BitField:
    name: str
    lo: int
    width: int
    signed: bool = False

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass(frozen=True)
class Layout:
    kind: str
    fields: tuple[BitField, ...]

    def field(self, name: str) -> BitField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def pack_fields(kind: str, spec: Sequence[tuple[str, int] | tuple[str, int, bool]],
                total: int = INS_WIDTH) -> Layout:
    """Place fields LSB-first; a field that would straddle bit 64 starts at bit 64."""
    pos = 0
    out = []
    for item in spec:
        name, width = item[0], item[1]
        signed = bool(item[2]) if len(item) > 2 else False
        if total > 64 and pos < 64 < pos + width:
            pos = 64
        if pos + width > total:
            raise ConfigurationError(
                f"{kind}.{name}",
                f"the {kind} instruction needs {pos + width} bits under the no-straddle "
                f"packing rule, more than {total}")
        out.append(BitField(name, pos, width, signed))
        pos += width
    return Layout(kind, tuple(out))


DEP_FIELDS = [("opcode", OPCODE_BIT_WIDTH), ("pop_prev", 1), ("pop_next", 1),
              ("push_prev", 1), ("push_next", 1)]


@dataclass(frozen=True)
class Layouts:
    mem: Layout
    gemm: Layout
    alu: Layout
    uop: Layout


@lru_cache(maxsize=None)
def layouts(lu: int, la: int, li: int, lw: int) -> Layouts:
    """Layouts for log2 depths of the micro-op (``lu``), ACC, INP and WGT buffers; raises
    ConfigurationError naming the first field that does not fit."""
    s = max(la, li)
    mem = pack_fields("MEM", DEP_FIELDS + [
        ("memory_type", MEMOP_ID_BIT_WIDTH), ("sram_base", MEMOP_SRAM_ADDR_BIT_WIDTH),
        ("dram_base", MEMOP_DRAM_ADDR_BIT_WIDTH), ("y_size", MEMOP_SIZE_BIT_WIDTH),
        ("x_size", MEMOP_SIZE_BIT_WIDTH), ("x_stride", MEMOP_STRIDE_BIT_WIDTH),
        ("y_pad_0", MEMOP_PAD_BIT_WIDTH), ("y_pad_1", MEMOP_PAD_BIT_WIDTH),
        ("x_pad_0", MEMOP_PAD_BIT_WIDTH), ("x_pad_1", MEMOP_PAD_BIT_WIDTH)])
    head = DEP_FIELDS + [("reset_reg", 1), ("uop_bgn", lu), ("uop_end", lu + 1),
                         ("iter_out", LOOP_ITER_WIDTH), ("iter_in", LOOP_ITER_WIDTH)]
    gemm = pack_fields("GEMM", head + [
        ("dst_factor_out", la), ("dst_factor_in", la), ("src_factor_out", li),
        ("src_factor_in", li), ("wgt_factor_out", lw), ("wgt_factor_in", lw)])
    alu = pack_fields("ALU", head + [
        ("dst_factor_out", la), ("dst_factor_in", la), ("src_factor_out", la),
        ("src_factor_in", la), ("alu_opcode", ALU_OPCODE_BIT_WIDTH), ("use_imm", 1),
        ("imm", ALUOP_IMM_BIT_WIDTH, True)])
    uop = pack_fields("UOP", [("dst_idx", la), ("src_idx", s), ("wgt_idx", lw)], total=UOP_WIDTH)
    return Layouts(mem, gemm, alu, uop)
