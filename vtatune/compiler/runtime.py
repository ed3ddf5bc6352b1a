"""The VTA runtime's instruction-stream builder (TVM ``vta/runtime/runtime.cc``), emulated.

It turns the host program's calls — 2-D DMA loads/stores, micro-op kernel pushes and
dependence push/pop — into the exact instruction stream the ARM host would hand the
accelerator, including NOPs for token bookkeeping, the micro-op cache with its ``LOAD UOP``
instructions, and ``VTASynchronize``'s drain and FINISH.  The runtime's checks that the
original stack only hits on the board raise :class:`InvalidConfigError` with category
RUNTIME_DEVICE (4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ErrorCategory, InternalCompilerError, InvalidConfigError
from ..hardware import isa
from ..hardware.config import HwConfig
from ..hardware.isa import MemType, Opcode

NONE_STAGE, LOAD_STAGE, COMPUTE_STAGE, STORE_STAGE = 0, 1, 2, 3
MAX_XFER = 1 << 25  # VTA_MAX_XFER: bytes of the instruction DMA buffer


def runtime_error(reason: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(ErrorCategory.RUNTIME_DEVICE, reason, message)


@dataclass
class UopKernel:
    """A recorded micro-op kernel: up to two loops and the unrolled micro-ops."""

    mode: int  # 0 = GEMM, 1 = ALU
    reset: int = 0
    alu_opcode: int = 0
    use_imm: int = 0
    imm: int = 0
    loops: list = field(default_factory=list)  # (extent, dst_factor, src_factor, wgt_factor)
    uops: list = field(default_factory=list)   # (dst, src, wgt)

    def loop_begin(self, extent: int, dst: int, src: int, wgt: int) -> None:
        if self.uops:
            raise runtime_error("uop_loop_order", "VTAUopLoopBegin after the first micro-op")
        if len(self.loops) >= 2:
            raise runtime_error("uop_too_many_loops",
                                f"a micro-op kernel may have at most 2 loops, this one needs {len(self.loops) + 1}")
        self.loops.append((extent, dst, src, wgt))

    def push(self, dst: int, src: int, wgt: int) -> None:
        # The runtime's dependency check: a micro-op may not write the accumulator that one
        # of the two previous micro-ops wrote (the GEMM pipeline has no RAW forwarding).
        for prev in self.uops[-2:]:
            if prev[0] == dst:
                raise runtime_error("uop_hazard",
                                    f"micro-op {len(self.uops)} writes accumulator {dst}, as one of the "
                                    "two micro-ops before it does")
        self.uops.append((dst, src, wgt))


class _Insn:
    """One instruction of the queue, as a view (``Runtime.insns``): kind, stage, fields."""

    __slots__ = ("kind", "f", "stage")

    def __init__(self, kind: str, stage: int, f: dict):
        self.kind, self.stage, self.f = kind, stage, f


# The queue is kept compact (a program can have 500,000 instructions): per instruction one
# ``meta`` int — kind | stage << 3 | dependence flags << 5 — and, per kind, its fields in that
# kind's flat list, in the column order below.  The three NOP kinds have no fields: a LOAD
# INP (load stage), a LOAD UOP (compute stage) and a STORE, all sizes 0.
K_MEM, K_GEMM, K_ALU, K_FINISH, K_NOP_INP, K_NOP_UOP, K_NOP_STORE = range(7)
KINDS = ("mem", "gemm", "alu", "finish", "mem", "mem", "mem")
NOP_CODE = {K_NOP_INP: (Opcode.LOAD, MemType.INP), K_NOP_UOP: (Opcode.LOAD, MemType.UOP),
            K_NOP_STORE: (Opcode.STORE, MemType.UOP)}
FLAG_SHIFT = 5
# meta of the NOP a stage emits (a LOAD with x_size 0 belongs to no stage)
_NOP_META = {LOAD_STAGE: K_NOP_INP | NONE_STAGE << 3, COMPUTE_STAGE: K_NOP_UOP | NONE_STAGE << 3,
             STORE_STAGE: K_NOP_STORE | STORE_STAGE << 3}
F_POP_PREV, F_POP_NEXT, F_PUSH_PREV, F_PUSH_NEXT = 1, 2, 4, 8  # flags (meta >> FLAG_SHIFT)
DEP_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")
MEM_COLS = ("opcode", "memory_type", "sram_base", "dram_base", "y_size", "x_size", "x_stride",
            "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1", "uop_relative")
GEMM_COLS = ("reset_reg", "uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out",
             "dst_factor_in", "src_factor_out", "src_factor_in", "wgt_factor_out", "wgt_factor_in")
ALU_COLS = ("reset_reg", "uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out",
            "dst_factor_in", "src_factor_out", "src_factor_in", "alu_opcode", "use_imm", "imm")
COLS = (MEM_COLS, GEMM_COLS, ALU_COLS, (), (), (), ())


class Runtime:
    """Instruction queue + micro-op cache of one command handle."""

    def __init__(self, hw: HwConfig):
        self.hw = hw
        self._meta: list[int] = []
        self._rows: tuple[list, ...] = ([], [], [])  # MEM, GEMM, ALU fields
        self._max_insns = MAX_XFER // isa.INSN_BYTES - 6
        self.pending_prev = [0, 0, 0, 0]
        self.pending_next = [0, 0, 0, 0]
        self.uop_words: list[int] = []        # the micro-op DMA buffer, append-only
        self._resident: dict = {}             # kernel key -> (sram_begin, sram_end)
        self._ring: list = []                 # (sram_begin, sram_end, key) in placement order
        self._ring_ptr = 0
        self.kernels: dict = {}               # key -> UopKernel (memoised for the process)
        self._insn_fields: dict = {}          # (key, begin) -> GEMM/ALU field tuple
        self._resident_insn: dict = {}        # key -> its instruction while resident
        lay = isa.layouts_for(hw).uop
        self._uop_shifts = tuple(f.lo for f in lay.fields)

    # ------------------------------------------------------------------ the queue
    @property
    def insns(self) -> list[_Insn]:
        """The queue as instruction views (built on demand; for inspection and tests)."""
        out = []
        pos = [0, 0, 0]
        for meta in self._meta:
            kind = meta & 7
            flags = meta >> FLAG_SHIFT
            f = {name: (flags >> bit) & 1 for bit, name in enumerate(DEP_NAMES)}
            if kind in NOP_CODE:
                f.update(zip(("opcode", "memory_type"), NOP_CODE[kind]))
            elif kind != K_FINISH:
                width = len(COLS[kind])
                f.update(zip(COLS[kind], self._rows[kind][pos[kind]:pos[kind] + width]))
                pos[kind] += width
            if kind == K_MEM and not f["uop_relative"]:
                del f["uop_relative"]
            out.append(_Insn(KINDS[kind], (meta >> 3) & 3, f))
        return out

    def __len__(self) -> int:
        return len(self._meta)

    def merge_state(self) -> tuple:
        """Everything the next instructions' token merging and micro-op cache read: pending
        pops, the last instruction's stage and flags, the resident kernels, the ring pointer
        (two equal states emit equal streams for equal statements; ``stream_size``)."""
        last = self._meta[-1] >> 3 if self._meta else None
        return (tuple(self.pending_prev), tuple(self.pending_next), last,
                frozenset(self._resident.items()), self._ring_ptr)

    def _append(self, kind: int, stage: int, row: tuple) -> None:
        """Append an instruction of ``stage`` taking that stage's pending pops."""
        if len(self._meta) >= self._max_insns:
            self._too_large()
        self._meta.append(kind | stage << 3
                          | (self.pending_prev[stage] | self.pending_next[stage] << 1) << FLAG_SHIFT)
        self.pending_prev[stage] = self.pending_next[stage] = 0
        self._rows[kind].extend(row)

    def _noop(self, stage: int, flags: int) -> None:
        meta = self._meta
        if len(meta) >= self._max_insns:
            self._too_large()
        meta.append(_NOP_META[stage] | flags << FLAG_SHIFT)

    # ------------------------------------------------------------------ tokens
    def _commit(self, stage: int) -> None:
        pp, pn = self.pending_prev, self.pending_next
        if pp[stage] or pn[stage]:
            meta = self._meta
            if len(meta) >= self._max_insns:
                self._too_large()
            meta.append(_NOP_META[stage] | (pp[stage] | pn[stage] << 1) << FLAG_SHIFT)
            pp[stage] = pn[stage] = 0

    def dep_pop(self, frm: int, to: int) -> None:
        if frm < to:
            if frm == LOAD_STAGE and to == STORE_STAGE:
                self._no_token(frm, to)
            if self.pending_prev[to]:
                self._commit(to)
            self.pending_prev[to] = 1
        else:
            if frm == STORE_STAGE and to == LOAD_STAGE:
                self._no_token(frm, to)
            if self.pending_next[to]:
                self._commit(to)
            self.pending_next[to] = 1

    @staticmethod
    def _no_token(frm: int, to: int):
        raise InternalCompilerError("frm/to", f"no dependence token between the load and store "
                                    f"modules (dep_pop({frm}, {to})): VTA's queues link "
                                    "load<->compute and compute<->store only")

    def dep_push(self, frm: int, to: int) -> None:
        if self.pending_prev[frm] or self.pending_next[frm]:
            self._commit(frm)
        meta = self._meta
        flag = F_PUSH_NEXT if frm < to else F_PUSH_PREV
        if meta:
            last = meta[-1]
            if (last >> 3) & 3 == frm and not last & flag << FLAG_SHIFT:
                meta[-1] = last | flag << FLAG_SHIFT
                return
        if len(meta) >= self._max_insns:
            self._too_large()
        meta.append(_NOP_META[frm] | flag << FLAG_SHIFT)

    def _check_size(self) -> None:
        if len(self._meta) > self._max_insns:
            self._too_large()

    def _too_large(self):
        # The runtime would synchronise mid-stream here (split into two runs); vtatune
        # emits one run per operator call and reports the case instead of faking it.
        raise runtime_error("insn_stream_too_large",
                            f"more than {MAX_XFER // isa.INSN_BYTES - 6} instructions in one run")

    # ------------------------------------------------------------------ DMA
    def load_2d(self, mem_type: int, dram_base: int, sram_base: int, x_size: int, y_size: int,
                x_stride: int, x_pad_0=0, y_pad_0=0, x_pad_1=0, y_pad_1=0) -> None:
        stage = COMPUTE_STAGE if mem_type in (MemType.ACC, MemType.ACC_8BIT, MemType.UOP) else LOAD_STAGE
        self._append(K_MEM, stage, (Opcode.LOAD, mem_type, sram_base, dram_base, y_size, x_size,
                                    x_stride, y_pad_0, y_pad_1, x_pad_0, x_pad_1, 0))

    def store_2d(self, sram_base: int, dram_base: int, x_size: int, y_size: int, x_stride: int) -> None:
        self._append(K_MEM, STORE_STAGE, (Opcode.STORE, MemType.OUT, sram_base, dram_base, y_size,
                                          x_size, x_stride, 0, 0, 0, 0, 0))

    # ------------------------------------------------------------------ micro-op kernels
    def push_kernel(self, key, record) -> None:
        """``VTAPushGEMMOp``/``VTAPushALUOp``: record the kernel on first use (``record()``
        returns a UopKernel), make it resident in the micro-op SRAM (LOAD UOP if needed),
        then emit the GEMM or ALU instruction."""
        hit = self._resident_insn.get(key)
        if hit is not None:  # resident: only the GEMM/ALU instruction
            self._append(*hit)
            return
        kernel = self.kernels.get(key)
        if kernel is None:
            kernel = self.kernels[key] = record()
        n = len(kernel.uops)
        depth = self.hw.uop_buff_depth
        if n > depth:
            raise runtime_error("uop_kernel_too_large", f"micro-op kernel of {n} micro-ops exceeds the "
                                                        f"{depth}-entry micro-op buffer")
        if key not in self._resident:
            if self._ring_ptr + n > depth:
                self._ring_ptr = 0
            begin, end = self._ring_ptr, self._ring_ptr + n
            for other in [k for k, (b, e) in self._resident.items() if b < end and begin < e]:
                del self._resident[other]
                self._resident_insn.pop(other, None)
            self._resident[key] = (begin, end)
            self._ring_ptr = end
            offset = len(self.uop_words)
            sd, ss, sw = self._uop_shifts
            self.uop_words.extend((d << sd) | (s << ss) | (w << sw) for d, s, w in kernel.uops)
            # dram_base is relative to the micro-op region until the program is placed.
            self._append(K_MEM, COMPUTE_STAGE, (Opcode.LOAD, MemType.UOP, begin, offset, 1, n, n,
                                                0, 0, 0, 0, 1))
        begin, end = self._resident[key]
        cached = self._insn_fields.get((key, begin))
        if cached is None:
            cached = self._insn_fields[(key, begin)] = self._kernel_insn(kernel, begin, end)
        self._resident_insn[key] = cached
        self._append(*cached)

    @staticmethod
    def _kernel_insn(kernel: UopKernel, begin: int, end: int) -> tuple:
        """(kind, stage, fields) of the GEMM or ALU instruction running ``kernel`` placed at
        micro-op slots [begin, end)."""
        loops = kernel.loops
        if kernel.mode == 0:
            lo = loops[0] if len(loops) > 0 else (1, 0, 0, 0)
            li = loops[1] if len(loops) > 1 else (1, 0, 0, 0)
            return K_GEMM, COMPUTE_STAGE, (kernel.reset, begin, end, lo[0], li[0], lo[1], li[1],
                                           lo[2], li[2], lo[3], li[3])
        if len(loops) == 0:
            lo, li = (1, 0, 0, 0), (1, 0, 0, 0)
        elif len(loops) == 1:  # a single loop becomes the inner loop
            lo, li = (1, 0, 0, 0), loops[0]
        else:
            lo, li = loops[0], loops[1]
        return K_ALU, COMPUTE_STAGE, (kernel.reset, begin, end, lo[0], li[0], lo[1], li[1], lo[2],
                                      li[2], kernel.alu_opcode, kernel.use_imm, kernel.imm)

    # ------------------------------------------------------------------ end of a run
    def synchronize(self) -> None:
        self.dep_push(STORE_STAGE, COMPUTE_STAGE)
        self.dep_push(LOAD_STAGE, COMPUTE_STAGE)
        self.dep_pop(STORE_STAGE, COMPUTE_STAGE)
        self.dep_pop(LOAD_STAGE, COMPUTE_STAGE)
        self._commit(COMPUTE_STAGE)
        self._meta.append(K_FINISH | COMPUTE_STAGE << 3)
        self._resident.clear()
        self._resident_insn.clear()
        self._ring_ptr = 0

    # ------------------------------------------------------------------ output
    def encode(self, uop_base_elem: int) -> bytes:
        """The stream encoded (vectorised per kind); micro-op DMA addresses are placed at
        ``uop_base_elem``.  Raises FieldOverflowError for a value its field cannot hold."""
        import numpy as np
        lay = isa.layouts_for(self.hw)
        meta = np.array(self._meta, dtype=np.int64)
        n = meta.size
        lo = np.zeros(n, dtype=np.uint64)
        hi = np.zeros(n, dtype=np.uint64)
        kinds = meta & 7
        flags = meta >> FLAG_SHIFT
        opcode = {K_GEMM: Opcode.GEMM, K_ALU: Opcode.ALU, K_FINISH: Opcode.FINISH}
        nops = kinds >= K_NOP_INP
        if nops.any():
            # opcode, flags and memory type only: every value fits its field
            f = lay.mem
            code = np.zeros(8, dtype=np.uint64)
            for k, (op, mt) in NOP_CODE.items():
                code[k] = (int(op) << f.field("opcode").lo) | (int(mt) << f.field("memory_type").lo)
            lo[nops] = code[kinds[nops]] | (flags[nops].astype(np.uint64)
                                            << np.uint64(f.field("pop_prev").lo))
        for kind in (K_MEM, K_GEMM, K_ALU, K_FINISH):
            rows = np.flatnonzero(kinds == kind)
            if rows.size == 0:
                continue
            fl = flags[rows]
            names = COLS[kind]
            cols = {}
            if names:
                table = np.array(self._rows[kind], dtype=np.int64).reshape(rows.size, len(names))
                cols = {a: table[:, j] for j, a in enumerate(names)}
            for bit, name in enumerate(DEP_NAMES):
                cols[name] = (fl >> bit) & 1
            if kind == K_MEM:
                cols["dram_base"] = cols["dram_base"] + cols.pop("uop_relative") * uop_base_elem
            else:
                cols["opcode"] = np.full(rows.size, int(opcode[kind]), dtype=np.int64)
            layout = getattr(lay, "gemm" if kind == K_FINISH else KINDS[kind])
            lo[rows], hi[rows] = isa.encode_columns(layout, cols, KINDS[kind].upper(), rows)
        return np.stack([lo, hi], axis=1).astype("<u8").tobytes()
