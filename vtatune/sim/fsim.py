"""fsim: vtatune's functional simulator of the VTA hardware (HLS semantics, bit-exact).

It fetches an instruction stream from simulated DRAM, routes every instruction to the
load / compute / store module queues exactly as the hardware's fetch module does, and runs
the modules in order, synchronised only by the four dependence-token queues (l2g, g2l,
s2g, g2c).  Each instruction is executed with vectorised numpy.  Where the HLS design and
TVM's C++ simulator disagree, fsim follows the HLS design (the PYNQ bitstream); the
choices are listed in docs/fsim.md.  Unlike the hardware, fsim stops with a typed error on
SRAM/DRAM out-of-range accesses, token deadlocks and a missing FINISH.

Resource caps.  A 16-byte instruction can ask for 2^41 micro-op iterations, so what one
instruction and one run may cost is capped, and checked before anything is allocated
(ResourceLimitError naming the instruction and the field).  The caps sit far above the
programs the compiler emits for every built-in workload suite (measured over all valid
ResNet-18 configurations and samples of the other suites; the largest figures are in the
comments below):

* ``MAX_INSNS`` instructions per run;
* ``max_insn_iterations`` micro-op iterations (``iter_out * iter_in * (uop_end -
  uop_bgn)``) of one GEMM or ALU instruction: ``MAX_INSN_ITERATIONS``, or fewer when the
  index plan and products of that many would exceed ``MAX_INSN_BYTES`` (216,480 on the
  1x16 configurations);
* ``MAX_RUN_WORK`` work units per run: GEMM/ALU micro-op iterations plus SRAM elements
  moved by LOAD/STORE (plus, in tsim, the DMA rows it times one by one).
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import (DramRangeError, MissingDependencyError, MissingFinishError,
                      ResourceLimitError, SimulationError, SramRangeError, TokenDeadlockError,
                      UndefinedBehaviourError, UnfinishedWorkError)
from ..hardware import isa
from ..hardware.config import HwConfig
from ..hardware.disasm import format_insn
from ..hardware.isa import AluInsn, AluOp, GemmInsn, MemInsn, MemType, Opcode
from .counters import COUNTER_NAMES, new_counters
from .dram import Dram

#: Environment variable choosing fsim's core when the caller does not: "0" the numpy path,
#: "1" the compiled one (an error without numba), unset: compiled when numba is installed.
JIT_ENV = "VTATUNE_FSIM_JIT"
_jit_module = None  # fsim_jit once imported, False if numba is missing


def jit_available() -> bool:
    """Whether the compiled core can be used (numba installed: the ``jit`` extra)."""
    global _jit_module
    if _jit_module is None:
        try:
            from . import fsim_jit
            _jit_module = fsim_jit
        except ImportError:
            _jit_module = False
    return _jit_module is not False

MODULES = ("load", "compute", "store")
# Token queue popped by (module, flag) and pushed by (module, flag); None = flag ignored by HLS.
POP_QUEUE = {("load", "pop_next"): "g2l", ("compute", "pop_prev"): "l2g",
             ("compute", "pop_next"): "s2g", ("store", "pop_prev"): "g2s"}
PUSH_QUEUE = {("load", "push_next"): "l2g", ("compute", "push_prev"): "g2l",
              ("compute", "push_next"): "g2s", ("store", "push_prev"): "s2g"}

# Resource caps (module docstring).  The largest compiled programs, over all 1883 valid
# ResNet-18 configurations and 25 sampled configurations of every other built-in workload:
# 1,705,997 instructions (deepbench.5; ResNet-18 501,773), 19,600 micro-op iterations in
# one instruction (ResNet-18 16,128), 5.6 M micro-op iterations and 1 M DMA rows in a run.
# At the caps a run takes a few minutes and about 1.5 GB at worst.
MAX_INSNS = 1 << 22            # 4,194,304 instructions: a 64 MiB stream
MAX_INSN_ITERATIONS = 1 << 20
MAX_INSN_BYTES = 1 << 28       # working memory of one GEMM/ALU instruction
MAX_RUN_WORK = 1 << 27         # 134 M units
# Index plans cached at once (elements of their grids): beyond it the cache starts afresh,
# which only costs time (a real program's plans stay far below it).
MAX_PLAN_CACHE_ELEMS = 1 << 24
DECODE_CHUNK = 1 << 16  # instructions turned into objects at a time
CHUNK_WORK = 64         # work units of one ALU vector step (its numpy call overhead)


@dataclass
class RunResult:
    """Outcome of one run: profiler counters and what executed."""

    counters: dict[str, int]
    insn_count: int
    executed: dict[str, int] = field(default_factory=dict)
    leftover_tokens: dict[str, int] = field(default_factory=dict)


class _NoObjects:
    """Stands for the instruction-object list of the numpy core (none built: each one is
    decoded from the stream when a report needs it)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int):
        return None


_FTABS: dict = {}


def _ftab(hw: HwConfig) -> np.ndarray:
    """fsim_jit's field table of ``hw``'s layouts (cached per layout)."""
    lay = isa.layouts_for(hw)
    tab = _FTABS.get(lay)
    if tab is None:
        tab = _FTABS[lay] = _jit_module.field_table(lay)
    return tab


