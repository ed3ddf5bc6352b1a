"""VTA instruction set: bit-exact encoder/decoder for the HW_VER 0.0.2 layout.

An instruction is 128 bits stored as 16 little-endian bytes.  Fields are packed LSB-first
in declaration order exactly like GCC packs ``uint64_t`` bit-fields: a field never
straddles bit 64 (it moves to bit 64 and leaves the rest of the low word zero).  A micro-op
is one 32-bit little-endian word.  Widths that depend on the configuration (uop and SRAM
index fields) come from :class:`~vtatune.hardware.config.HwConfig`; the layouts themselves
from :mod:`vtatune.hardware.layout`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields as dc_fields
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar, Sequence, Union

import numpy as np

from ..errors import DecodeError, FieldOverflowError
from . import layout as L
# Re-exported: the layouts are part of the instruction set's public surface.
from .layout import BitField, Layout, Layouts, pack_fields

if TYPE_CHECKING:
    from .config import HwConfig

INSN_BYTES = L.INS_WIDTH // 8
UOP_BYTES = L.UOP_WIDTH // 8


class Opcode(IntEnum):
    LOAD = 0
    STORE = 1
    GEMM = 2
    FINISH = 3
    ALU = 4


class MemType(IntEnum):
    UOP = 0
    WGT = 1
    INP = 2
    ACC = 3
    OUT = 4
    ACC_8BIT = 5


class AluOp(IntEnum):
    MIN = 0
    MAX = 1
    ADD = 2
    SHR = 3
    MUL = 4


# ----------------------------------------------------------------------------- layouts
def layouts_for(hw: "HwConfig") -> Layouts:
    """Bit layouts of every instruction kind for ``hw`` (raises if they cannot fit)."""
    return L.layouts(hw.log_uop_buff_depth, hw.log_acc_buff_depth, hw.log_inp_buff_depth,
                     hw.log_wgt_buff_depth)


# ----------------------------------------------------------------------------- instructions
# slots: a program can have millions of instructions, each an object while it runs.
@dataclass(frozen=True, slots=True)
class _Insn:
    pop_prev: int = 0
    pop_next: int = 0
    push_prev: int = 0
    push_next: int = 0

    LAYOUT: ClassVar[str] = ""

    @property
    def field_values(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dc_fields(self)}


@dataclass(frozen=True, slots=True)
class MemInsn(_Insn):
    """LOAD (opcode 0) or STORE (opcode 1)."""

    opcode: int = Opcode.LOAD
    memory_type: int = MemType.INP
    sram_base: int = 0
    dram_base: int = 0
    y_size: int = 0
    x_size: int = 0
    x_stride: int = 0
    y_pad_0: int = 0
    y_pad_1: int = 0
    x_pad_0: int = 0
    x_pad_1: int = 0
    LAYOUT: ClassVar[str] = "mem"


@dataclass(frozen=True, slots=True)
class _LoopInsn(_Insn):
    """Fields shared by GEMM and ALU: the micro-op range and the two-level loop."""

    reset_reg: int = 0
    uop_bgn: int = 0
    uop_end: int = 0
    iter_out: int = 0
    iter_in: int = 0
    dst_factor_out: int = 0
    dst_factor_in: int = 0
    src_factor_out: int = 0
    src_factor_in: int = 0


@dataclass(frozen=True, slots=True)
class GemmInsn(_LoopInsn):
    wgt_factor_out: int = 0
    wgt_factor_in: int = 0
    opcode: ClassVar[int] = Opcode.GEMM
    LAYOUT: ClassVar[str] = "gemm"


@dataclass(frozen=True, slots=True)
class AluInsn(_LoopInsn):
    alu_opcode: int = AluOp.MIN
    use_imm: int = 0
    imm: int = 0
    opcode: ClassVar[int] = Opcode.ALU
    LAYOUT: ClassVar[str] = "alu"


@dataclass(frozen=True, slots=True)
class FinishInsn(_Insn):
    """FINISH uses the GEMM layout with every other field zero."""

    opcode: ClassVar[int] = Opcode.FINISH
    LAYOUT: ClassVar[str] = "gemm"


@dataclass(frozen=True, slots=True)
class UnknownInsn(_Insn):
    """Opcodes 5..7: routed to the compute module, which only honours the token flags."""

    opcode: int = 5
    LAYOUT: ClassVar[str] = "generic"


Instruction = Union[MemInsn, GemmInsn, AluInsn, FinishInsn, UnknownInsn]


@dataclass(frozen=True)
class Uop:
    """Micro-op: ACC destination index, source index (INP for GEMM, ACC for ALU), WGT index."""

    dst_idx: int = 0
    src_idx: int = 0
    wgt_idx: int = 0


def _layout_of(insn: Instruction, lay: Layouts) -> Layout | None:
    return None if insn.LAYOUT == "generic" else getattr(lay, insn.LAYOUT)


def _check(field: BitField, value: int, where: str) -> int:
    value = int(value)
    if field.signed:
        lo, hi = -(1 << (field.width - 1)), (1 << (field.width - 1)) - 1
        if not lo <= value <= hi:
            raise FieldOverflowError(f"{where}.{field.name}", value, field.width, signed=True)
        return value & field.mask
    if not 0 <= value <= field.mask:
        raise FieldOverflowError(f"{where}.{field.name}", value, field.width)
    return value


def encode_int(insn: Instruction, hw: "HwConfig") -> int:
    """Encode one instruction to its 128-bit integer value (bit i = bit i of the word)."""
    lay = layouts_for(hw)
    layout = _layout_of(insn, lay)
    kind = type(insn).__name__
    if isinstance(insn, MemInsn) and insn.opcode not in (Opcode.LOAD, Opcode.STORE):
        raise FieldOverflowError(f"{kind}.opcode", insn.opcode, 1)
    values = {"opcode": insn.opcode, **insn.field_values}
    if layout is None:  # unknown opcode: only opcode and dependence flags
        layout = Layout("generic", tuple(pack_fields("generic", L.DEP_FIELDS).fields))
    word = 0
    for f in layout.fields:
        word |= _check(f, values.get(f.name, 0), kind) << f.lo
    return word


def encode(insn: Instruction, hw: "HwConfig") -> bytes:
    """Encode one instruction to 16 little-endian bytes."""
    return encode_int(insn, hw).to_bytes(INSN_BYTES, "little")


def encode_columns(layout: Layout, columns: dict[str, np.ndarray], kind: str,
                   rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised encoder: every field of many instructions of one layout at once.
    ``columns`` maps field name -> int64 array (missing fields are 0).  Returns the low and
    high 64-bit words.  A value that does not fit raises FieldOverflowError naming the
    field (and, through ``rows``, the instruction's position)."""
    n = len(next(iter(columns.values()))) if columns else 0
    lo = np.zeros(n, dtype=np.uint64)
    hi = np.zeros(n, dtype=np.uint64)
    for f in layout.fields:
        v = columns.get(f.name)
        if v is None:
            continue
        v = np.asarray(v, dtype=np.int64)
        lo_b, hi_b = ((-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else (0, f.mask))
        bad = (v < lo_b) | (v > hi_b)
        if bad.any():
            k = int(np.argmax(bad))
            raise FieldOverflowError(f"{kind}.{f.name}", int(v[k]), f.width, signed=f.signed,
                                     insn_index=None if rows is None else int(rows[k]))
        word = (v & f.mask).astype(np.uint64)
        if f.lo >= 64:
            hi |= word << np.uint64(f.lo - 64)
        else:
            lo |= word << np.uint64(f.lo)
    return lo, hi


def encode_program(insns: Sequence[Instruction], hw: "HwConfig") -> bytes:
    """Encode a whole stream (vectorised per instruction kind)."""
    lay = layouts_for(hw)
    n = len(insns)
    lo = np.zeros(n, dtype=np.uint64)
    hi = np.zeros(n, dtype=np.uint64)
    groups: dict[type, list[int]] = {}
    for i, insn in enumerate(insns):
        groups.setdefault(type(insn), []).append(i)
    for cls, idx in groups.items():
        if cls is UnknownInsn:
            for i in idx:
                w = encode_int(insns[i], hw)
                lo[i], hi[i] = w & ((1 << 64) - 1), w >> 64
            continue
        names = [f.name for f in dc_fields(cls)]
        table = np.array([[getattr(insns[i], a) for a in names] for i in idx], dtype=np.int64).reshape(len(idx), len(names))
        cols = {a: table[:, j] for j, a in enumerate(names)}
        if cls is MemInsn:
            bad = (cols["opcode"] != Opcode.LOAD) & (cols["opcode"] != Opcode.STORE)
            if bad.any():
                k = int(np.argmax(bad))
                raise FieldOverflowError("MemInsn.opcode", int(cols["opcode"][k]), 1)
        else:
            cols["opcode"] = np.full(len(idx), int(cls.opcode), dtype=np.int64)
        layout = getattr(lay, "gemm" if cls is FinishInsn else cls.LAYOUT)
        rows = np.asarray(idx)
        lo[rows], hi[rows] = encode_columns(layout, cols, cls.__name__, rows)
    return np.stack([lo, hi], axis=1).astype("<u8").tobytes()


def encode_uop(uop: Uop, hw: "HwConfig") -> int:
    lay = layouts_for(hw).uop
    word = 0
    for f in lay.fields:
        word |= _check(f, getattr(uop, f.name), "Uop") << f.lo
    return word


def encode_uops(uops: Sequence[Uop], hw: "HwConfig") -> bytes:
    return np.array([encode_uop(u, hw) for u in uops], dtype="<u4").tobytes()


# ----------------------------------------------------------------------------- decoding
def _words(data: bytes | np.ndarray) -> np.ndarray:
    buf = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(),
                        dtype=np.uint8)
    if buf.size % INSN_BYTES:
        raise DecodeError(f"instruction stream of {buf.size} bytes is not a multiple of {INSN_BYTES}")
    return buf.view("<u8").reshape(-1, 2)


