"""tsim's cost model: what the ``timing`` parameters of a hardware configuration mean.

The parameters themselves (names, defaults, valid ranges) are data of the hardware file,
:class:`vtatune.hardware.timing_params.TimingParams` (``hw.timing``), validated when the
configuration is loaded; this module turns them into cycles and host time (docs/tsim.md).

A program's instructions are first reduced to parameter-free *features*
(:class:`InsnFeatures`: DMA rows, bytes, padding, loop iterations ...); ``Timing.costs``
turns the features into per-instruction cycle costs for one parameter set.  tsim schedules
those costs; the calibration re-costs the same features for every candidate parameter set
without simulating the program again.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..hardware.config import HwConfig
from ..hardware.isa import AluInsn, GemmInsn, MemInsn, MemType, Opcode
from ..hardware.timing_params import TimingParams

#: Instruction kinds of the cost model.
NOP, INP, WGT, UOP, ACC, STORE, GEMM, ALU, OTHER_MEM = range(9)
#: Kinds that read DRAM through the shared read channel.
READ_KINDS = (INP, WGT, UOP, ACC)
AXI_BOUNDARY = 4096  # an AXI burst never crosses a 4 KiB boundary


@dataclass
class InsnFeatures:
    """Parameter-free description of every instruction of a stream (numpy arrays, one entry
    per instruction): its kind, DMA rows and bytes, the DRAM layout of its rows (for burst
    splitting), INP zero padding, and GEMM/ALU loop iterations."""

    kind: np.ndarray        # NOP, INP, WGT, UOP, ACC, STORE, GEMM, ALU, OTHER_MEM
    rows: np.ndarray        # DMA rows (one AXI request each)
    nbytes: np.ndarray      # bytes moved over the bus
    row_addr: np.ndarray    # DRAM byte address of the first row
    row_stride: np.ndarray  # DRAM bytes between rows
    pad_elems: np.ndarray   # zero elements written into SRAM (INP, padded ACC)
    pad_runs: np.ndarray    # non-empty zero-fill loops (padded loads)
    padded: np.ndarray      # the load goes through load_pad_2d (INP; ACC with acc_load_pad)
    pairs: np.ndarray       # GEMM/ALU (outer, inner) loop iterations (0 if no micro-op)
    uops: np.ndarray        # GEMM/ALU micro-op iterations

    def __len__(self) -> int:
        return int(self.kind.size)

    def bursts(self, burst_bytes: int) -> np.ndarray:
        """AXI bursts per instruction: each row split at ``burst_bytes`` and at 4 KiB
        boundaries (memoised per burst size).  Exact for the first ``MAX_BURST_ROWS`` rows
        of a stream; rows beyond (no compiled program has that many, docs/tsim.md) count
        one 4 KiB crossing per 4 KiB of row."""
        memo = self.__dict__.setdefault("_bursts", {})
        got = memo.get(burst_bytes)
        if got is None:
            got = np.zeros(len(self), dtype=np.int64)
            per_row = np.where(self.rows > 0, self.nbytes // np.maximum(self.rows, 1), 0)
            idx = np.flatnonzero(per_row > 0)
            rows = self.rows[idx]
            exact = idx[np.cumsum(rows) <= MAX_BURST_ROWS]
            if exact.size:
                r = self.rows[exact]
                owner = np.repeat(np.arange(exact.size), r)
                first = np.cumsum(r) - r
                k = np.arange(int(r.sum())) - np.repeat(first, r)
                start = self.row_addr[exact][owner] + k * self.row_stride[exact][owner]
                got[exact] = np.bincount(owner, _bursts_of_rows(start, per_row[exact][owner], burst_bytes),
                                         minlength=exact.size).astype(np.int64)
            rest = np.setdiff1d(idx, exact)
            n = per_row[rest]
            got[rest] = self.rows[rest] * (-(-n // burst_bytes) + n // AXI_BOUNDARY)
            memo[burst_bytes] = got
        return got


#: Rows of a stream whose bursts ``InsnFeatures.bursts`` counts exactly.
MAX_BURST_ROWS = 1 << 22


def _bursts_of_rows(start: np.ndarray, nbytes: np.ndarray, burst_bytes: int) -> np.ndarray:
    """Bursts of each row [start, start + nbytes): cut at 4 KiB boundaries, then into
    pieces of at most ``burst_bytes``."""
    end = start + nbytes
    first_b = (start // AXI_BOUNDARY + 1) * AXI_BOUNDARY
    last_b = ((end - 1) // AXI_BOUNDARY) * AXI_BOUNDARY
    crossing = end > first_b
    plain = -(-nbytes // burst_bytes)
    head = -(-(first_b - start) // burst_bytes)
    middle = np.maximum(last_b - first_b, 0) // AXI_BOUNDARY * (-(-AXI_BOUNDARY // burst_bytes))
    tail = -(-(end - last_b) // burst_bytes)
    return np.where(crossing, head + middle + tail, plain)


def row_bursts(addr: int, stride: int, nbytes: int, rows: int, burst_bytes: int) -> int:
    """AXI bursts of ``rows`` DMA rows of ``nbytes`` each, the first at byte ``addr``, the
    next ``stride`` bytes further: a row is cut at every 4 KiB boundary and into pieces of
    at most ``burst_bytes`` (a loop: the reference ``InsnFeatures.bursts`` is checked
    against)."""
    total = 0
    for r in range(rows):
        a = addr + r * stride
        end = a + nbytes
        while a < end:
            seg_end = min(end, (a // AXI_BOUNDARY + 1) * AXI_BOUNDARY)
            total += -(-(seg_end - a) // burst_bytes)
            a = seg_end
    return total


def insn_features(insns, hw: HwConfig) -> InsnFeatures:
    """The features of a decoded stream (``None`` entries are token-only NOPs, as
    ``FunctionalSimulator._prepare`` returns them)."""
    n = len(insns)
    cols = {f.name: np.zeros(n, dtype=np.int64) for f in fields(InsnFeatures)}
    kind, rows, nbytes, addr, stride = (cols[k] for k in ("kind", "rows", "nbytes", "row_addr", "row_stride"))
    pad_elems, pad_runs, padded, pairs, uops = (cols[k] for k in ("pad_elems", "pad_runs", "padded", "pairs", "uops"))
    ebytes = {MemType.INP: hw.inp_elem_bytes, MemType.WGT: hw.wgt_elem_bytes,
              MemType.ACC: hw.acc_elem_bytes, MemType.UOP: 4}
    mkind = {MemType.INP: INP, MemType.WGT: WGT, MemType.ACC: ACC, MemType.UOP: UOP}
    for i, insn in enumerate(insns):
        if insn is None:
            continue  # NOP (kind 0)
        if isinstance(insn, MemInsn):
            if insn.opcode == Opcode.STORE:
                k, eb = STORE, hw.out_elem_bytes
            else:
                k, eb = mkind.get(insn.memory_type, OTHER_MEM), ebytes.get(insn.memory_type, 0)
            kind[i] = k
            if k == OTHER_MEM:
                continue
            ys = 1 if k == UOP else insn.y_size  # HLS copies one run of micro-ops
            rows[i], nbytes[i] = ys, ys * insn.x_size * eb
            addr[i], stride[i] = insn.dram_base * eb, insn.x_stride * eb
            if k == INP or (k == ACC and hw.acc_load_pad):
                padded[i] = 1
                xw = insn.x_pad_0 + insn.x_size + insn.x_pad_1
                pad_elems[i] = (insn.y_pad_0 + insn.y_pad_1) * xw + ys * (insn.x_pad_0 + insn.x_pad_1)
                pad_runs[i] = ((insn.y_pad_0 > 0) + (insn.y_pad_1 > 0)
                               + ys * ((insn.x_pad_0 > 0) + (insn.x_pad_1 > 0)))
        elif isinstance(insn, (GemmInsn, AluInsn)):
            kind[i] = GEMM if isinstance(insn, GemmInsn) else ALU
            nu = max(0, insn.uop_end - insn.uop_bgn)
            it = insn.iter_out * insn.iter_in
            pairs[i], uops[i] = (it if nu else 0), nu * it
        # FINISH and unknown opcodes: kind NOP
    return InsnFeatures(**cols)


@dataclass
class InsnCosts:
    """Per-instruction costs of one parameter set (numpy float arrays): ``local`` — cycles
    from the instruction's start to its end if the shared read channel were free; for reads,
    ``rlead`` — cycles from the start to the first beat, and ``rbytes`` — bytes the
    instruction puts on the shared read channel."""

    local: np.ndarray
    rlead: np.ndarray
    rbytes: np.ndarray


class Timing:
    """Cycle costs of instructions and memory requests, and the host's time per call, for
    one configuration.  Every parameter of ``params`` is also an attribute."""

    mem_latency: int
    mem_write_latency: int
    bus_bytes_per_cycle: float
    axi_burst_beats: int
    axi_outstanding: int
    fetch_burst: int
    wgt_beat_cycles: float
    store_beat_cycles: float
    inp_row_cycles: int
    pad_run_cycles: int
    gemm_fill: int
    gemm_loop_cycles: int
    alu_ii: int
    alu_fill: int
    nop_cycles: int
    insn_overhead: int
    host_launch_us: float
    host_per_insn_ns: float
    host_per_uop_ns: float

    def __init__(self, params: TimingParams, freq_mhz: float, beat_bytes: int = 8, **trial):
        """``trial`` overrides parameters without the hardware file's checks (integral
        types): the calibration's candidate values."""
        self.params = params
        self.freq_mhz = freq_mhz
        self.beat_bytes = beat_bytes
        for f in fields(params):
            setattr(self, f.name, trial.pop(f.name, getattr(params, f.name)))
        if trial:
            raise TypeError(f"unknown timing parameters {sorted(trial)}")
        self.burst_bytes = self.axi_burst_beats * beat_bytes
        burst_cycles = self.burst_bytes / self.bus_bytes_per_cycle
        # A row of k bursts: the first beat after the latency, then the data; a burst that
        # has to wait for one of the ``axi_outstanding`` slots adds the rest of a round trip.
        self.read_burst_stall = max(0.0, (self.mem_latency + burst_cycles) / self.axi_outstanding - burst_cycles)
        self.write_burst_stall = max(0.0, (self.mem_write_latency + burst_cycles) / self.axi_outstanding
                                     - burst_cycles)

    @classmethod
    def from_hw(cls, hw: HwConfig) -> "Timing":
        return cls(hw.timing, hw.platform.freq_mhz, hw.bus_width // 8)

    # ------------------------------------------------------------------ instructions
    def costs(self, f: InsnFeatures) -> InsnCosts:
        """Every instruction's costs (module docstring) under these parameters."""
        L, Lw, bw, ov = self.mem_latency, self.mem_write_latency, self.bus_bytes_per_cycle, self.insn_overhead
        kind = f.kind
        rows = f.rows.astype(float)
        data = f.nbytes / bw
        is_read = np.isin(kind, READ_KINDS)
        local = np.full(len(f), float(self.nop_cycles))
        extra_bursts = None
        if self.read_burst_stall or self.write_burst_stall:
            extra_bursts = np.maximum(f.bursts(self.burst_bytes) - f.rows, 0).astype(float)
        # reads: every row waits the latency, then its data; weights enter their SRAM at
        # one beat per wgt_beat_cycles; load_pad_2d's rows and zero fills cost extra
        rd = ov + rows * L + np.where(kind == WGT, data * self.wgt_beat_cycles, data)
        rd = rd + f.padded * (rows * self.inp_row_cycles + f.pad_elems + f.pad_runs * self.pad_run_cycles)
        wr = ov + rows * Lw + data * self.store_beat_cycles
        if extra_bursts is not None:
            rd = rd + extra_bursts * self.read_burst_stall
            wr = wr + extra_bursts * self.write_burst_stall
        local = np.where(is_read, rd, local)
        local = np.where(kind == STORE, wr, local)
        local = np.where(kind == OTHER_MEM, ov + self.nop_cycles, local)
        has = f.uops > 0
        gemm = ov + np.where(has, self.gemm_fill + f.uops + f.pairs * self.gemm_loop_cycles, 0)
        alu = ov + np.where(has, self.alu_fill + self.alu_ii * f.uops, 0)
        local = np.where(kind == GEMM, gemm, local)
        local = np.where(kind == ALU, alu, local)
        rlead = np.where(is_read, float(ov + L), 0.0)
        rbytes = np.where(is_read, f.nbytes, 0).astype(float)
        return InsnCosts(local, rlead, rbytes)

    def fetch_cycles(self, nbytes: int) -> tuple[float, float]:
        """A fetch request of ``nbytes`` bytes: (cycles to its first beat, cycles until it is
        complete if the read channel were free)."""
        bursts = -(-nbytes // self.burst_bytes)
        return (float(self.mem_latency),
                self.mem_latency + nbytes / self.bus_bytes_per_cycle + (bursts - 1) * self.read_burst_stall)

    def insn_cycles(self, insn, hw: HwConfig) -> float:
        """Cycles of one instruction alone (the shared read channel free); for tests and
        reports."""
        return float(self.costs(insn_features([insn], hw)).local[0])

    # ------------------------------------------------------------------ time
    def accel_ms(self, cycles: float) -> float:
        return cycles / (self.freq_mhz * 1000.0)

    def host_ms(self, insns: int, uops: int) -> float:
        """The ARM host's time for one call of ``insns`` instructions and ``uops`` micro-ops."""
        return self.host_launch_us / 1e3 + insns * self.host_per_insn_ns / 1e6 + uops * self.host_per_uop_ns / 1e6
