"""tsim: vtatune's cycle-level timing simulator of the VTA micro-architecture.

It executes the same binary program as fsim — the functional core is fsim's, called in the
order the timing model starts instructions, so results are bit-identical for every
correctly synchronised program — and times it at the level of instructions and memory
requests:

* four modules run concurrently: fetch (reads the stream in bursts), load, compute and
  store, each executing its in-order command queue (512 entries; fetch stalls when full);
* an instruction starts when its module is free, it has been fetched, and every token it
  pops is available; its pushes become visible when it completes;
* every DMA row (one AXI request; HLS copies a 2-D transfer row by row) waits the memory
  latency, then streams its beats; the beats of all readers (fetch, micro-op, input,
  weight, accumulator loads) share one read data channel, the store module has the write
  channel; rows split into AXI bursts (at most ``axi_burst_beats``, never across 4 KiB) and
  a burst that finds no free outstanding slot waits for a round trip;
* the load module's own work: load_pad_2d's per-row cost and zero-fill runs (one element
  per cycle) for INP, weight data entering its SRAM at one beat per ``wgt_beat_cycles``;
* GEMM retires one micro-op iteration per cycle after a pipeline fill, plus a restart per
  (outer, inner) loop iteration; ALU one per ``alu_ii`` cycles (2 on the HLS bitstream);
  token-only instructions take one cycle;
* the ARM host's work per call (launch, building instructions and micro-ops) is reported
  separately from accelerator cycles.

Every parameter is in the hardware JSON's ``timing`` section (docs/tsim.md), validated when
the configuration is loaded; what they cost is ``vtatune.sim.timing.Timing`` (instruction
features -> cycles); ``schedule`` is the timing loop, shared with the calibration's replay
(``vtatune.sim.calibration``).  A token check with vector clocks flags data races: SRAM
accesses of two modules that no chain of dependence tokens orders.
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
from .timing import InsnCosts, Timing, insn_features

MOD_INDEX = {m: i for i, m in enumerate(MODULES)}  # load 0, compute 1, store 2
TOKENS = ("l2g", "g2l", "s2g", "g2s")
TOKEN_INDEX = {q: i for i, q in enumerate(TOKENS)}


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


class _Stuck(Exception):
    """No module can start and FINISH has not run: the scheduler's state for the report."""

    def __init__(self, pc: int, queues: dict, tokens: dict):
        super().__init__("stuck")
        self.pc, self.queues, self.tokens = pc, queues, tokens


@dataclass
class Schedule:
    """What ``schedule`` returns: the cycle FINISH completed, per-module executed counts,
    tokens left, instructions not yet fetched / still queued, and optional statistics and
    trace ``(module, first index, last index, start, end)``."""

    end: float
    executed: dict
    tokens: dict
    pc: int
    left: dict
    stats: dict | None = None
    trace: list | None = None


