"""Pieces shared by the operator templates: SRAM allocation, micro-op loop folding, the ALU
intrinsic's loop flattening, and the epilogue stages."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import ConfigurationError, ErrorCategory, InvalidConfigError
from ..hardware.config import HwConfig
from ..hardware.isa import AluOp
from ..workloads.workload import REQUANT, SHIFT, Requant
from .copy_pattern import match_copy_pattern
from .dma import lowering_error
from .runtime import UopKernel, runtime_error


# ----------------------------------------------------------------------------- SRAM
@dataclass(frozen=True)
class Allocation:
    scope: str       # "inp" | "wgt" | "acc"
    name: str
    elems: int       # elements per virtual thread


def check_allocations(allocs: Sequence[Allocation], hw: HwConfig, nthreads: int) -> None:
    """StorageFlatten's per-buffer bound, then StorageRewrite's bound on everything live at
    once after ``cthread`` multiplied each buffer by the thread count."""
    depth = {"inp": hw.inp_buff_depth, "wgt": hw.wgt_buff_depth, "acc": hw.acc_buff_depth}
    ebytes = {"inp": hw.inp_elem_bytes, "wgt": hw.wgt_elem_bytes, "acc": hw.acc_elem_bytes}
    for a in allocs:
        if a.elems > depth[a.scope]:
            raise lowering_error(f"{a.scope}_sram_overflow",
                                 f"Allocation exceed bound of memory tag local.{a.scope}_buffer: "
                                 f"{a.name} needs {a.elems * ebytes[a.scope]} B > {depth[a.scope] * ebytes[a.scope]} B")
    for scope in ("inp", "wgt", "acc"):
        total = nthreads * sum(a.elems for a in allocs if a.scope == scope)
        if total > depth[scope]:
            raise lowering_error(f"{scope}_sram_overflow",
                                 f"Allocation exceed bound of memory tag local.{scope}_buffer: "
                                 f"{nthreads} virtual thread(s) x {total // nthreads} elements = "
                                 f"{total * ebytes[scope]} B > {depth[scope] * ebytes[scope]} B")


def check_lowering_passes(low, profile: str) -> None:
    """The lowering's checks of one template instance ``low``, in pass order (category
    COMPILE_HOST): StorageFlatten's per-buffer bound; ``InjectDMAIntrin`` statement by
    statement in program order (in the ``tvm-0.14`` profile ``MatchCopyPattern`` first, then
    the 2-D pattern); StorageRewrite's bound after ``cthread`` multiplied the buffers."""
    for a in low.allocs:
        check_allocations([a], low.hw, 1)
    strict = profile == "tvm-0.14"
    for stmt, pattern in low.copy_statements():
        if strict:
            match_copy_pattern(stmt)
        pattern()
    check_allocations(low.allocs, low.hw, low.nthreads)


# ----------------------------------------------------------------------------- uop kernels
@dataclass(frozen=True)
class Loop:
    name: str
    extent: int
    dst: int   # coefficient of the loop variable in the ACC index
    src: int   # in the INP (GEMM) / ACC (ALU) index
    wgt: int
    unrolled: bool = False   # unrolled by the schedule: a statement sequence, never folded
    guarded: bool = False    # the variable appears in a bound check: folding it fails


def gemm_kernel(loops: Sequence[Loop], base: tuple[int, int, int], reset: bool,
                guard: Callable[[dict], bool] | None = None) -> Callable[[], UopKernel]:
    """FoldUopLoop: the (up to two) outermost loops become the instruction's iter_out /
    iter_in; the remaining loops run at record time and push one micro-op per iteration
    (skipping iterations a bound check ``guard`` rejects).  Unit loops are absent (the
    simplifier removed them); folding stops at an unrolled loop (no For node is left) or a
    loop whose variable the guard uses (it is not only in the micro-op indices)."""
    loops = [l for l in loops if l.extent != 1]
    n_fold = 0
    for l in loops[:2]:
        if l.unrolled or l.guarded:
            break
        n_fold += 1

    def record() -> UopKernel:
        k = UopKernel(mode=0, reset=int(reset))
        for l in loops[:n_fold]:
            k.loop_begin(l.extent, l.dst, l.src if not reset else 0, 0 if reset else l.wgt)
        inner = loops[n_fold:]
        names = [l.name for l in inner]
        for idx in itertools.product(*[range(l.extent) for l in inner]):
            if guard is not None and not guard(dict(zip(names, idx))):
                continue
            d = base[0] + sum(i * l.dst for i, l in zip(idx, inner))
            if reset:
                k.push(d, 0, 0)
            else:
                s = base[1] + sum(i * l.src for i, l in zip(idx, inner))
                w = base[2] + sum(i * l.wgt for i, l in zip(idx, inner))
                k.push(d, s, w)
        return k
    return record