class SRAM:
    """On-chip buffers.  OUT is the HLS shadow buffer written by GEMM/ALU, read by STORE.

    INP and WGT hold int8 values stored as float32: an int8 dot product of at most 64 terms
    is exact in float32, and BLAS then does the GEMM arithmetic at numpy speed.
    """

    def __init__(self, hw: HwConfig):
        b, bi, bo = hw.batch, hw.block_in, hw.block_out
        self.uop = np.zeros(hw.uop_buff_depth, dtype=np.uint32)
        self.inp = np.zeros((hw.inp_buff_depth, b, bi), dtype=np.float32)
        self.wgt = np.zeros((hw.wgt_buff_depth, bo, bi), dtype=np.float32)
        self.acc = np.zeros((hw.acc_buff_depth, b, bo), dtype=np.int32)
        self.out = np.zeros((hw.acc_buff_depth, b, bo), dtype=np.int8)


class FunctionalSimulator:
    """Bit-exact functional model of one VTA core attached to a simulated DRAM."""

    name = "fsim"

    def __init__(self, hw: HwConfig | None = None, dram: Dram | None = None, *,
                 jit: bool | None = None):
        """``jit``: run on the compiled core (numba) or the numpy one; ``None`` follows
        ``$VTATUNE_FSIM_JIT``, else compiled when numba is installed.  Both give identical
        results (docs/fsim.md).  Subclasses that schedule differently (tsim) always use the
        numpy core for each instruction."""
        self.hw = hw or HwConfig.load()
        if type(self)._schedule is not FunctionalSimulator._schedule:
            jit = False  # a scheduler of its own (tsim): numba is never imported
        elif jit is None:
            env = os.environ.get(JIT_ENV, "").strip()
            jit = jit_available() if env == "" else env not in ("0", "false", "no")
        if jit and not jit_available():
            raise MissingDependencyError(
                "fsim's compiled core needs numba: pip install 'vtatune[jit]' (or run with "
                f"jit=False / {JIT_ENV}=0 for the numpy core)")
        self.jit = bool(jit)
        self.dram = dram if dram is not None else Dram()
        self.sram = SRAM(self.hw)
        self.counters = new_counters()
        lay = isa.layouts_for(self.hw).uop
        self._uop_fields = [(f.lo, f.mask) for f in lay.fields]
        # Index plans of GEMM/ALU instructions, valid while the micro-op SRAM is unchanged
        # (the runtime re-issues identical GEMMs for every tile, so plans are reused a lot).
        self._plans: dict = {}
        self._plan_elems = 0  # index elements held by _plans
        # A GEMM iteration holds three int64 indices, its input and weight matrices (float32)
        # and its products (float32 and int32) at once.
        b, bi, bo = self.hw.batch, self.hw.block_in, self.hw.block_out
        per_iteration = 3 * 8 + 4 * (b * bi + bo * bi) + 8 * b * bo
        self.max_insn_iterations = min(MAX_INSN_ITERATIONS, MAX_INSN_BYTES // per_iteration)
        self._work = 0        # work units of the current run (MAX_RUN_WORK)

    # ------------------------------------------------------------------ public API
    def reset_counters(self) -> None:
        self.counters = new_counters()

    def execute(self, insns: Sequence[isa.Instruction]) -> RunResult:
        """Encode ``insns`` into a fresh DRAM buffer and run them."""
        blob = isa.encode_program(insns, self.hw)
        addr = self.dram.alloc(len(blob))
        self.dram.write(addr, blob)
        try:
            return self.run(addr, len(insns))
        finally:
            self.dram.free(addr)

    def run(self, insn_addr: int, insn_count: int) -> RunResult:
        """Fetch ``insn_count`` instructions at physical byte address ``insn_addr`` and run
        them until FINISH.  Counters accumulate across runs (like the VTA profiler)."""
        if insn_count <= 0:
            raise MissingFinishError("empty instruction stream (insn_count must be > 0)")
        if insn_count > MAX_INSNS:
            raise ResourceLimitError("insn_count", insn_count, MAX_INSNS, "too many instructions for one run")
        self._work = 0
        try:
            raw = self.dram.view(insn_addr, insn_count * isa.INSN_BYTES, "instruction fetch")
        except DramRangeError as exc:
            raise DramRangeError(str(exc), field="insn_addr/insn_count") from None
        if self.jit and len(self.dram.regions) <= _jit_module.MAX_REGIONS:
            return self._run_compiled(raw)
        return self._schedule(*self._prepare(raw))

    # ------------------------------------------------------------------ compiled core
    def _run_compiled(self, raw) -> RunResult:
        """One run on fsim_jit's compiled core; errors are raised exactly as the numpy core
        raises them (the failing instruction is re-executed by it, module docstring of
        fsim_jit)."""
        J = _jit_module
        hw, s = self.hw, self.sram
        self._raw = np.asarray(raw, dtype=np.uint8).reshape(-1, isa.INSN_BYTES)
        # a copy: the numpy core decodes the whole stream before it runs, so a STORE into
        # the instruction region must not change what executes
        words = np.frombuffer(self._raw.tobytes(), dtype="<i8").reshape(-1, 2)
        n = words.shape[0]
        regions = self.dram.regions
        rb = np.array([r.base for r in regions], dtype=np.int64)
        re_ = rb + np.array([r.data.size for r in regions], dtype=np.int64)
        empty = np.zeros(0, dtype=np.uint8)
        regs = tuple(r.data for r in regions) + (empty,) * (J.MAX_REGIONS - len(regions))
        cfg = np.zeros(J.N_CFG, dtype=np.int64)
        cfg[[J.C_UOP_DEPTH, J.C_INP_DEPTH, J.C_WGT_DEPTH, J.C_ACC_DEPTH, J.C_OUT_DEPTH]] = (
            hw.uop_buff_depth, hw.inp_buff_depth, hw.wgt_buff_depth, hw.acc_buff_depth,
            hw.out_buff_depth)
        cfg[[J.C_BATCH, J.C_BLOCK_IN, J.C_BLOCK_OUT]] = hw.batch, hw.block_in, hw.block_out
        cfg[[J.C_INP_E, J.C_WGT_E, J.C_ACC_E, J.C_OUT_E]] = (
            hw.inp_elem_bytes, hw.wgt_elem_bytes, hw.acc_elem_bytes, hw.out_elem_bytes)
        cfg[J.C_CMD_CAP] = hw.queues.insn_queue_depth + 1
        cfg[J.C_DEP_CAP] = hw.queues.dep_queue_depth
        cfg[J.C_MAX_ITER] = self.max_insn_iterations
        cfg[J.C_MAX_WORK] = MAX_RUN_WORK
        cfg[J.C_CHUNK_WORK] = CHUNK_WORK
        cfg[J.C_ACC_PAD] = int(hw.acc_load_pad)
        cfg[J.C_OUT_STORE_UNIT] = hw.batch * hw.block_out * hw.out_width // 8
        st = np.zeros(J.N_STATE, dtype=np.int64)
        st[J.S_WORK] = self._work
        cnt = np.array([self.counters[k] for k in COUNTER_NAMES], dtype=np.int64)
        # The compiled core holds INP and WGT as integers; the float32 SRAM (the state both
        # cores share) is converted for the run and back after it (exact: int8 values).
        inp16 = s.inp.reshape(hw.inp_buff_depth, -1).astype(J.SHADOW_DTYPE)
        wgt16 = s.wgt.reshape(hw.wgt_buff_depth, -1).astype(J.SHADOW_DTYPE)
        try:
            J.run(words, _ftab(hw), cfg, st, regs, rb, re_, s.uop, inp16, wgt16,
                  s.acc.reshape(hw.acc_buff_depth, -1), s.out.reshape(hw.acc_buff_depth, -1), cnt)
        finally:
            s.inp[...] = inp16.reshape(s.inp.shape)
            s.wgt[...] = wgt16.reshape(s.wgt.shape)
            self.counters.update(zip(COUNTER_NAMES, cnt.tolist()))
            self._work = int(st[J.S_WORK])
            if st[J.S_UOP_LOADED]:
                self._plans.clear()
                self._plan_elems = 0
        pc = int(st[J.S_PC])
        tokens = dict(zip(("l2g", "g2l", "s2g", "g2s"), st[J.S_TOK0:J.S_TOK0 + 4].tolist()))
        executed = dict(zip(MODULES, st[J.S_EXEC0:J.S_EXEC0 + 3].tolist()))
        lengths = dict(zip(MODULES, st[J.S_LEN0:J.S_LEN0 + 3].tolist()))
        status = int(st[J.S_STATUS])
        if status == J.ST_EXEC_ERROR:
            idx, module = int(st[J.S_IDX]), MODULES[int(st[J.S_MODULE])]
            insn = isa.decode_program(self._raw[idx].tobytes(), hw)[0]
            self._exec(idx, insn, module)  # raises the numpy core's typed error
            raise SimulationError(f"internal error: fsim's compiled core stopped at instruction "
                                  f"{idx} ({format_insn(insn)}) that the numpy core executes",
                                  insn_index=idx)
        if status == J.ST_STUCK:
            queues = {m: deque([int(st[J.S_HEAD0 + i])] if lengths[m] else [])
                      for i, m in enumerate(MODULES)}
            if pc >= n and not any(queues.values()):
                raise MissingFinishError(f"all {n} instructions executed and none of them was FINISH")
            routes = {pc: self._route_of(pc)} if pc < n else {}
            raise TokenDeadlockError(self._deadlock_report(
                _NoObjects(n), queues, tokens, pc, routes,
                int(cfg[J.C_CMD_CAP]), int(cfg[J.C_DEP_CAP])))
        return self._finished(n, pc, executed, {m: k for m, k in lengths.items() if k}, tokens)

    def _finished(self, n: int, pc: int, executed: dict, left: dict, tokens: dict) -> RunResult:
        """The result of a run that reached FINISH, or ``UnfinishedWorkError`` when
        instructions were still queued or unfetched (both cores end here)."""
        if pc < n or left:
            waiting = pc - sum(executed.values()) + (n - pc)
            raise UnfinishedWorkError(
                f"FINISH executed with {waiting} instruction(s) not yet executed "
                f"(queued per module: {left or {}}; not yet fetched: {n - pc}); on the board "
                "the host would read results before they are written")
        return RunResult(counters=dict(self.counters), insn_count=n, executed=executed,
                         leftover_tokens={k: v for k, v in tokens.items() if v})

    def _route_of(self, idx: int) -> str:
        insn = isa.decode_program(self._raw[idx].tobytes(), self.hw)[0]
        if isinstance(insn, MemInsn) and insn.opcode == Opcode.STORE:
            return "store"
        if isinstance(insn, MemInsn) and insn.memory_type in (MemType.INP, MemType.WGT):
            return "load"
        return "compute"

    def _prepare(self, raw):
        """Vectorised decode: per instruction its module, the token queues it pops and
        pushes, and whether it only carries tokens (then no instruction object is built)."""
        self._raw = np.asarray(raw, dtype=np.uint8).reshape(-1, isa.INSN_BYTES)
        mem = isa.decode_fields(raw, self.hw, ("mem",))["mem"]  # routing needs no other layout
        op, mt, xs = mem["opcode"], mem["memory_type"], mem["x_size"]
        route = np.where(op == Opcode.STORE, 2,
                         np.where((op == Opcode.LOAD) & ((mt == MemType.INP) | (mt == MemType.WGT)), 0, 1))
        pads = mem["y_pad_0"] | mem["y_pad_1"] | mem["x_pad_0"] | mem["x_pad_1"]
        # A load that zero-fills its padding writes SRAM even with x_size 0: INP always, ACC
        # on the revisions with load_pad_2d in compute (HwConfig.acc_load_pad).
        padded = mt == MemType.INP
        if self.hw.acc_load_pad:
            padded = padded | ((op == Opcode.LOAD) & (mt == MemType.ACC))
        noop = ((op == Opcode.LOAD) | (op == Opcode.STORE)) & (xs == 0) & (~padded | (pads == 0))
        noop |= op > Opcode.ALU  # unknown opcodes: compute only honours their flags
        flags = (mem["pop_prev"] | (mem["pop_next"] << 1) | (mem["push_prev"] << 2) | (mem["push_next"] << 3))
        table = {}
        for m_i, m in enumerate(MODULES):
            for fl in range(16):
                bits = dict(pop_prev=fl & 1, pop_next=fl >> 1 & 1, push_prev=fl >> 2 & 1, push_next=fl >> 3 & 1)
                table[m_i, fl] = (
                    tuple(q for (mm, f), q in POP_QUEUE.items() if mm == m and bits[f]),
                    tuple(q for (mm, f), q in PUSH_QUEUE.items() if mm == m and bits[f]))
        key = (route * 16 + flags).tolist()
        lookup = [table[k // 16, k % 16] for k in range(48)]
        need_give = [lookup[k] for k in key]
        rows = np.flatnonzero(~noop)
        objs: list = [None] * op.size
        # Programs repeat instructions (every tile issues the same GEMMs and ALUs): decode
        # each distinct one once; equal instructions share one (immutable) object.
        words = self._raw[rows].view("<u8").reshape(-1, 2)
        uniq, inverse = (np.unique(words, axis=0, return_inverse=True) if rows.size
                         else (words, np.zeros(0, dtype=np.intp)))
        decoded: list = []
        for lo in range(0, len(uniq), DECODE_CHUNK):  # bounds the decoder's temporary columns
            part = np.ascontiguousarray(uniq[lo:lo + DECODE_CHUNK]).view(np.uint8)
            decoded += isa.decode_program(part.ravel(), self.hw)
        for r, k in zip(rows.tolist(), inverse.ravel().tolist()):
            objs[r] = decoded[k]
        finish = (op == Opcode.FINISH).tolist()
        return objs, [MODULES[r] for r in route.tolist()], need_give, finish

    # ------------------------------------------------------------------ scheduling
    def _schedule(self, insns: list, routes: list, need_give: list, finish: list) -> RunResult:
        hw = self.hw
        # A module holds the instruction it is working on besides its FIFO's contents.
        cmd_capacity = hw.queues.insn_queue_depth + 1
        dep_capacity = hw.queues.dep_queue_depth
        queues: dict[str, deque[int]] = {m: deque() for m in MODULES}
        tokens = {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}
        executed = {m: 0 for m in MODULES}
        pc = 0  # fetch position
        n = len(insns)
        finished = False

        while not finished:
            progress = False
            while pc < n and len(queues[routes[pc]]) < cmd_capacity:
                queues[routes[pc]].append(pc)
                pc += 1
                progress = True
            for m in MODULES:
                q = queues[m]
                while q:
                    idx = q[0]
                    need, give = need_give[idx]
                    blocked = False
                    for qn in need:
                        if tokens[qn] == 0:
                            blocked = True
                    for qn in give:
                        if tokens[qn] >= dep_capacity:
                            blocked = True
                    if blocked:
                        break
                    for qn in need:
                        tokens[qn] -= 1
                    insn = insns[idx]
                    if insn is not None:
                        self._exec(idx, insn, m)
                    for qn in give:
                        tokens[qn] += 1
                    q.popleft()
                    executed[m] += 1
                    progress = True
                    if finish[idx]:
                        finished = True
                        break
                if finished:
                    break
            if finished:
                break
            if not progress:
                if pc >= n and not any(queues.values()):
                    raise MissingFinishError(
                        f"all {n} instructions executed and none of them was FINISH")
                raise TokenDeadlockError(self._deadlock_report(insns, queues, tokens, pc, routes,
                                                               cmd_capacity, dep_capacity))
        return self._finished(n, pc, executed, {m: len(q) for m, q in queues.items() if q}, tokens)

    def _deadlock_report(self, insns, queues, tokens, pc, routes, cmd_cap, dep_cap, raw=None) -> str:
        parts = []
        for m in MODULES:
            q = queues[m]
            if not q:
                parts.append(f"{m}: idle (queue empty)")
                continue
            insn = insns[q[0]] or isa.decode_program(self._raw[q[0]].tobytes(), self.hw)[0]
            need = [qn for flag, qn in
                    [(f, POP_QUEUE.get((m, f))) for f in ("pop_prev", "pop_next")]
                    if qn and getattr(insn, flag) and tokens[qn] == 0]
            full = [qn for flag, qn in
                    [(f, PUSH_QUEUE.get((m, f))) for f in ("push_prev", "push_next")]
                    if qn and getattr(insn, flag) and tokens[qn] >= dep_cap]
            why = ", ".join([f"waits for a {qn} token" for qn in need] +
                            [f"{qn} token queue full ({dep_cap})" for qn in full])
            parts.append(f"{m}: instruction {q[0]} ({format_insn(insn)}) {why}")
        if pc < len(insns):
            parts.append(f"fetch: stalled at instruction {pc} ({routes[pc]} command queue full, "
                         f"{cmd_cap} entries)")
        return "token deadlock: " + "; ".join(parts)

    # ------------------------------------------------------------------ execution
    def _exec(self, idx: int, insn: isa.Instruction, module: str) -> None:
        if isinstance(insn, MemInsn):
            try:
                if insn.opcode == Opcode.STORE:
                    self._store(idx, insn)
                else:
                    self._load(idx, insn)
            except DramRangeError as exc:
                raise DramRangeError(str(exc), insn_index=idx, field="dram_base") from None
        elif isinstance(insn, GemmInsn):
            self._gemm(idx, insn)
        elif isinstance(insn, AluInsn):
            self._alu(idx, insn)
        # FINISH and unknown opcodes only carry tokens.

    def _charge(self, idx: int, units: int) -> None:
        """Count an instruction's work against the run's cap, before doing it."""
        self._work += units
        if self._work > MAX_RUN_WORK:
            raise ResourceLimitError(
                "run", self._work, MAX_RUN_WORK, "the run's work (micro-op iterations plus SRAM "
                "elements moved) reached this instruction beyond the cap of one run", insn_index=idx)

    def _remember(self, insn, plan, elems: int):
        """Cache an index plan, starting the cache afresh when it would hold too much."""
        if self._plan_elems + elems > MAX_PLAN_CACHE_ELEMS:
            self._plans.clear()
            self._plan_elems = 0
        self._plans[insn] = plan
        self._plan_elems += elems
        return plan

    def _sram_check(self, idx: int, field: str, start: int, count: int, depth: int, buf: str) -> None:
        if start + count > depth:
            raise SramRangeError(
                f"{buf} SRAM elements [{start}, {start + count}) exceed the buffer depth {depth}",
                insn_index=idx, field=field)

    def _load(self, idx: int, insn: MemInsn) -> None:
        hw, s, c = self.hw, self.sram, self.counters
        mt, xs, ys = insn.memory_type, insn.x_size, insn.y_size
        if mt == MemType.INP:
            e = hw.inp_elem_bytes
            xw = insn.x_pad_0 + xs + insn.x_pad_1
            rows = insn.y_pad_0 + ys + insn.y_pad_1
            total = xw * rows
            self._sram_check(idx, "sram_base", insn.sram_base, total, hw.inp_buff_depth, "INP")
            if total == 0:
                return
            self._charge(idx, total)
            view = s.inp[insn.sram_base:insn.sram_base + total].reshape(rows, xw, hw.batch, hw.block_in)
            if total != xs * ys:
                view[...] = 0
            if xs and ys:
                data = self.dram.rows(insn.dram_base * e, ys, xs * e, insn.x_stride * e,
                                      "LOAD INP")
                view[insn.y_pad_0:insn.y_pad_0 + ys, insn.x_pad_0:insn.x_pad_0 + xs] = \
                    data.view(np.int8).reshape(ys, xs, hw.batch, hw.block_in)
            if xs:
                c["inp_load_nbytes"] += xs * ys * e
        elif mt == MemType.WGT:
            # HLS load_2d: WGT padding fields are ignored.
            e = hw.wgt_elem_bytes
            total = xs * ys
            self._sram_check(idx, "sram_base", insn.sram_base, total, hw.wgt_buff_depth, "WGT")
            if total == 0:
                return
            self._charge(idx, total)
            data = self.dram.rows(insn.dram_base * e, ys, xs * e, insn.x_stride * e,
                                  "LOAD WGT")
            s.wgt[insn.sram_base:insn.sram_base + total] = \
                data.view(np.int8).reshape(total, hw.block_out, hw.block_in)
            c["wgt_load_nbytes"] += total * e
        elif mt == MemType.UOP:
            # HLS: copies x_size micro-ops; y_size, x_stride and pads are ignored.
            self._sram_check(idx, "sram_base", insn.sram_base, xs, hw.uop_buff_depth, "UOP")
            if xs == 0:
                return
            self._charge(idx, xs)
            data = self.dram.view(insn.dram_base * 4, xs * 4, "LOAD UOP")
            s.uop[insn.sram_base:insn.sram_base + xs] = data.view("<u4")
            self._plans.clear()
            self._plan_elems = 0
            c["uop_load_nbytes"] += xs * ys * 4
        elif mt == MemType.ACC:
            # The OUT shadow is not updated.  Padding: HwConfig.acc_load_pad (docs/hardware.md)
            # - False: HLS load_2d (published bitstreams): pads ignored, rows packed densely;
            # - True: HLS load_pad_2d (tvm-vta 6096ca0 on): zero rows/columns as for INP.
            e = hw.acc_elem_bytes
            if hw.acc_load_pad:
                xp0, yp0 = insn.x_pad_0, insn.y_pad_0
                xw = xp0 + xs + insn.x_pad_1
                rows = yp0 + ys + insn.y_pad_1
            else:
                xp0 = yp0 = 0
                xw, rows = xs, ys
            total = xw * rows
            self._sram_check(idx, "sram_base", insn.sram_base, total, hw.acc_buff_depth, "ACC")
            if total == 0:
                return
            self._charge(idx, total)
            view = s.acc[insn.sram_base:insn.sram_base + total].reshape(rows, xw, hw.batch, hw.block_out)
            if total != xs * ys:
                view[...] = 0
            if xs and ys:
                data = self.dram.rows(insn.dram_base * e, ys, xs * e, insn.x_stride * e,
                                      "LOAD ACC")
                view[yp0:yp0 + ys, xp0:xp0 + xs] = \
                    np.ascontiguousarray(data).view("<i4").reshape(ys, xs, hw.batch, hw.block_out)
            if xs:
                c["acc_load_nbytes"] += xs * ys * e
        elif mt == MemType.ACC_8BIT:
            # The HLS compute module has no branch for ACC_8BIT: nothing moves.  The counter
            # still counts it at the ACC size, as the VTA simulator's profiler does.
            if xs:
                c["acc_load_nbytes"] += xs * ys * hw.acc_elem_bytes
        # LOAD of OUT or an unknown memory type: the compute module does nothing.

    def _store(self, idx: int, insn: MemInsn) -> None:
        # HLS store ignores memory_type and pads; its source is the OUT shadow buffer.
        hw = self.hw
        xs, ys = insn.x_size, insn.y_size
        total = xs * ys
        self._sram_check(idx, "sram_base", insn.sram_base, total, hw.out_buff_depth, "OUT")
        if total == 0:
            return
        self._charge(idx, total)
        e = hw.out_elem_bytes
        src = self.sram.out[insn.sram_base:insn.sram_base + total].view(np.uint8).reshape(ys, xs * e)
        pitch = insn.x_stride * e
        dst = self.dram.rows(insn.dram_base * e, ys, xs * e, pitch,
                             "STORE")
        if pitch >= xs * e or ys == 1:
            dst[...] = src
        else:  # overlapping rows: later rows win, as in the sequential hardware loop
            for r in range(ys):
                dst[r] = src[r]
        self.counters["out_store_nbytes"] += total * hw.batch * hw.block_out * hw.out_width // 8

    def _walk(self, idx: int, insn, specs):
        """Index grids of a GEMM/ALU instruction, shape (iter_out, iter_in, n_uop), in the
        sequential order of the hardware loops.  ``specs`` lists (uop field, factor prefix,
        buffer depth, buffer name); the range check is analytic (factors are unsigned)."""
        hw = self.hw
        bgn, end = insn.uop_bgn, insn.uop_end
        if end > hw.uop_buff_depth:
            raise SramRangeError(f"uop_end {end} exceeds the micro-op buffer depth {hw.uop_buff_depth}",
                                 insn_index=idx, field="uop_end")
        io, ii = insn.iter_out, insn.iter_in
        iterations = io * ii * (end - bgn)
        if iterations > self.max_insn_iterations:  # before any grid exists
            raise ResourceLimitError(
                "iter_out*iter_in*(uop_end-uop_bgn)", iterations, self.max_insn_iterations,
                f"{io} x {ii} x {end - bgn} micro-op iterations in one instruction", insn_index=idx)
        words = self.sram.uop[bgn:end].astype(np.int64)
        o = np.arange(io, dtype=np.int64)[:, None, None]
        i = np.arange(ii, dtype=np.int64)[None, :, None]
        grids = []
        for k, prefix, depth, buf in specs:
            lo, mask = self._uop_fields[k]
            base = (words >> lo) & mask
            f_out = getattr(insn, f"{prefix}_factor_out")
            f_in = getattr(insn, f"{prefix}_factor_in")
            top = int(base.max()) + (io - 1) * f_out + (ii - 1) * f_in
            grid = base[None, None, :] + o * f_out + i * f_in
            if top >= depth:
                flat = grid.ravel()
                j = int(np.argmax(flat >= depth))
                n_uop = end - bgn
                raise SramRangeError(
                    f"{buf} index {int(flat[j])} >= depth {depth} (micro-op {bgn + j % n_uop}, "
                    f"iteration out={j // (n_uop * ii)} in={(j // n_uop) % ii})",
                    insn_index=idx, field=f"uop.{('dst_idx', 'src_idx', 'wgt_idx')[k]}+{prefix}_factor")
            grids.append(grid)
        return grids

    def _dots(self, src: np.ndarray, wgt: np.ndarray, insn: GemmInsn) -> np.ndarray:
        """int32 products inp[src] . wgt[wgt]^T for every iteration, shape (o, i, u, B, BO).

        The loops along which the weight index does not change share one weight matrix, so
        they become the rows of one matrix product; the others become the batch axis."""
        s, hw = self.sram, self.hw
        io, ii, nu = src.shape
        b, bi, bo = hw.batch, hw.block_in, hw.block_out
        x = s.inp[src]  # (io, ii, nu, B, BI)
        if insn.wgt_factor_out == 0 and insn.wgt_factor_in == 0:
            # weight depends on the micro-op only: (nu) batches of (io*ii*B) rows
            xr = x.transpose(2, 0, 1, 3, 4).reshape(nu, io * ii * b, bi)
            w = s.wgt[wgt[0, 0]]  # (nu, BO, BI)
            p = np.matmul(xr, w.transpose(0, 2, 1)).reshape(nu, io, ii, b, bo).transpose(1, 2, 0, 3, 4)
        elif insn.wgt_factor_out == 0:
            # weight depends on (inner, uop): the outer loop gives the rows
            xr = x.transpose(1, 2, 0, 3, 4).reshape(ii * nu, io * b, bi)
            w = s.wgt[wgt[0].ravel()]  # (ii*nu, BO, BI)
            p = np.matmul(xr, w.transpose(0, 2, 1)).reshape(ii, nu, io, b, bo).transpose(2, 0, 1, 3, 4)
        elif insn.wgt_factor_in == 0:
            # weight depends on (outer, uop): the inner loop gives the rows
            xr = x.transpose(0, 2, 1, 3, 4).reshape(io * nu, ii * b, bi)
            w = s.wgt[wgt[:, 0].ravel()]  # (io*nu, BO, BI)
            p = np.matmul(xr, w.transpose(0, 2, 1)).reshape(io, nu, ii, b, bo).transpose(0, 2, 1, 3, 4)
        else:
            p = np.matmul(x.reshape(-1, b, bi), s.wgt[wgt.ravel()].transpose(0, 2, 1))
            p = p.reshape(io, ii, nu, b, bo)
        return p.astype(np.int32)

    def _gemm_plan(self, idx: int, insn: GemmInsn):
        """Everything about a GEMM that depends only on the instruction and the micro-ops:
        index grids, and how products are summed into distinct accumulators."""
        hw = self.hw
        dst, src, wgt = self._walk(idx, insn, [(0, "dst", hw.acc_buff_depth, "ACC"),
                                               (1, "src", hw.inp_buff_depth, "INP"),
                                               (2, "wgt", hw.wgt_buff_depth, "WGT")])
        if insn.reset_reg:
            return dst, src, wgt, None
        # Loops that do not move the destination accumulate into it: they are summed out
        # first (int32 sums wrap exactly like the hardware's accumulator).
        sum_in = insn.dst_factor_in == 0 and insn.iter_in > 1
        sum_out = insn.dst_factor_out == 0 and insn.iter_out > 1
        d = dst[:1 if sum_out else None, :1 if sum_in else None].ravel()
        sd = np.sort(d)
        if sd.size < 2 or bool(np.all(sd[1:] != sd[:-1])):
            scatter = (d, None, None)
        else:
            order = np.argsort(d, kind="stable")
            starts = np.flatnonzero(np.concatenate(([True], sd[1:] != sd[:-1])))
            scatter = (sd[starts], order, starts)
        return dst, src, wgt, (sum_in, sum_out, scatter)

    def _gemm(self, idx: int, insn: GemmInsn) -> None:
        hw, s = self.hw, self.sram
        n_uop = insn.uop_end - insn.uop_bgn
        if insn.iter_out == 0 or insn.iter_in == 0 or n_uop <= 0:
            return
        plan = self._plans.get(insn)
        if plan is None:
            plan = self._gemm_plan(idx, insn)
            self._remember(insn, plan, 3 * plan[0].size)
        dst, src, wgt, reduce = plan
        self._charge(idx, dst.size)
        p = self._dots(src, wgt, insn)
        if reduce is None:
            self._gemm_reset(dst.ravel(), p.reshape(-1, hw.batch, hw.block_out))
            return
        sum_in, sum_out, (uniq, order, starts) = reduce
        if sum_in:
            p = p.sum(axis=1, dtype=np.int32)
        if sum_out:
            p = p.sum(axis=0, dtype=np.int32)
        p = p.reshape(-1, hw.batch, hw.block_out)
        if order is None:
            s.acc[uniq] += p
        else:
            s.acc[uniq] += np.add.reduceat(p[order], starts, axis=0)
        s.out[uniq] = s.acc[uniq].astype(np.int8)
        self.counters["gemm_counter"] += dst.size

    def _gemm_reset(self, dst: np.ndarray, p: np.ndarray) -> None:
        # HLS: acc := 0, while the OUT shadow gets the low byte of (acc + product) as read
        # at that iteration: the old value on a first visit, 0 on later visits.
        s = self.sram
        uniq, first, counts = np.unique(dst, return_index=True, return_counts=True)
        last = dst.size - 1 - np.unique(dst[::-1], return_index=True)[1]
        old = np.where((counts == 1)[:, None, None], s.acc[uniq], 0).astype(np.int32)
        s.out[uniq] = (p[last] + old).astype(np.int8)
        s.acc[uniq] = 0

    def _alu(self, idx: int, insn: AluInsn) -> None:
        hw, s = self.hw, self.sram
        n_uop = insn.uop_end - insn.uop_bgn
        if insn.iter_out == 0 or insn.iter_in == 0 or n_uop <= 0:
            return
        op = insn.alu_opcode
        if op not in (AluOp.MIN, AluOp.MAX, AluOp.ADD, AluOp.SHR):
            raise UndefinedBehaviourError(
                f"ALU opcode {op} ({'MUL' if op == AluOp.MUL else 'unknown'}) has no datapath in "
                "the HLS bitstream: the accumulator is unchanged and the OUT buffer gets undefined "
                "values", insn_index=idx, field="alu_opcode")
        plan = self._plans.get(insn)
        if plan is None:
            dst, src = (g.ravel() for g in self._walk(
                idx, insn, [(0, "dst", hw.acc_buff_depth, "ACC"), (1, "src", hw.acc_buff_depth, "ACC")]))
            chunks = self._hazard_free_chunks(dst, None if insn.use_imm else src)
            plan = self._remember(insn, (dst, src, chunks), 2 * dst.size)
        dst, src, chunks = plan
        # a chunk is one numpy step: iterations that reuse an accumulator each take one
        self._charge(idx, dst.size + CHUNK_WORK * len(chunks))
        for lo, hi in chunks:
            d = dst[lo:hi]
            a = s.acc[d]
            b = np.int32(insn.imm) if insn.use_imm else s.acc[src[lo:hi]]
            r = _alu_op(op, a, b)
            s.acc[d] = r
            s.out[d] = r.astype(np.int8)
        self.counters["alu_counter"] += dst.size

    @staticmethod
    def _hazard_free_chunks(dst: np.ndarray, src: np.ndarray | None) -> list[tuple[int, int]]:
        """Split the iterations into runs in which no iteration reads an ACC entry written by
        an earlier iteration of the same run, so each run can execute as one vector step
        with the sequential meaning of the instruction."""
        n = dst.size
        order = np.argsort(dst, kind="stable")
        sd = dst[order]
        dup = bool(np.any(sd[1:] == sd[:-1]))
        raw = False
        if src is not None:
            pos = np.searchsorted(sd, src)
            pos = np.minimum(pos, n - 1)
            hit = sd[pos] == src
            # writer iteration of the first occurrence of that index
            writer = order[pos]
            raw = bool(np.any(hit & (writer < np.arange(n))))
        if not dup and not raw:
            return [(0, n)]
        chunks, start, written = [], 0, set()
        dl = dst.tolist()
        sl = src.tolist() if src is not None else None
        for k in range(n):
            if dl[k] in written or (sl is not None and sl[k] in written):
                chunks.append((start, k))
                start, written = k, set()
            written.add(dl[k])
        chunks.append((start, n))
        return chunks


def _alu_op(op: int, a: np.ndarray, b) -> np.ndarray:
    if op == AluOp.MIN:
        return np.minimum(a, b)
    if op == AluOp.MAX:
        return np.maximum(a, b)
    if op == AluOp.ADD:
        return (a.astype(np.int64) + b).astype(np.int32)  # wraps modulo 2^32
    # SHR: the HLS shifter takes the low 5 bits of the operand as a signed number (-16..15);
    # a negative amount shifts left (ap_int semantics), the result keeps 32 bits.
    sh = ((np.asarray(b, dtype=np.int64) & 31) ^ 16) - 16
    a64 = a.astype(np.int64)
    right = a64 >> np.maximum(sh, 0)
    left = a64 << np.maximum(-sh, 0)
    return np.where(sh >= 0, right, left).astype(np.int32)
