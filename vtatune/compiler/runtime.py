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
    __slots__ = ("kind", "f", "stage")

    def __init__(self, kind: str, stage: int, f: dict):
        self.kind, self.stage, self.f = kind, stage, f


class Runtime:
    """Instruction queue + micro-op cache of one command handle."""

    def __init__(self, hw: HwConfig):
        self.hw = hw
        self.insns: list[_Insn] = []
        self.pending_prev = [0, 0, 0, 0]
        self.pending_next = [0, 0, 0, 0]
        self.uop_words: list[int] = []        # the micro-op DMA buffer, append-only
        self._resident: dict = {}             # kernel key -> (sram_begin, sram_end)
        self._ring: list = []                 # (sram_begin, sram_end, key) in placement order
        self._ring_ptr = 0
        self.kernels: dict = {}               # key -> UopKernel (memoised for the process)

    # ------------------------------------------------------------------ tokens
    def _create(self, kind: str, stage: int, **f) -> _Insn:
        ins = _Insn(kind, stage, dict(pop_prev=self.pending_prev[stage], pop_next=self.pending_next[stage],
                                      push_prev=0, push_next=0, **f))
        self.pending_prev[stage] = self.pending_next[stage] = 0
        self.insns.append(ins)
        self._check_size()
        return ins

    def _noop(self, stage: int, push_prev=0, push_next=0, pop_prev=0, pop_next=0) -> None:
        opcode = Opcode.STORE if stage == STORE_STAGE else Opcode.LOAD
        mtype = MemType.INP if stage == LOAD_STAGE else MemType.UOP
        ins = _Insn("mem", NONE_STAGE if opcode == Opcode.LOAD else STORE_STAGE,
                    dict(opcode=opcode, memory_type=mtype, pop_prev=pop_prev, pop_next=pop_next,
                         push_prev=push_prev, push_next=push_next))
        self.insns.append(ins)
        self._check_size()

    def _commit(self, stage: int) -> None:
        if self.pending_prev[stage] or self.pending_next[stage]:
            self._noop(stage, pop_prev=self.pending_prev[stage], pop_next=self.pending_next[stage])
            self.pending_prev[stage] = self.pending_next[stage] = 0

    def dep_pop(self, frm: int, to: int) -> None:
        if {frm, to} == {LOAD_STAGE, STORE_STAGE}:
            raise InternalCompilerError("frm/to", f"no dependence token between the load and store "
                                        f"modules (dep_pop({frm}, {to})): VTA's queues link "
                                        "load<->compute and compute<->store only")
        if frm < to:
            if self.pending_prev[to]:
                self._commit(to)
            self.pending_prev[to] = 1
        else:
            if self.pending_next[to]:
                self._commit(to)
            self.pending_next[to] = 1

    def dep_push(self, frm: int, to: int) -> None:
        self._commit(frm)
        if self.insns:
            last = self.insns[-1]
            if last.stage == frm:
                if frm < to and not last.f["push_next"]:
                    last.f["push_next"] = 1
                    return
                if frm > to and not last.f["push_prev"]:
                    last.f["push_prev"] = 1
                    return
        if frm < to:
            self._noop(frm, push_next=1)
        else:
            self._noop(frm, push_prev=1)

    def _check_size(self) -> None:
        if (len(self.insns) + 6) * isa.INSN_BYTES > MAX_XFER:
            # The runtime would synchronise mid-stream here (split into two runs); vtatune
            # emits one run per operator call and reports the case instead of faking it.
            raise runtime_error("insn_stream_too_large",
                                f"more than {MAX_XFER // isa.INSN_BYTES - 6} instructions in one run")

    # ------------------------------------------------------------------ DMA
    def load_2d(self, mem_type: int, dram_base: int, sram_base: int, x_size: int, y_size: int,
                x_stride: int, x_pad_0=0, y_pad_0=0, x_pad_1=0, y_pad_1=0) -> None:
        stage = COMPUTE_STAGE if mem_type in (MemType.ACC, MemType.ACC_8BIT, MemType.UOP) else LOAD_STAGE
        self._create("mem", stage, opcode=Opcode.LOAD, memory_type=mem_type, sram_base=sram_base,
                     dram_base=dram_base, y_size=y_size, x_size=x_size, x_stride=x_stride,
                     y_pad_0=y_pad_0, y_pad_1=y_pad_1, x_pad_0=x_pad_0, x_pad_1=x_pad_1)

    def store_2d(self, sram_base: int, dram_base: int, x_size: int, y_size: int, x_stride: int) -> None:
        self._create("mem", STORE_STAGE, opcode=Opcode.STORE, memory_type=MemType.OUT,
                     sram_base=sram_base, dram_base=dram_base, y_size=y_size, x_size=x_size,
                     x_stride=x_stride)

    # ------------------------------------------------------------------ micro-op kernels
    def push_kernel(self, key, record) -> None:
        """``VTAPushGEMMOp``/``VTAPushALUOp``: record the kernel on first use (``record()``
        returns a UopKernel), make it resident in the micro-op SRAM (LOAD UOP if needed),
        then emit the GEMM or ALU instruction."""
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
            self._resident[key] = (begin, end)
            self._ring_ptr = end
            offset = len(self.uop_words)
            layout = isa.layouts_for(self.hw).uop
            fd, fs, fw = layout.fields
            for d, s, w in kernel.uops:
                self.uop_words.append((d << fd.lo) | (s << fs.lo) | (w << fw.lo))
            # dram_base is relative to the micro-op region until the program is placed.
            self._create("mem", COMPUTE_STAGE, opcode=Opcode.LOAD, memory_type=MemType.UOP,
                         sram_base=begin, dram_base=offset, y_size=1, x_size=n, x_stride=n,
                         uop_relative=True)
        begin, end = self._resident[key]
        loops = kernel.loops
        if kernel.mode == 0:
            lo = loops[0] if len(loops) > 0 else (1, 0, 0, 0)
            li = loops[1] if len(loops) > 1 else (1, 0, 0, 0)
            self._create("gemm", COMPUTE_STAGE, reset_reg=kernel.reset, uop_bgn=begin, uop_end=end,
                         iter_out=lo[0], iter_in=li[0], dst_factor_out=lo[1], dst_factor_in=li[1],
                         src_factor_out=lo[2], src_factor_in=li[2], wgt_factor_out=lo[3],
                         wgt_factor_in=li[3])
        else:
            if len(loops) == 0:
                lo, li = (1, 0, 0, 0), (1, 0, 0, 0)
            elif len(loops) == 1:  # a single loop becomes the inner loop
                lo, li = (1, 0, 0, 0), loops[0]
            else:
                lo, li = loops[0], loops[1]
            self._create("alu", COMPUTE_STAGE, reset_reg=kernel.reset, uop_bgn=begin, uop_end=end,
                         iter_out=lo[0], iter_in=li[0], dst_factor_out=lo[1], dst_factor_in=li[1],
                         src_factor_out=lo[2], src_factor_in=li[2], alu_opcode=kernel.alu_opcode,
                         use_imm=kernel.use_imm, imm=kernel.imm)

    # ------------------------------------------------------------------ end of a run
    def synchronize(self) -> None:
        self.dep_push(STORE_STAGE, COMPUTE_STAGE)
        self.dep_push(LOAD_STAGE, COMPUTE_STAGE)
        self.dep_pop(STORE_STAGE, COMPUTE_STAGE)
        self.dep_pop(LOAD_STAGE, COMPUTE_STAGE)
        self._commit(COMPUTE_STAGE)
        self.insns.append(_Insn("finish", COMPUTE_STAGE, dict(pop_prev=0, pop_next=0, push_prev=0, push_next=0)))
        self._resident.clear()
        self._ring_ptr = 0

    # ------------------------------------------------------------------ output
    def encode(self, uop_base_elem: int) -> bytes:
        """The stream encoded (vectorised per kind); micro-op DMA addresses are placed at
        ``uop_base_elem``.  Raises FieldOverflowError for a value its field cannot hold."""
        import numpy as np
        lay = isa.layouts_for(self.hw)
        n = len(self.insns)
        lo = np.zeros(n, dtype=np.uint64)
        hi = np.zeros(n, dtype=np.uint64)
        groups: dict[str, list[int]] = {}
        for i, ins in enumerate(self.insns):
            groups.setdefault(ins.kind, []).append(i)
        opcode = {"gemm": Opcode.GEMM, "alu": Opcode.ALU, "finish": Opcode.FINISH}
        for kind, idx in groups.items():
            layout = getattr(lay, "gemm" if kind == "finish" else kind)
            names = [f.name for f in layout.fields if f.name != "opcode"]
            table = np.zeros((len(idx), len(names)), dtype=np.int64)
            for r, i in enumerate(idx):
                f = self.insns[i].f
                table[r] = [f.get(a, 0) for a in names]
            cols = {a: table[:, j] for j, a in enumerate(names)}
            if kind == "mem":
                cols["opcode"] = np.array([self.insns[i].f["opcode"] for i in idx], dtype=np.int64)
                rel = np.array([self.insns[i].f.get("uop_relative", False) for i in idx])
                cols["dram_base"] = cols["dram_base"] + rel * uop_base_elem
            else:
                cols["opcode"] = np.full(len(idx), int(opcode[kind]), dtype=np.int64)
            rows = np.asarray(idx)
            lo[rows], hi[rows] = isa.encode_columns(layout, cols, kind.upper(), rows)
        return np.stack([lo, hi], axis=1).astype("<u8").tobytes()
