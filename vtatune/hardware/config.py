"""VTA hardware configuration: the ``vta_config.json`` fields and every derived constant.

The JSON files use VTA's own upper-case keys, so upstream presets load unchanged.  All
derived numbers follow the formulas of VTA's ``pkg_config.py`` / ``hw_spec_const.h``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, Mapping

from ..errors import ConfigurationError, UnsupportedError
# The ISA widths live with the bit layouts; re-exported here for existing importers.
from .layout import (ALU_OPCODE_BIT_WIDTH, ALUOP_IMM_BIT_WIDTH, INS_WIDTH, LOOP_ITER_WIDTH,  # noqa: F401
                     MEMOP_DRAM_ADDR_BIT_WIDTH, MEMOP_ID_BIT_WIDTH, MEMOP_PAD_BIT_WIDTH,
                     MEMOP_SIZE_BIT_WIDTH, MEMOP_SRAM_ADDR_BIT_WIDTH, MEMOP_STRIDE_BIT_WIDTH,
                     OPCODE_BIT_WIDTH, UOP_WIDTH, layouts)
from .platforms import PLATFORMS, Platform
from .timing_params import TimingParams, brief_repr

#: Keys of ``vta_config.json`` in file order; all are required.
VTA_KEYS = (
    "TARGET", "HW_VER", "LOG_INP_WIDTH", "LOG_WGT_WIDTH", "LOG_ACC_WIDTH", "LOG_BATCH",
    "LOG_BLOCK", "LOG_UOP_BUFF_SIZE", "LOG_INP_BUFF_SIZE", "LOG_WGT_BUFF_SIZE",
    "LOG_ACC_BUFF_SIZE",
)
#: Optional vtatune sections next to VTA's keys (VTA's own fields stay unchanged).
EXTRA_SECTIONS = ("queues", "timing")
#: Optional vtatune flags (JSON booleans) naming a revision of the HLS design.
#: ``acc_load_pad``: the compute module honours the padding fields of LOAD ACC
#: (``load_pad_2d``, apache/tvm-vta commit 6096ca0, Dec 2020) instead of ignoring them
#: (``load_2d``, every earlier revision and the published PYNQ bitstreams; docs/hardware.md).
EXTRA_FLAGS = ("acc_load_pad",)
#: Value of each flag when a file leaves it out: the published bitstreams' behaviour.
FLAG_DEFAULTS = {"acc_load_pad": False}

DEFAULT_NAME = "pynq_1x16_i8w8a32_15_15_18_17"
SUPPORTED_HW_VER = "0.0.2"

MAX_SRAM_BUS_WIDTH = 1024  # pkg_config: widest SRAM bank
PAGE_BYTES = 4096          # runtime: an element must not exceed a page
MAX_QUEUE_DEPTH = 1 << 24  # hardware FIFOs: far beyond any BRAM, finite for the schedulers
#: A hardware file is a few hundred bytes; anything this large is not one.
MAX_CONFIG_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Queues:
    """Depths of the hardware FIFOs (PYNQ block design): command queues between fetch and
    the three modules, and the four dependence-token queues."""

    insn_queue_depth: int = 512
    dep_queue_depth: int = 1024


@dataclass(frozen=True)
class SramBank:
    """SRAM organisation used for the HLS build (pkg_config banking)."""

    elem_bits: int
    banks: int
    width: int
    depth: int
    axi_ratio: int


@dataclass(frozen=True)
class HwConfig:
    """One VTA hardware configuration (frozen; validated on construction)."""

    target: str
    hw_ver: str
    log_inp_width: int
    log_wgt_width: int
    log_acc_width: int
    log_batch: int
    log_block: int
    log_uop_buff_size: int
    log_inp_buff_size: int
    log_wgt_buff_size: int
    log_acc_buff_size: int
    queues: Queues = field(default_factory=Queues)
    #: tsim's parameters as data; their cost model is vtatune.sim.timing.Timing
    timing: TimingParams = field(default_factory=TimingParams)
    #: HLS revision: LOAD ACC honours its padding fields (tvm-vta 6096ca0 and later)
    acc_load_pad: bool = False
    source: str = field(default="<dict>", compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "HwConfig":
        if not isinstance(data, Mapping):
            raise ConfigurationError("<root>", f"{source}: expected a JSON object")
        for key in data:
            if not isinstance(key, str):
                raise ConfigurationError("<root>", f"{source}: keys must be strings, got {brief_repr(key)}")
            if key not in VTA_KEYS and key not in EXTRA_SECTIONS and key not in EXTRA_FLAGS:
                raise ConfigurationError(key, f"unknown key in {source}")
        for key in VTA_KEYS:
            if key not in data:
                raise ConfigurationError(key, f"missing in {source}")
        for key in VTA_KEYS[2:]:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigurationError(key, f"must be an integer, got {brief_repr(value)}")
        for key in ("TARGET", "HW_VER"):
            if not isinstance(data[key], str):
                raise ConfigurationError(key, f"must be a string, got {brief_repr(data[key])}")
        queues = Queues()
        if "queues" in data:
            q = data["queues"]
            if not isinstance(q, Mapping):
                raise ConfigurationError("queues", "must be an object")
            for key, value in q.items():
                if not isinstance(key, str) or key not in Queues.__dataclass_fields__:
                    raise ConfigurationError(f"queues.{key}", "unknown key")
                if (not isinstance(value, int) or isinstance(value, bool)
                        or not 1 <= value <= MAX_QUEUE_DEPTH):
                    raise ConfigurationError(
                        f"queues.{key}", f"must be an integer in [1, {MAX_QUEUE_DEPTH}], got {brief_repr(value)}")
            queues = Queues(**q)
        timing = TimingParams.from_mapping(data["timing"]) if "timing" in data else TimingParams()
        flags = {}
        for key in EXTRA_FLAGS:
            value = data.get(key, FLAG_DEFAULTS[key])
            if not isinstance(value, bool):  # JSON true/false only: 0/1 would be ambiguous
                raise ConfigurationError(key, f"must be true or false, got {brief_repr(value)}")
            flags[key] = value
        return cls(**{k.lower(): data[k] for k in VTA_KEYS}, queues=queues, timing=timing,
                   **flags, source=source)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None) -> "HwConfig":
        """Load a shipped configuration by name (``pynq_1x16_i8w8a32_15_15_18_17``) or a
        JSON file by path.  ``None`` gives the default PYNQ 1x16 configuration."""
        if name_or_path is None:
            name_or_path = DEFAULT_NAME
        text = str(name_or_path)
        if os.path.isfile(text):
            return cls.from_dict(_read_json_file(text), source=text)
        shipped = shipped_configs()
        if text in shipped:
            return cls.from_dict(_read_shipped(text), source=f"shipped:{text}")
        raise ConfigurationError(
            "hw", f"no shipped configuration or file named {text!r}; shipped: {', '.join(shipped)}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration in VTA's ``vta_config.json`` form, plus vtatune's revision flags
        (always, they change what the hardware computes) and non-default sections."""
        out: dict[str, Any] = {k: getattr(self, k.lower()) for k in VTA_KEYS}
        for key in EXTRA_FLAGS:
            out[key] = getattr(self, key)
        if self.queues != Queues():
            out["queues"] = dict(vars(self.queues))
        if self.timing != TimingParams():
            out["timing"] = dict(vars(self.timing))
        return out

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        if not isinstance(self.acc_load_pad, bool):
            raise ConfigurationError("acc_load_pad", f"must be true or false, got {brief_repr(self.acc_load_pad)}")
        if self.target not in PLATFORMS:
            raise ConfigurationError("TARGET", f"unknown target {brief_repr(self.target)}; known: {', '.join(PLATFORMS)}")
        if self.hw_ver == "0.0.1":
            raise UnsupportedError(
                "HW_VER 0.0.1: the old ISA layout (2-bit memory_type and alu_opcode) is not "
                "supported; vtatune encodes the HW_VER 0.0.2 layout of the current bitstreams")
        if self.hw_ver != SUPPORTED_HW_VER:
            raise ConfigurationError("HW_VER", f"unknown hardware version {brief_repr(self.hw_ver)}; supported: {SUPPORTED_HW_VER}")
        # The TVM VTA strategies assert int8 inputs/weights and int32 accumulators, and the
        # simulators' datapath is built for exactly those element types.
        for key, want in (("LOG_INP_WIDTH", 3), ("LOG_WGT_WIDTH", 3), ("LOG_ACC_WIDTH", 5)):
            if getattr(self, key.lower()) != want:
                raise ConfigurationError(key, f"must be {want} (int{1 << want}); got {getattr(self, key.lower())}")
        if not 0 <= self.log_batch <= 4:
            raise ConfigurationError("LOG_BATCH", f"must be in 0..4, got {self.log_batch}")
        if not 1 <= self.log_block <= 6:
            raise ConfigurationError("LOG_BLOCK", f"must be in 1..6, got {self.log_block}")
        for name, nbytes in (("INP", self.inp_elem_bytes), ("WGT", self.wgt_elem_bytes),
                             ("ACC", self.acc_elem_bytes)):
            if nbytes > PAGE_BYTES:
                raise ConfigurationError(
                    "LOG_BATCH" if name != "WGT" else "LOG_BLOCK",
                    f"a {name} element of {nbytes} B exceeds the runtime's {PAGE_BYTES} B page")
        for key, log_depth in (("LOG_UOP_BUFF_SIZE", self.log_uop_buff_depth),
                               ("LOG_INP_BUFF_SIZE", self.log_inp_buff_depth),
                               ("LOG_WGT_BUFF_SIZE", self.log_wgt_buff_depth),
                               ("LOG_ACC_BUFF_SIZE", self.log_acc_buff_depth)):
            if log_depth < 0:
                raise ConfigurationError(key, "buffer is smaller than one element")
            if log_depth > MEMOP_SRAM_ADDR_BIT_WIDTH:
                raise ConfigurationError(
                    key, f"buffer depth 2^{log_depth} cannot be addressed by the "
                         f"{MEMOP_SRAM_ADDR_BIT_WIDTH}-bit sram_base field")
        used = self.uop_dst_bits + self.uop_src_bits + self.uop_wgt_bits
        if used > UOP_WIDTH:
            raise ConfigurationError(
                "uop.wgt_idx",
                f"micro-op fields dst {self.uop_dst_bits} + src {self.uop_src_bits} + wgt "
                f"{self.uop_wgt_bits} = {used} bits no longer fit {UOP_WIDTH} bits "
                "(LOG_ACC/INP/WGT_BUFF_SIZE too large for LOG_BLOCK/LOG_BATCH)")
        # Instruction layouts must fit 128 bits under the no-straddle rule.
        layouts(self.log_uop_buff_depth, self.log_acc_buff_depth, self.log_inp_buff_depth,
                self.log_wgt_buff_depth)

    # ------------------------------------------------------------------ names
    @property
    def bitstream(self) -> str:
        """``{B}x{K}_i{I}w{W}a{A}_{lu}_{li}_{lw}_{la}`` (VTA's BITSTREAM)."""
        return (f"{self.batch}x{self.block_in}_i{self.inp_width}w{self.wgt_width}a{self.acc_width}"
                f"_{self.log_uop_buff_size}_{self.log_inp_buff_size}_{self.log_wgt_buff_size}"
                f"_{self.log_acc_buff_size}")

    @property
    def name(self) -> str:
        """``{TARGET}_{BITSTREAM}``: VTA's MODEL, the ``-model=`` of the TVM target."""
        return f"{self.target}_{self.bitstream}"

    @property
    def model(self) -> str:
        return self.name

    @property
    def tvm_target(self) -> str:
        return f"ext_dev -keys=vta,cpu -device=vta -model={self.name}"

    @property
    def platform(self) -> Platform:
        return PLATFORMS[self.target]

    # ------------------------------------------------------------------ element widths
    @property
    def inp_width(self) -> int: return 1 << self.log_inp_width
    @property
    def wgt_width(self) -> int: return 1 << self.log_wgt_width
    @property
    def acc_width(self) -> int: return 1 << self.log_acc_width
    @property
    def log_out_width(self) -> int: return self.log_inp_width
    @property
    def out_width(self) -> int: return 1 << self.log_out_width
    @property
    def batch(self) -> int: return 1 << self.log_batch
    @property
    def block_in(self) -> int: return 1 << self.log_block
    @property
    def block_out(self) -> int: return 1 << self.log_block

    # element sizes (one SRAM entry = one "tensor register")
    @property
    def inp_elem_bits(self) -> int: return self.batch * self.block_in * self.inp_width
    @property
    def wgt_elem_bits(self) -> int: return self.block_out * self.block_in * self.wgt_width
    @property
    def acc_elem_bits(self) -> int: return self.batch * self.block_out * self.acc_width
    @property
    def out_elem_bits(self) -> int: return self.batch * self.block_out * self.out_width
    @property
    def inp_elem_bytes(self) -> int: return self.inp_elem_bits // 8
    @property
    def wgt_elem_bytes(self) -> int: return self.wgt_elem_bits // 8
    @property
    def acc_elem_bytes(self) -> int: return self.acc_elem_bits // 8
    @property
    def out_elem_bytes(self) -> int: return self.out_elem_bits // 8
    @property
    def uop_elem_bytes(self) -> int: return UOP_WIDTH // 8
    @property
    def acc8_elem_bytes(self) -> int: return self.acc_elem_bytes // 4

    # buffer sizes (bytes) and depths (elements)
    @property
    def uop_buff_size(self) -> int: return 1 << self.log_uop_buff_size
    @property
    def inp_buff_size(self) -> int: return 1 << self.log_inp_buff_size
    @property
    def wgt_buff_size(self) -> int: return 1 << self.log_wgt_buff_size
    @property
    def acc_buff_size(self) -> int: return 1 << self.log_acc_buff_size
    @property
    def log_out_buff_size(self) -> int:
        return self.log_acc_buff_size + self.log_out_width - self.log_acc_width
    @property
    def out_buff_size(self) -> int: return 1 << self.log_out_buff_size

    @property
    def log_uop_buff_depth(self) -> int: return self.log_uop_buff_size - 5 + 3
    @property
    def log_inp_buff_depth(self) -> int:
        return self.log_inp_buff_size - self.log_batch - self.log_block - self.log_inp_width + 3
    @property
    def log_wgt_buff_depth(self) -> int:
        return self.log_wgt_buff_size - 2 * self.log_block - self.log_wgt_width + 3
    @property
    def log_acc_buff_depth(self) -> int:
        return self.log_acc_buff_size - self.log_batch - self.log_block - self.log_acc_width + 3
    @property
    def log_out_buff_depth(self) -> int: return self.log_acc_buff_depth

    @property
    def uop_buff_depth(self) -> int: return 1 << self.log_uop_buff_depth
    @property
    def inp_buff_depth(self) -> int: return 1 << self.log_inp_buff_depth
    @property
    def wgt_buff_depth(self) -> int: return 1 << self.log_wgt_buff_depth
    @property
    def acc_buff_depth(self) -> int: return 1 << self.log_acc_buff_depth
    @property
    def out_buff_depth(self) -> int: return 1 << self.log_out_buff_depth

    # micro-op field widths: dst indexes ACC, src indexes INP (GEMM) or ACC (ALU)
    @property
    def uop_dst_bits(self) -> int: return self.log_acc_buff_depth
    @property
    def uop_src_bits(self) -> int: return max(self.log_acc_buff_depth, self.log_inp_buff_depth)
    @property
    def uop_wgt_bits(self) -> int: return self.log_wgt_buff_depth

    # AXI bus
    @property
    def bus_width(self) -> int: return 1 << self.platform.log_bus_width

    def mat_axi_ratio(self, elem_bits: int) -> int:
        return max(1, elem_bits // self.bus_width)

    def sram_bank(self, elem_bits: int, size_bytes: int) -> SramBank:
        width = min(elem_bits, MAX_SRAM_BUS_WIDTH)
        return SramBank(elem_bits=elem_bits, banks=math.ceil(elem_bits / MAX_SRAM_BUS_WIDTH),
                        width=width, depth=size_bytes * 8 // elem_bits,
                        axi_ratio=max(1, width // self.bus_width))

    # ------------------------------------------------------------------ summaries
    @cached_property
    def derived(self) -> dict[str, Any]:
        """Every derived constant, by the names used in VTA's environment / pkg_config."""
        p = self.platform
        d: dict[str, Any] = {
            "MODEL": self.name, "BITSTREAM": self.bitstream, "TVM_TARGET": self.tvm_target,
            "INP_WIDTH": self.inp_width, "WGT_WIDTH": self.wgt_width,
            "ACC_WIDTH": self.acc_width, "OUT_WIDTH": self.out_width,
            "BATCH": self.batch, "BLOCK_IN": self.block_in, "BLOCK_OUT": self.block_out,
            "INS_WIDTH": INS_WIDTH, "UOP_WIDTH": UOP_WIDTH,
        }
        for kind in ("inp", "wgt", "acc", "out"):
            d[f"{kind.upper()}_ELEM_BITS"] = getattr(self, f"{kind}_elem_bits")
            d[f"{kind.upper()}_ELEM_BYTES"] = getattr(self, f"{kind}_elem_bytes")
        for kind in ("uop", "inp", "wgt", "acc", "out"):
            d[f"{kind.upper()}_BUFF_SIZE"] = getattr(self, f"{kind}_buff_size")
            d[f"LOG_{kind.upper()}_BUFF_DEPTH"] = getattr(self, f"log_{kind}_buff_depth")
            d[f"{kind.upper()}_BUFF_DEPTH"] = getattr(self, f"{kind}_buff_depth")
        d.update({
            "UOP_DST_BITS": self.uop_dst_bits, "UOP_SRC_BITS": self.uop_src_bits,
            "UOP_WGT_BITS": self.uop_wgt_bits,
            "BUS_WIDTH": self.bus_width,
        })
        for kind in ("inp", "wgt", "acc", "out"):
            d[f"{kind.upper()}_MAT_AXI_RATIO"] = self.mat_axi_ratio(getattr(self, f"{kind}_elem_bits"))
        for kind in ("inp", "wgt", "out"):
            bank = self.sram_bank(getattr(self, f"{kind}_elem_bits"), getattr(self, f"{kind}_buff_size"))
            d[f"{kind.upper()}_MEM_BANKS"] = bank.banks
            d[f"{kind.upper()}_MEM_WIDTH"] = bank.width
            d[f"{kind.upper()}_MEM_DEPTH"] = bank.depth
            d[f"{kind.upper()}_MEM_AXI_RATIO"] = bank.axi_ratio
        d.update({
            "FPGA_PART": p.fpga_part, "FPGA_FAMILY": p.fpga_family, "FPGA_FREQ_MHZ": p.freq_mhz,
            "HLS_CLOCK_NS": p.hls_clock_ns, "AXPROT": p.axprot,
            "IP_BASE": [f"0x{a:08X}" for a in p.ip_base],
            "INSN_QUEUE_DEPTH": self.queues.insn_queue_depth,
            "DEP_QUEUE_DEPTH": self.queues.dep_queue_depth,
        })
        return d


def _hw_dir():
    try:
        return resources.files("vtatune._hw")
    except ModuleNotFoundError:  # a source checkout that was never installed: the hw/ folder
        return resources.files("vtatune").joinpath("..", "hw")


def shipped_configs() -> list[str]:
    """Names of the configurations shipped in ``hw/`` (also inside an installed wheel)."""
    return sorted(p.name[:-5] for p in _hw_dir().iterdir() if p.name.endswith(".json"))


def _read_shipped(name: str) -> dict:
    return json.loads((_hw_dir() / f"{name}.json").read_text(encoding="utf-8"))


def _read_json_file(path: str) -> Any:
    """A user's hardware file, read with a size cap; every way it can fail to be JSON is a
    ConfigurationError naming the file."""
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_FILE_BYTES + 1)
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise ConfigurationError("<file>", f"{path} is larger than {MAX_CONFIG_FILE_BYTES} bytes: "
                                           "not a hardware configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError("<file>", f"{path} is not UTF-8 text ({exc})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigurationError("<file>", f"{path}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
        raise ConfigurationError("<file>", f"{path} is not valid JSON: {exc}") from None
