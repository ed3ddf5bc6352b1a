"""tsim's cost model: what the ``timing`` parameters of a hardware configuration mean.

The parameters themselves (names, defaults, valid ranges) are data of the hardware file,
:class:`vtatune.hardware.timing_params.TimingParams` (``hw.timing``), validated when the
configuration is loaded; this module turns them into cycles and host time (docs/tsim.md).
"""
from __future__ import annotations

from dataclasses import fields

from ..hardware.config import HwConfig
from ..hardware.isa import AluInsn, GemmInsn, MemInsn
from ..hardware.timing_params import TimingParams


class Timing:
    """Cycle costs of memory requests and instructions, and the host's time per call, for
    one configuration.  Every parameter of ``params`` is also an attribute (read in tsim's
    inner loops)."""

    mem_latency: int
    mem_write_latency: int
    bus_bytes_per_cycle: float
    fetch_burst: int
    gemm_fill: int
    alu_ii: int
    alu_fill: int
    nop_cycles: int
    insn_overhead: int
    host_launch_us: float
    host_per_insn_ns: float
    host_per_uop_ns: float

    def __init__(self, params: TimingParams, freq_mhz: float):
        self.params = params
        self.freq_mhz = freq_mhz
        for f in fields(params):
            setattr(self, f.name, getattr(params, f.name))

    @classmethod
    def from_hw(cls, hw: HwConfig) -> "Timing":
        return cls(hw.timing, hw.platform.freq_mhz)

    def request_end(self, start: float, nbytes: int, write: bool = False) -> float:
        """When a memory request that gets the bus at ``start`` releases it."""
        return start + (self.mem_write_latency if write else self.mem_latency) + nbytes / self.bus_bytes_per_cycle

    def insn_end(self, insn, t: float) -> float:
        """When a non-memory instruction (GEMM, ALU, FINISH, unknown opcode, token-only
        NOP = None) that starts at ``t`` completes."""
        if isinstance(insn, (GemmInsn, AluInsn)):
            n = max(0, insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            if isinstance(insn, GemmInsn):
                return t + self.insn_overhead + (self.gemm_fill + n if n else 0)
            return t + self.insn_overhead + (self.alu_fill + self.alu_ii * n if n else 0)
        assert not isinstance(insn, MemInsn), "memory instructions are timed request by request"
        return t + self.nop_cycles

    def accel_ms(self, cycles: float) -> float:
        return cycles / (self.freq_mhz * 1000.0)

    def host_ms(self, insns: int, uops: int) -> float:
        """The ARM host's time for one call of ``insns`` instructions and ``uops`` micro-ops."""
        return self.host_launch_us / 1e3 + insns * self.host_per_insn_ns / 1e6 + uops * self.host_per_uop_ns / 1e6
