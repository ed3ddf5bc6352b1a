"""tsim: vtatune's cycle-level timing simulator of the VTA micro-architecture.

It executes the same binary program as fsim — the functional core is fsim's, called in the
order the timing model starts instructions, so results are bit-identical for every
correctly synchronised program — and times it at the level of instructions and memory
requests:

* four modules run concurrently: fetch (reads the stream in bursts), load, compute and
  store, each executing its in-order command queue (512 entries; fetch stalls when full);
* an instruction starts when its module is free, it has been fetched, and every token it
  pops is available; its pushes become visible when it completes;
* one shared 64-bit AXI path serves every memory request (instruction fetch, micro-op /
  input / weight / accumulator reads, output writes) one at a time: a request occupies it for
  a fixed latency plus its bytes at the sustained bandwidth;
* GEMM retires one micro-op iteration per cycle after a pipeline fill; ALU one per
  ``alu_ii`` cycles (2 on the HLS bitstream); token-only instructions take one cycle;
* the ARM host's work per call (launch, building instructions and micro-ops) is reported
  separately from accelerator cycles.

Every parameter is in the hardware JSON's ``timing`` section (docs/tsim.md), validated when
the configuration is loaded; what they cost is ``vtatune.sim.timing.Timing``.  A token
check with vector clocks flags data races: SRAM accesses of two modules that no chain of
dependence tokens orders.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


from ..errors import MissingFinishError, TokenDeadlockError, UnfinishedWorkError
from ..hardware import isa
from ..hardware.config import HwConfig
from ..hardware.isa import AluInsn, GemmInsn, MemInsn, MemType, Opcode
from .dram import Dram
from .fsim import MODULES, FunctionalSimulator, RunResult
from .timing import Timing

MOD_INDEX = {m: i for i, m in enumerate(MODULES)}  # load 0, compute 1, store 2


@dataclass
class ModuleStats:
    insns: int = 0
    busy: float = 0.0
    stall_token: float = 0.0
    stall_memory: float = 0.0
    stall_fetch: float = 0.0

    def as_dict(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in vars(self).items()}


@dataclass
class TimedResult(RunResult):
    cycles: float = 0.0
    accel_ms: float = 0.0
    host_ms: float = 0.0
    latency_ms: float = 0.0
    gops: float = 0.0
    modules: dict = field(default_factory=dict)
    races: list = field(default_factory=list)
    trace: list = field(default_factory=list)

    def timing_dict(self) -> dict:
        return {"cycles": round(self.cycles), "accel_ms": round(self.accel_ms, 4),
                "host_ms": round(self.host_ms, 4), "latency_ms": round(self.latency_ms, 4),
                "gops": round(self.gops, 3), "modules": self.modules, "races": len(self.races)}


class _RaceChecker:
    """Happens-before check of cross-module SRAM accesses with vector clocks carried by the
    dependence tokens.  Pairs checked: load writes / compute reads of INP and WGT, compute
    writes / store reads of the OUT buffer.  An access stays pending until the other module
    is known to have seen it complete; a program without tokens would keep every access
    pending and make each check scan them all, so at most ``MAX_PENDING`` are kept per kind
    (the oldest are forgotten: a race with them can go unreported, none is invented)."""

    MAX_PENDING = 1 << 12

    def __init__(self):
        self.vc = [[0, 0, 0] for _ in MODULES]  # vc[m][k]: instructions of k that m knows done
        self.seq = [0, 0, 0]
        self.pending: dict = {"inp": [], "wgt": [], "out_w": [], "out_r": [], "inp_r": [], "wgt_r": []}
        self.races: list[str] = []

    def clock_for_push(self, m: int) -> list:
        v = list(self.vc[m])
        v[m] = self.seq[m] + 1
        return v

    def merge(self, m: int, v: list) -> None:
        mine = self.vc[m]
        for k in range(3):
            if v[k] > mine[k]:
                mine[k] = v[k]

    def _check(self, idx: int, m: int, key: str, other: int, lo: int, hi: int, what: str) -> None:
        keep = []
        known = self.vc[m][other]
        for (a, b, seq, j) in self.pending[key]:
            if seq < self.vc[m][other] and seq < known:
                continue  # ordered: this module has seen that instruction complete
            if a < hi and lo < b and len(self.races) < 100:
                self.races.append(f"instruction {idx} ({MODULES[m]}) {what} SRAM [{lo}, {hi}) while "
                                  f"instruction {j} ({MODULES[other]}) may still access [{a}, {b}): "
                                  "no dependence token orders them")
            keep.append((a, b, seq, j))
        self.pending[key] = keep

    def access(self, idx: int, m: int, kind: str, buf: str, lo: int, hi: int) -> None:
        s = self.seq[m]
        L, C, S = 0, 1, 2
        if buf in ("inp", "wgt"):
            if kind == "w":      # load writes: earlier compute reads must be done (WAR)
                self._check(idx, m, buf + "_r", C, lo, hi, "writes")
                self._pend(buf, (lo, hi, s, idx))
            else:                # compute reads: earlier load writes must be done (RAW)
                self._check(idx, m, buf, L, lo, hi, "reads")
                self._pend(buf + "_r", (lo, hi, s, idx))
        else:  # OUT buffer
            if kind == "w":
                self._check(idx, m, "out_r", S, lo, hi, "writes")
                self._pend("out_w", (lo, hi, s, idx))
            else:
                self._check(idx, m, "out_w", C, lo, hi, "reads")
                self._pend("out_r", (lo, hi, s, idx))

    def _pend(self, key: str, entry: tuple) -> None:
        waiting = self.pending[key]
        waiting.append(entry)
        if len(waiting) > self.MAX_PENDING:
            del waiting[:len(waiting) - self.MAX_PENDING // 2]

    def done(self, m: int) -> None:
        self.seq[m] += 1
        self.vc[m][m] = self.seq[m]


class TimingSimulator(FunctionalSimulator):
    """Cycle-level timing model on top of fsim's functional core."""

    name = "tsim"

    def __init__(self, hw: HwConfig | None = None, dram: Dram | None = None, *,
                 functional: bool = True, trace: bool = False, check_races: bool = True):
        super().__init__(hw, dram)
        self.timing = Timing.from_hw(self.hw)
        self.functional = functional
        self.want_trace = trace
        self.check_races = check_races

    # ------------------------------------------------------------------ costs
    def _bus(self, t: float, nbytes: int, write: bool = False) -> tuple[float, float]:
        """One memory request issued at ``t``: (completion time, cycles spent waiting for
        the bus)."""
        start = max(t, self._bus_free)
        end = self.timing.request_end(start, nbytes, write)
        self._bus_free = end
        return end, start - t

    def _mem_time(self, insn: MemInsn, t: float) -> tuple[float, float]:
        hw, tm = self.hw, self.timing
        mt, xs, ys = insn.memory_type, insn.x_size, insn.y_size
        wait = 0.0
        if insn.opcode == Opcode.STORE:
            for _ in range(ys):
                t, w = self._bus(t, xs * hw.out_elem_bytes, write=True)
                wait += w
            return t, wait
        if mt == MemType.UOP:
            t, w = self._bus(t, xs * 4)
            return t, w
        ebytes = {MemType.INP: hw.inp_elem_bytes, MemType.WGT: hw.wgt_elem_bytes,
                  MemType.ACC: hw.acc_elem_bytes}.get(mt)
        if ebytes is None:
            return t + tm.nop_cycles, 0.0
        for _ in range(ys):
            t, w = self._bus(t, xs * ebytes)
            wait += w
        if mt == MemType.INP:  # zero padding is written into SRAM without the bus
            xw = insn.x_pad_0 + xs + insn.x_pad_1
            t += (insn.y_pad_0 + insn.y_pad_1) * xw + ys * (insn.x_pad_0 + insn.x_pad_1)
        return t, wait

    def _duration(self, insn, t: float) -> tuple[float, float]:
        if isinstance(insn, MemInsn):
            return self._mem_time(insn, t + self.timing.insn_overhead)
        return self.timing.insn_end(insn, t), 0.0  # GEMM, ALU, FINISH, unknown opcodes, NOPs

    # ------------------------------------------------------------------ race bookkeeping
    def _accesses(self, idx: int, insn, module: str):
        if insn is None:
            return
        rc = self._rc
        m = MOD_INDEX[module]
        if isinstance(insn, MemInsn):
            if insn.opcode == Opcode.STORE:
                rc.access(idx, m, "r", "out", insn.sram_base, insn.sram_base + insn.x_size * insn.y_size)
            elif insn.memory_type == MemType.INP:
                total = (insn.x_pad_0 + insn.x_size + insn.x_pad_1) * (insn.y_pad_0 + insn.y_size + insn.y_pad_1)
                rc.access(idx, m, "w", "inp", insn.sram_base, insn.sram_base + total)
            elif insn.memory_type == MemType.WGT:
                rc.access(idx, m, "w", "wgt", insn.sram_base, insn.sram_base + insn.x_size * insn.y_size)
            return
        if isinstance(insn, (GemmInsn, AluInsn)):
            plan = self._plans.get(insn)
            if plan is None:
                return  # nothing executed (empty loops)
            spans = self._spans.get(insn)
            if spans is None:
                dst, src = plan[0], plan[1]
                spans = [("w", "out", int(dst.min()), int(dst.max()) + 1)]
                # A reset GEMM's INP/WGT reads only feed the OUT shadow of accumulators that
                # later GEMM/ALU writes overwrite before any STORE: not a data dependence.
                if isinstance(insn, GemmInsn) and not insn.reset_reg:
                    wgt = plan[2]
                    spans += [("r", "inp", int(src.min()), int(src.max()) + 1),
                              ("r", "wgt", int(wgt.min()), int(wgt.max()) + 1)]
                self._spans[insn] = spans
            for kind, buf, lo, hi in spans:
                rc.access(idx, m, kind, buf, lo, hi)

    # ------------------------------------------------------------------ scheduling
    def _schedule(self, insns: list, routes: list, need_give: list, finish: list) -> TimedResult:
        hw, tm = self.hw, self.timing
        n = len(insns)
        cap = hw.queues.insn_queue_depth + 1
        dep_cap = hw.queues.dep_queue_depth
        self._bus_free = 0.0
        self._rc = _RaceChecker()
        self._spans = {}
        queues = {m: deque() for m in MODULES}
        fetched_at = [0.0] * n
        free_at = {m: 0.0 for m in MODULES}
        tokens = {q: deque() for q in ("l2g", "g2l", "s2g", "g2s")}  # (avail time, clock)
        stats = {m: ModuleStats() for m in ("fetch",) + MODULES}
        executed = {m: 0 for m in MODULES}
        trace = [] if self.want_trace else None
        fetch_free, pc = 0.0, 0
        end_time, finished = 0.0, False
        # when a full queue frees a slot: the start time of the instruction that left it
        while not finished:
            best = None
            # fetch: next burst, if the target queue of the next instruction has room
            if pc < n and len(queues[routes[pc]]) < cap:
                best = (fetch_free, -1, None)
            for mi, m in enumerate(MODULES):
                q = queues[m]
                if not q:
                    continue
                idx = q[0]
                need, give = need_give[idx]
                if any(not tokens[qn] for qn in need) or any(len(tokens[qn]) >= dep_cap for qn in give):
                    continue
                ready_tok = max((tokens[qn][0][0] for qn in need), default=0.0)
                start = max(free_at[m], fetched_at[idx], ready_tok)
                if best is None or start < best[0]:
                    best = (start, mi, idx)
            if best is None:
                if pc >= n and not any(queues.values()):
                    raise MissingFinishError(f"all {n} instructions executed and none of them was FINISH")
                raise TokenDeadlockError(self._deadlock_report(
                    insns, queues, {k: len(v) for k, v in tokens.items()}, pc, routes, cap, dep_cap))
            start, mi, idx = best
            if mi < 0:  # ---- fetch a burst
                k, first = 0, pc
                while pc < n and k < tm.fetch_burst and len(queues[routes[pc]]) < cap:
                    queues[routes[pc]].append(pc)
                    pc += 1
                    k += 1
                done, wait = self._bus(start, k * isa.INSN_BYTES)
                for i in range(first, pc):
                    fetched_at[i] = done
                st = stats["fetch"]
                st.insns += k
                st.busy += done - start - wait
                st.stall_memory += wait
                if trace is not None:
                    trace.append(("fetch", f"fetch {first}..{pc - 1}", start, done))
                fetch_free = done
                continue
            m = MODULES[mi]
            need, give = need_give[idx]
            st = stats[m]
            waited_tok = start - max(free_at[m], fetched_at[idx])
            if fetched_at[idx] > free_at[m]:
                st.stall_fetch += fetched_at[idx] - free_at[m]
            st.stall_token += max(0.0, waited_tok)
            insn = insns[idx]
            for qn in need:
                _, clock = tokens[qn].popleft()
                if self.check_races:
                    self._rc.merge(mi, clock)
            if isinstance(insn, MemInsn):
                self._charge(idx, insn.y_size)  # _mem_time times it row by row
            end, wait = self._duration(insn, start)
            if insn is not None and self.functional:
                self._exec(idx, insn, m)
            elif insn is not None:
                if isinstance(insn, MemInsn) and insn.memory_type == MemType.UOP and insn.opcode == Opcode.LOAD:
                    self._exec(idx, insn, m)  # like the profiler's skip mode: micro-ops still load
                else:
                    self._count_only(insn)
                if isinstance(insn, (GemmInsn, AluInsn)) and self.check_races:
                    self._plan_only(idx, insn)
            if self.check_races:
                self._accesses(idx, insn, m)
            for qn in give:
                tokens[qn].append((end, self._rc.clock_for_push(mi) if self.check_races else None))
            if self.check_races:
                self._rc.done(mi)
            queues[m].popleft()
            executed[m] += 1
            st.insns += 1
            st.busy += end - start - wait
            st.stall_memory += wait
            free_at[m] = end
            end_time = max(end_time, end)
            if trace is not None:
                trace.append((m, self._label(idx, insn), start, end))
            if finish[idx]:
                finished = True
        left = {m: len(q) for m, q in queues.items() if q}
        if pc < n or left:
            raise UnfinishedWorkError(f"FINISH executed with instructions not yet executed "
                                      f"(queued per module: {left}; not yet fetched: {n - pc})")
        return self._result(n, executed, tokens, stats, end_time, trace)

    def _count_only(self, insn) -> None:
        """Timing-only mode: the profiler counters without moving data (fsim's formulas)."""
        hw, c = self.hw, self.counters
        if isinstance(insn, MemInsn):
            xs, ys = insn.x_size, insn.y_size
            if not xs:
                return
            if insn.opcode == Opcode.STORE:
                c["out_store_nbytes"] += xs * ys * hw.batch * hw.block_out * hw.out_width // 8
            else:
                key = {MemType.INP: ("inp_load_nbytes", hw.inp_elem_bytes),
                       MemType.WGT: ("wgt_load_nbytes", hw.wgt_elem_bytes),
                       MemType.ACC: ("acc_load_nbytes", hw.acc_elem_bytes),
                       MemType.ACC_8BIT: ("acc_load_nbytes", hw.acc_elem_bytes),
                       MemType.UOP: ("uop_load_nbytes", 4)}.get(insn.memory_type)
                if key:
                    c[key[0]] += xs * ys * key[1]
        elif isinstance(insn, (GemmInsn, AluInsn)):
            n = max(0, insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            if isinstance(insn, AluInsn):
                c["alu_counter"] += n
            elif not insn.reset_reg:
                c["gemm_counter"] += n

    def _plan_only(self, idx: int, insn) -> None:
        """Timing-only mode: build the index plan (for the race check), move no data."""
        if insn in self._plans or insn.iter_out == 0 or insn.iter_in == 0 or insn.uop_end <= insn.uop_bgn:
            return
        hw = self.hw
        if isinstance(insn, GemmInsn):
            plan = self._gemm_plan(idx, insn)
            self._remember(insn, plan, 3 * plan[0].size)
        else:
            dst, src = (g.ravel() for g in self._walk(
                idx, insn, [(0, "dst", hw.acc_buff_depth, "ACC"), (1, "src", hw.acc_buff_depth, "ACC")]))
            plan = self._remember(insn, (dst, src, [(0, dst.size)]), 2 * dst.size)
        self._charge(idx, plan[0].size)

    @staticmethod
    def _label(idx: int, insn) -> str:
        from ..hardware.disasm import format_insn
        return f"{idx}: " + (format_insn(insn) if insn is not None else "NOP")

    def _result(self, n, executed, tokens, stats, end_time, trace) -> TimedResult:
        hw, tm = self.hw, self.timing
        accel_ms = tm.accel_ms(end_time)
        host_ms = tm.host_ms(n, self.counters["uop_load_nbytes"] // 4)
        latency = accel_ms + host_ms
        ops = 2 * self.counters["gemm_counter"] * hw.batch * hw.block_in * hw.block_out
        res = TimedResult(counters=dict(self.counters), insn_count=n, executed=executed,
                          leftover_tokens={k: len(v) for k, v in tokens.items() if v},
                          cycles=end_time, accel_ms=accel_ms, host_ms=host_ms, latency_ms=latency,
                          gops=ops / (latency * 1e6) if latency > 0 else 0.0,
                          modules={m: s.as_dict() for m, s in stats.items()},
                          races=list(self._rc.races))
        if trace is not None:
            res.trace = trace
        return res


def chrome_trace(result: TimedResult, freq_mhz: float) -> dict:
    """Chrome-trace / Perfetto JSON: one row per module, one slice per instruction."""
    tids = {"fetch": 0, "load": 1, "compute": 2, "store": 3}
    events = [{"name": "thread_name", "ph": "M", "pid": 0, "tid": t, "args": {"name": m}}
              for m, t in tids.items()]
    for module, name, start, end in result.trace:
        events.append({"name": name, "ph": "X", "pid": 0, "tid": tids[module],
                       "ts": start / freq_mhz, "dur": max(end - start, 0.0) / freq_mhz})
    return {"traceEvents": events, "displayTimeUnit": "ns"}
