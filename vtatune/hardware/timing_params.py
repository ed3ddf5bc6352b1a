"""The ``timing`` section of a hardware file: tsim's parameters as validated data.

Name, default, unit and valid range of every parameter are defined here, in the hardware
layer, so that a configuration is checked when it is loaded (the hardware package sits
below the simulators and cannot import them).  What the numbers mean — tsim's cost model —
is :class:`vtatune.sim.timing.Timing`, built from ``hw.timing``.

Ranges are generous bounds on physically meaningful values (a PYNQ-Z1 has 64-cycle memory
latency and 8 bytes per cycle); their purpose is that no value can make the model divide by
zero, loop forever (a fetch burst of 0) or produce non-finite or overflowing times.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ..errors import ConfigurationError

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def brief_repr(value: Any) -> str:
    """repr() for error messages about untrusted values: bounded in size and nesting (a
    deeply nested JSON value would make the plain repr recurse out of the stack)."""
    return _REPR.repr(value)


MAX_CYCLES = 1_000_000      # any per-event cycle count: 10 ms at 100 MHz
MAX_HOST_TIME = 1_000_000.0  # host costs, in their unit (µs or ns)


@dataclass(frozen=True)
class TimingField:
    """Type and valid range (inclusive) of one timing parameter."""

    kind: type  # int or float
    lo: float
    hi: float
    unit: str

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a finite number"
        return f"{kind} in [{self.lo}, {self.hi}] ({self.unit})"


def _param(default, kind, lo, hi, unit):
    return field(default=default, metadata={"spec": TimingField(kind, lo, hi, unit)})


@dataclass(frozen=True)
class TimingParams:
    """Parameters of tsim's cycle model (docs/tsim.md says where each value comes from).
    Cycle counts are accelerator clock cycles; host costs are ARM-side times.  Validated on
    construction (also through ``dataclasses.replace``): ConfigurationError names the field
    as ``timing.<name>``."""

    # cycles from a DMA read request (one row, one fetch burst, one micro-op kernel) to its
    # first data beat; the issuing module waits it out for every row
    mem_latency: int = _param(16, int, 0, MAX_CYCLES, "cycles")
    # cycles from the last data beat of a DMA write (one STORE row) to its write response
    mem_write_latency: int = _param(16, int, 0, MAX_CYCLES, "cycles")
    # bytes per cycle of one AXI data channel (the read channel is shared by every reader;
    # the write channel is the store module's) — a divisor: kept away from 0
    bus_bytes_per_cycle: float = _param(8.0, float, 0.01, 1024.0, "bytes per cycle")
    # longest AXI burst, in bus beats (HLS m_axi max_read/write_burst_length); bursts also
    # end at 4 KiB boundaries
    axi_burst_beats: int = _param(16, int, 1, 1 << 16, "beats")
    # AXI bursts a module keeps in flight (HLS m_axi num_read/write_outstanding)
    axi_outstanding: int = _param(16, int, 1, 1 << 16, "bursts")
    # instructions per fetch request (0 would never fetch anything)
    fetch_burst: int = _param(16, int, 1, 1 << 16, "instructions")
    # load module: cycles per bus beat written into the weight SRAM (1: at bus speed)
    wgt_beat_cycles: float = _param(1.0, float, 0.0, float(MAX_CYCLES), "cycles per beat")
    # store module: cycles per bus beat it writes (1: bursts at bus speed)
    store_beat_cycles: float = _param(1.0, float, 0.0, float(MAX_CYCLES), "cycles per beat")
    # load module: load_pad_2d's work per INP row besides the read (row loop, zero-fill calls)
    inp_row_cycles: int = _param(0, int, 0, MAX_CYCLES, "cycles")
    # load module: starting one zero-fill run (a non-empty padding loop; then 1 element/cycle)
    pad_run_cycles: int = _param(0, int, 0, MAX_CYCLES, "cycles")
    # GEMM pipeline fill per instruction
    gemm_fill: int = _param(4, int, 0, MAX_CYCLES, "cycles")
    # GEMM: pipeline restart per (outer, inner) loop iteration (the uop loop is the pipelined one)
    gemm_loop_cycles: int = _param(0, int, 0, MAX_CYCLES, "cycles")
    # ALU initiation interval per micro-op iteration (HLS); an interval is at least 1
    alu_ii: int = _param(2, int, 1, MAX_CYCLES, "cycles")
    # ALU pipeline fill per instruction
    alu_fill: int = _param(4, int, 0, MAX_CYCLES, "cycles")
    # a token-only instruction
    nop_cycles: int = _param(1, int, 0, MAX_CYCLES, "cycles")
    # per-instruction decode / handshake cycles
    insn_overhead: int = _param(1, int, 0, MAX_CYCLES, "cycles")
    # host: launch, cache maintenance, completion polling
    host_launch_us: float = _param(0.0, float, 0.0, MAX_HOST_TIME, "µs")
    # host: building one instruction in the runtime
    host_per_insn_ns: float = _param(0.0, float, 0.0, MAX_HOST_TIME, "ns")
    # host: recording one micro-op (first use per call)
    host_per_uop_ns: float = _param(0.0, float, 0.0, MAX_HOST_TIME, "ns")

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check_timing_value(f.name, getattr(self, f.name)))

    @classmethod
    def from_mapping(cls, data: Any) -> "TimingParams":
        """The ``timing`` object of a hardware file; keys starting with ``_`` are notes."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("timing", f"must be an object, got {type(data).__name__}")
        values = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise ConfigurationError("timing", f"keys must be strings, got {brief_repr(key)}")
            if key.startswith("_"):
                continue  # documentation entries
            if key not in TIMING_FIELDS:
                raise ConfigurationError(f"timing.{key}", f"unknown key; known: {', '.join(TIMING_FIELDS)}")
            values[key] = value
        return cls(**values)


def check_timing_value(name: str, value: Any):
    """``value`` if it is valid for timing parameter ``name`` (an integral float becomes an
    int for integer parameters); otherwise ConfigurationError naming ``timing.<name>``."""
    spec = TIMING_FIELDS[name]
    where = f"timing.{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(where, f"must be {spec.describe()}, got {brief_repr(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(where, f"must be finite, got {brief_repr(value)}")
    if spec.kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ConfigurationError(where, f"must be {spec.describe()}, got {brief_repr(value)}")
        value = int(value)
    if not spec.lo <= value <= spec.hi:
        raise ConfigurationError(where, f"must be {spec.describe()}, got {brief_repr(value)}")
    return value


#: name -> type and range of every timing parameter, in declaration order.
TIMING_FIELDS: dict[str, TimingField] = {
    f.name: f.metadata["spec"] for f in fields(TimingParams)}