def flatten_alu_loops(loops: Sequence[tuple[int, int, int]]):
    """InjectALUIntrin's ``_flatten_loop``: merge adjacent loops whose coefficients are
    contiguous.  ``loops`` are (extent, dst_coeff, src_coeff), outermost first."""
    loops = [l for l in loops if l[0] != 1]
    if not loops:
        return []
    out = []
    ext, dst, src = loops[-1]
    for nxt in reversed(loops[:-1]):
        n_ext, n_dst, n_src = nxt
        if n_src == src * ext and n_dst == dst * ext:
            ext *= n_ext
        else:
            out.append((ext, dst, src))
            ext, dst, src = nxt
    out.append((ext, dst, src))
    return out[::-1]


def alu_kernel(loops, dst_base: int, src_base: int, opcode: int, imm: int | None) -> Callable[[], UopKernel]:
    flat = flatten_alu_loops(loops)

    def record() -> UopKernel:
        k = UopKernel(mode=1, alu_opcode=opcode, use_imm=int(imm is not None), imm=imm or 0)
        for ext, d, s in flat:
            k.loop_begin(ext, d, s, 0)
        k.push(dst_base, src_base, 0)
        return k
    return record


# ----------------------------------------------------------------------------- epilogues
MAX_SHR = 15  # the largest right shift one ALU SHR performs (signed 5-bit amount)

@dataclass(frozen=True)
class AluStage:
    name: str
    opcode: int
    imm: int | None     # None: tensor operand (the bias)


def epilogue_stages(epilogue: str, requant: Requant | None = None) -> list[AluStage]:
    """The ALU stages of the fused operator, in schedule order (§6.8): clip(lo, hi) is
    MIN(hi) then MAX(lo); the final cast to int8 is the STORE's low byte.  ``requant`` (a
    network layer) adds the bias before the shift, as a quantized graph does."""
    if epilogue == REQUANT:
        # the ALU shifter reads its amount as a signed 5-bit number (-16..15, §2.11): a
        # larger right shift is a chain of SHRs (arithmetic shifts compose exactly)
        shifts, left = [], requant.shift
        while left > MAX_SHR:
            shifts.append(MAX_SHR)
            left -= MAX_SHR
        shifts.append(left)
        return ([AluStage("add_bias", AluOp.ADD, None)]
                + [AluStage("right_shift" if k == 0 else f"right_shift_{k}", AluOp.SHR, amount)
                   for k, amount in enumerate(shifts)]
                + [AluStage("clip_max", AluOp.MIN, requant.hi),
                   AluStage("clip_min", AluOp.MAX, requant.lo)])
    shr = AluStage("right_shift", AluOp.SHR, SHIFT)
    if epilogue == "shift_clip":
        return [shr, AluStage("clip_max", AluOp.MIN, 127), AluStage("clip_min", AluOp.MAX, 0)]
    if epilogue == "bias":
        return [shr, AluStage("add_bias", AluOp.ADD, None), AluStage("clip_max", AluOp.MIN, 127),
                AluStage("clip_min", AluOp.MAX, 0)]
    if epilogue == "relu":
        return [shr, AluStage("relu", AluOp.MAX, 0)]
    raise ConfigurationError("epilogue", f"the compiler has no ALU stages for epilogue {epilogue!r}; "
                             "known: shift_clip, bias, relu, requant")


def closure_check(n_thread_axes: int) -> None:
    """A micro-op kernel's closure holds the virtual-thread loop variables; the runtime
    accepts a 0- or 4-byte signature only (INFERRED from the runtime's check)."""
    if n_thread_axes > 1:
        raise runtime_error("closure_too_large",
                            f"{n_thread_axes} virtual-thread axes give a {4 * n_thread_axes}-byte "
                            "micro-op kernel closure; VTAPushGEMMOp accepts 0 or 4 bytes")


def field_overflow(exc) -> InvalidConfigError:
    return InvalidConfigError(ErrorCategory.WRONG_ANSWER, "field_overflow",
                              f"{exc} (the runtime truncates the bit-field silently)")


def check_mem_fields(hw: HwConfig, where: str, **values: int) -> None:
    """The encoder's width check of LOAD/STORE fields (``field_overflow`` as ``encode``
    raises it), for values known before emission — per tile position in the sweep."""
    from ..errors import FieldOverflowError
    from ..hardware import isa
    fields = {f.name: f for f in isa.layouts_for(hw).mem.fields}
    for name, value in values.items():
        f = fields[name]
        lo, hi = ((-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else (0, f.mask))
        if not lo <= int(value) <= hi:
            raise field_overflow(FieldOverflowError(f"MEM.{name}", int(value), f.width,
                                                    signed=f.signed)) from None