def schedule(tm: Timing, mods: list, need_give: list, finish: list, costs: InsnCosts, *,
             cap: int, dep_cap: int, on_start=None, want_stats: bool = False,
             want_trace: bool = False) -> Schedule:
    """Time a stream: ``mods[i]`` is instruction i's module (0 load, 1 compute, 2 store),
    ``need_give[i]`` the token queues (indices into ``TOKENS``) it pops and pushes,
    ``finish[i]`` whether it is FINISH, ``costs`` its cycle costs (``Timing.costs``).

    Fetch reads the stream in bursts of ``tm.fetch_burst`` instructions into the command
    queues (``cap`` entries each, the held instruction included) and stalls while the next
    instruction's queue is full.  Each module runs its queue in order; an instruction starts
    when its module is free, it has been fetched and every token it pops is there (a full
    token queue — ``dep_cap`` — blocks a push); its pushes appear when it ends.  Every DMA
    read (fetch, loads) puts its bytes on one shared read data channel, in start order.
    ``on_start(i, module, popped payloads)`` runs when instruction i starts and returns the
    payload of the tokens it pushes (tsim's functional core and race check)."""
    n = len(mods)
    local, rlead, rbytes = costs.local.tolist(), costs.rlead.tolist(), costs.rbytes.tolist()
    bw = tm.bus_bytes_per_cycle
    fburst = tm.fetch_burst
    fetch_cost = {}  # instructions in the burst -> (lead, alone)
    queues = (deque(), deque(), deque())
    fetched = [0.0] * n
    free = [0.0, 0.0, 0.0]
    tok_t = (deque(), deque(), deque(), deque())  # when each queued token is available
    tok_p = (deque(), deque(), deque(), deque())  # its payload (race-check clock)
    executed = [0, 0, 0]
    stats = [[0, 0.0, 0.0, 0.0, 0.0] for _ in range(4)] if want_stats else None  # load, compute, store, fetch
    trace = [] if want_trace else None
    rchan = 0.0  # when the shared read data channel is next free
    fetch_free, pc, end_time = 0.0, 0, 0.0
    modules = (0, 1, 2)
    while True:
        best_t, best_m = -1.0, -2
        if pc < n and len(queues[mods[pc]]) < cap:
            best_t, best_m = fetch_free, -1
        for mi in modules:
            q = queues[mi]
            if not q:
                continue
            idx = q[0]
            need, give = need_give[idx]
            t = free[mi]
            ft = fetched[idx]
            if ft > t:
                t = ft
            for qn in need:
                tq = tok_t[qn]
                if not tq:
                    break
                if tq[0] > t:
                    t = tq[0]
            else:
                for qn in give:
                    if len(tok_t[qn]) >= dep_cap:
                        break
                else:
                    if best_m == -2 or t < best_t:
                        best_t, best_m = t, mi
        if best_m == -2:
            raise _Stuck(pc, {m: deque(q) for m, q in zip(MODULES, queues)},
                         {q: len(t) for q, t in zip(TOKENS, tok_t)})
        t = best_t
        if best_m < 0:  # ---- fetch one burst
            first, k = pc, 0
            while pc < n and k < fburst and len(queues[mods[pc]]) < cap:
                queues[mods[pc]].append(pc)
                pc += 1
                k += 1
            nbytes = k * isa.INSN_BYTES
            fc = fetch_cost.get(k)
            if fc is None:
                fc = fetch_cost[k] = tm.fetch_cycles(nbytes)
            lead, alone = fc
            s = t + lead
            if rchan > s:
                s = rchan
            rchan = s + nbytes / bw
            done = t + alone
            if rchan > done:
                done = rchan
            for i in range(first, pc):
                fetched[i] = done
            if stats is not None:
                st = stats[3]
                st[0] += k
                st[1] += alone
                st[3] += done - t - alone
            if trace is not None:
                trace.append(("fetch", first, pc - 1, t, done))
            fetch_free = done
            continue
        mi = best_m
        idx = queues[mi].popleft()
        need, give = need_give[idx]
        if on_start is not None:
            popped = [tok_p[qn].popleft() for qn in need]
            for qn in need:
                tok_t[qn].popleft()
            payload = on_start(idx, mi, popped)
        else:
            for qn in need:
                tok_t[qn].popleft()
                tok_p[qn].popleft()
            payload = None
        end = t + local[idx]
        wait = 0.0
        nb = rbytes[idx]
        if nb:
            s = t + rlead[idx]
            if rchan > s:
                s = rchan
            rchan = s + nb / bw
            if rchan > end:
                wait = rchan - end
                end = rchan
        for qn in give:
            tok_t[qn].append(end)
            tok_p[qn].append(payload)
        if stats is not None:
            st = stats[mi]
            ready = free[mi] if free[mi] > fetched[idx] else fetched[idx]
            if fetched[idx] > free[mi]:
                st[4] += fetched[idx] - free[mi]
            st[0] += 1
            st[1] += end - t - wait
            st[2] += t - ready if t > ready else 0.0
            st[3] += wait
        if trace is not None:
            trace.append((MODULES[mi], idx, idx, t, end))
        free[mi] = end
        executed[mi] += 1
        if end > end_time:
            end_time = end
        if finish[idx]:
            break
    out_stats = None
    if stats is not None:
        out_stats = {name: ModuleStats(st[0], st[1], st[2], st[3], st[4])
                     for name, st in zip(("load", "compute", "store", "fetch"), stats)}
        out_stats = {"fetch": out_stats["fetch"], **{m: out_stats[m] for m in MODULES}}
    return Schedule(end_time, dict(zip(MODULES, executed)), {q: len(t) for q, t in zip(TOKENS, tok_t)},
                    pc, {m: len(q) for m, q in zip(MODULES, queues)}, out_stats, trace)


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
        self._rc = _RaceChecker()
        self._spans = {}
        costs = tm.costs(insn_features(insns, hw))
        mods = [MOD_INDEX[m] for m in routes]
        ng = [(tuple(TOKEN_INDEX[q] for q in need), tuple(TOKEN_INDEX[q] for q in give))
              for need, give in need_give]
        check, functional = self.check_races, self.functional
        rc = self._rc

        def start(idx: int, mi: int, popped: list):
            insn = insns[idx]
            m = MODULES[mi]
            if check:
                for clock in popped:
                    rc.merge(mi, clock)
            if isinstance(insn, MemInsn):
                self._charge(idx, insn.y_size)
            if insn is not None and functional:
                self._exec(idx, insn, m)
            elif insn is not None:
                if isinstance(insn, MemInsn) and insn.memory_type == MemType.UOP and insn.opcode == Opcode.LOAD:
                    self._exec(idx, insn, m)  # like the profiler's skip mode: micro-ops still load
                else:
                    self._count_only(insn)
                if isinstance(insn, (GemmInsn, AluInsn)) and check:
                    self._plan_only(idx, insn)
            if not check:
                return None
            self._accesses(idx, insn, m)
            clock = rc.clock_for_push(mi)
            rc.done(mi)
            return clock

        try:
            sched = schedule(tm, mods, ng, finish, costs, cap=hw.queues.insn_queue_depth + 1,
                             dep_cap=hw.queues.dep_queue_depth, on_start=start,
                             want_stats=True, want_trace=self.want_trace)
        except _Stuck as stuck:
            if stuck.pc >= n and not any(stuck.queues.values()):
                raise MissingFinishError(f"all {n} instructions executed and none of them was FINISH") from None
            raise TokenDeadlockError(self._deadlock_report(
                insns, stuck.queues, stuck.tokens, stuck.pc, routes, hw.queues.insn_queue_depth + 1,
                hw.queues.dep_queue_depth)) from None
        left = {m: k for m, k in sched.left.items() if k}
        if sched.pc < n or left:
            raise UnfinishedWorkError(f"FINISH executed with instructions not yet executed "
                                      f"(queued per module: {left}; not yet fetched: {n - sched.pc})")
        trace = None
        if sched.trace is not None:
            trace = [(m, f"fetch {a}..{b}" if m == "fetch" else self._label(a, insns[a]), t0, t1)
                     for m, a, b, t0, t1 in sched.trace]
        return self._result(n, sched.executed, sched.tokens, sched.stats, sched.end, trace)

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
                          leftover_tokens={k: v for k, v in tokens.items() if v},
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
