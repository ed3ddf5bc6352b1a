"""Human-readable listing of VTA instructions and micro-ops."""
from __future__ import annotations

from typing import Iterable, Sequence

from .isa import (AluInsn, AluOp, FinishInsn, GemmInsn, Instruction, MemInsn, MemType, Opcode,
                  Uop)

_QUEUE_OF_FLAGS = {
    # module -> (pop_prev, pop_next, push_prev, push_next) token queue names
    "load": (None, "g2l", None, "l2g"),
    "compute": ("l2g", "s2g", "g2l", "g2s"),
    "store": ("g2s", None, "s2g", None),
}


def module_of(insn: Instruction) -> str:
    """Which module executes the instruction (the fetch routing of the hardware)."""
    if isinstance(insn, MemInsn):
        if insn.opcode == Opcode.STORE:
            return "store"
        if insn.memory_type in (MemType.INP, MemType.WGT):
            return "load"
    return "compute"


def _deps(insn: Instruction) -> str:
    names = _QUEUE_OF_FLAGS[module_of(insn)]
    parts = []
    for flag, queue, verb in zip(("pop_prev", "pop_next", "push_prev", "push_next"), names,
                                 ("pop", "pop", "push", "push")):
        if getattr(insn, flag):
            parts.append(f"{verb} {queue or '?' + flag}")
    return f"  [{', '.join(parts)}]" if parts else ""


def _mem_type_name(v: int) -> str:
    try:
        return MemType(v).name
    except ValueError:
        return f"MEM{v}"


def format_insn(insn: Instruction) -> str:
    if isinstance(insn, MemInsn):
        op = "LOAD" if insn.opcode == Opcode.LOAD else "STORE"
        if insn.x_size == 0:
            return f"NOP-{module_of(insn).upper()} ({op} {_mem_type_name(insn.memory_type)} x_size=0){_deps(insn)}"
        pads = (insn.y_pad_0, insn.y_pad_1, insn.x_pad_0, insn.x_pad_1)
        pad = f" pad(y0,y1,x0,x1)={pads}" if any(pads) else ""
        return (f"{op} {_mem_type_name(insn.memory_type):4s} sram={insn.sram_base} dram={insn.dram_base} "
                f"y={insn.y_size} x={insn.x_size} stride={insn.x_stride}{pad}{_deps(insn)}")
    if isinstance(insn, (GemmInsn, AluInsn)):
        loops = (f"uop[{insn.uop_bgn}:{insn.uop_end}] iter=({insn.iter_out},{insn.iter_in}) "
                 f"dst=({insn.dst_factor_out},{insn.dst_factor_in}) "
                 f"src=({insn.src_factor_out},{insn.src_factor_in})")
        if isinstance(insn, GemmInsn):
            name = "GEMM-RESET" if insn.reset_reg else "GEMM"
            return f"{name} {loops} wgt=({insn.wgt_factor_out},{insn.wgt_factor_in}){_deps(insn)}"
        try:
            opname = AluOp(insn.alu_opcode).name
        except ValueError:
            opname = f"OP{insn.alu_opcode}"
        operand = f" imm={insn.imm}" if insn.use_imm else " tensor"
        return f"ALU-{opname}{operand} {loops}{_deps(insn)}"
    if isinstance(insn, FinishInsn):
        return f"FINISH{_deps(insn)}"
    return f"UNKNOWN opcode={insn.opcode}{_deps(insn)}"


def listing(insns: Sequence[Instruction], start: int = 0, width: int | None = None) -> Iterable[str]:
    """Numbered lines from index ``start``; ``width`` digits for the index (by default those
    of the last one; pass the stream's when listing it piece by piece)."""
    if width is None:
        width = len(str(start + max(len(insns) - 1, 0)))
    for i, insn in enumerate(insns):
        yield f"{start + i:>{width}}: {format_insn(insn)}"


def format_uop(index: int, uop: Uop) -> str:
    return f"uop {index}: dst={uop.dst_idx} src={uop.src_idx} wgt={uop.wgt_idx}"