def _extract(words: np.ndarray, f: BitField) -> np.ndarray:
    w = words[:, 1] if f.lo >= 64 else words[:, 0]
    shift = np.uint64(f.lo - 64 if f.lo >= 64 else f.lo)
    vals = ((w >> shift) & np.uint64(f.mask)).astype(np.int64)
    if f.signed:
        vals = np.where(vals >> (f.width - 1) & 1, vals - (1 << f.width), vals)
    return vals


def decode_fields(data: bytes | np.ndarray, hw: "HwConfig",
                  kinds: Sequence[str] = ("mem", "gemm", "alu")) -> dict[str, dict[str, np.ndarray]]:
    """Vectorised decode: for each layout of ``kinds``, every field of every instruction as
    int64 arrays."""
    words = _words(data)
    lay = layouts_for(hw)
    return {name: {f.name: _extract(words, f) for f in getattr(lay, name).fields}
            for name in kinds}


def decode_program(data: bytes | np.ndarray, hw: "HwConfig") -> list[Instruction]:
    """Decode a byte stream of 16-byte instructions into instruction objects."""
    cols = decode_fields(data, hw)
    opcodes = cols["mem"]["opcode"]
    out: list = [None] * opcodes.size

    def build(cls, mask: np.ndarray, layout: str, names, **fixed) -> None:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        columns = [cols[layout][n][rows].tolist() for n in names]
        for r, vals in zip(rows.tolist(), zip(*columns)):
            out[r] = cls(*vals, **fixed)

    deps = ["pop_prev", "pop_next", "push_prev", "push_next"]
    build(MemInsn, (opcodes == Opcode.LOAD) | (opcodes == Opcode.STORE), "mem",
          [f.name for f in dc_fields(MemInsn)])
    build(GemmInsn, opcodes == Opcode.GEMM, "gemm", [f.name for f in dc_fields(GemmInsn)])
    build(AluInsn, opcodes == Opcode.ALU, "alu", [f.name for f in dc_fields(AluInsn)])
    build(FinishInsn, opcodes == Opcode.FINISH, "gemm", deps)
    for op in (5, 6, 7):
        build(UnknownInsn, opcodes == op, "gemm", deps, opcode=op)
    return out


def decode(data: bytes, hw: "HwConfig") -> Instruction:
    if len(data) != INSN_BYTES:
        raise DecodeError(f"an instruction is {INSN_BYTES} bytes, got {len(data)}")
    return decode_program(data, hw)[0]


def decode_uop_fields(data: bytes | np.ndarray, hw: "HwConfig") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised micro-op decode: (dst_idx, src_idx, wgt_idx) arrays."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) % UOP_BYTES:
            raise DecodeError(f"micro-op stream of {len(data)} bytes is not a multiple of {UOP_BYTES}")
        data = np.frombuffer(data, dtype="<u4")
    words = np.asarray(data, dtype=np.uint32).astype(np.int64)
    lay = layouts_for(hw).uop
    return tuple((words >> f.lo) & f.mask for f in lay.fields)  # type: ignore[return-value]


def decode_uops(data: bytes, hw: "HwConfig") -> list[Uop]:
    d, s, w = decode_uop_fields(data, hw)
    return [Uop(a, b, c) for a, b, c in zip(d.tolist(), s.tolist(), w.tolist())]
