"""Compile a workload + template configuration into a VTA program, and run it.

``compile_program`` follows the original stack's order of failure: lowering checks
(COMPILE_HOST), then the runtime library's checks (RUNTIME_DEVICE), then encoding of every
field (a value that would be silently truncated is WRONG_ANSWER).  A returned Program holds
the exact instruction stream, the micro-op buffer and the DRAM layout, and packs numpy
inputs into that layout (``vtatune.measure.runners`` executes it).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import FieldOverflowError
from ..hardware import isa
from ..hardware.config import HwConfig
from ..sim.bundle import Bundle
from ..sim.dram import Dram
from ..workloads.workload import CONV2D, CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, Workload
from . import ir
from .common import field_overflow
from .profiles import DEFAULT_PROFILE, check_profile
from .runtime import Runtime


def lowering_for(wl: Workload, knobs: dict, hw: HwConfig):
    if wl.template in (CONV2D, GROUP_CONV2D):
        from .conv2d import Conv2DLowering
        return Conv2DLowering(wl, knobs, hw)
    if wl.template == DENSE:
        from .dense import DenseLowering
        return DenseLowering(wl, knobs, hw)
    if wl.template == CONV2D_TRANSPOSE:
        from .conv2d_transpose import Conv2DTransposeLowering
        return Conv2DTransposeLowering(wl, knobs, hw)
    from ..errors import ConfigurationError
    raise ConfigurationError("template", f"the compiler has no lowering for template {wl.template!r}")


def check_config(wl: Workload, knobs: dict, hw: HwConfig, profile: str = DEFAULT_PROFILE):
    """Validity verdict from the compiler's own per-tile analysis, without emitting the
    stream: the lowering checks of ``profile`` (``profiles.py``), the runtime library's
    micro-op checks, and the width of every DMA field over all tile positions — the checks
    ``compile_program`` runs before it emits.  (The stream's length is the one check left
    to emission; ``sweep.verdict`` bounds it, ``stream_size.py``.)"""
    check_profile(profile)
    wl = wl.bind(hw)
    low = lowering_for(wl, knobs, hw)
    low.check_lowering(profile)
    low.check_runtime()
    check_fields = getattr(low, "check_fields", None)
    if check_fields is not None:
        check_fields()
    return low


@dataclass
class Program:
    workload: Workload
    knobs: dict
    hw: HwConfig
    uop_words: np.ndarray
    regions: dict            # name -> (physical address, bytes)
    insn_blob: bytes
    extra: dict = field(default_factory=dict)

    @property
    def insn_count(self) -> int:
        return len(self.insn_blob) // isa.INSN_BYTES

    @cached_property
    def insns(self) -> list:
        """The stream as instruction objects (decoded on demand)."""
        return isa.decode_program(self.insn_blob, self.hw)

    @property
    def insn_addr(self) -> int:
        return self.regions["insn"][0]

    def summary(self) -> dict[str, Any]:
        kinds = Counter()
        for i in self.insns:
            if isinstance(i, isa.MemInsn):
                op = "LOAD" if i.opcode == isa.Opcode.LOAD else "STORE"
                kinds["NOP" if i.x_size == 0 else f"{op}_{isa.MemType(i.memory_type).name}"] += 1
            else:
                kinds[type(i).__name__.replace("Insn", "").upper()] += 1
        dma = {"inp": 0, "wgt": 0, "acc": 0, "uop": 0, "out": 0}
        ebytes = {isa.MemType.INP: ("inp", self.hw.inp_elem_bytes), isa.MemType.WGT: ("wgt", self.hw.wgt_elem_bytes),
                  isa.MemType.ACC: ("acc", self.hw.acc_elem_bytes), isa.MemType.UOP: ("uop", 4)}
        for i in self.insns:
            if isinstance(i, isa.MemInsn) and i.x_size:
                if i.opcode == isa.Opcode.STORE:
                    dma["out"] += i.x_size * i.y_size * self.hw.out_elem_bytes
                elif i.memory_type in ebytes:
                    name, eb = ebytes[i.memory_type]
                    dma[name] += i.x_size * i.y_size * eb
        low = self.extra.get("lowering")
        sram = {}
        if low is not None:
            for a in low.allocs:
                sram[a.scope] = sram.get(a.scope, 0) + a.elems * low.nthreads
        return {"instructions": len(self.insns), "by_kind": dict(sorted(kinds.items())),
                "uops": int(self.uop_words.size), "dram_bytes": dma,
                "sram_elements": sram, "regions": {k: list(v) for k, v in self.regions.items()}}

    # ------------------------------------------------------------------ execution
    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random int8 inputs (and int32 bias) in the plain layouts of ``reference``."""
        rng = np.random.default_rng(seed)
        wl = self.workload
        n = wl.batch
        if wl.template == DENSE:
            x = rng.integers(-128, 128, (n, wl.in_channels), dtype=np.int8)
            k = rng.integers(-128, 128, (wl.out_channels, wl.in_channels), dtype=np.int8)
        else:
            x = rng.integers(-128, 128, (n, wl.in_channels, wl.height, wl.width), dtype=np.int8)
            cin = wl.in_channels // wl.groups
            if wl.template == CONV2D_TRANSPOSE:
                k = rng.integers(-128, 128, (wl.in_channels, wl.out_channels, wl.kernel_h, wl.kernel_w), dtype=np.int8)
            else:
                k = rng.integers(-128, 128, (wl.out_channels, cin, wl.kernel_h, wl.kernel_w), dtype=np.int8)
        out = {"data": x, "kernel": k}
        if wl.has_bias:
            out["bias"] = rng.integers(-(1 << 14), 1 << 14, wl.out_channels, dtype=np.int32)
        return out

    def dram_contents(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        low = self.extra["lowering"]
        packed = low.pack_inputs(inputs)
        out = {}
        for name, (addr, nbytes) in self.regions.items():
            buf = np.zeros(nbytes, dtype=np.uint8)
            if name in packed:
                raw = packed[name].view(np.uint8).ravel()
                buf[:raw.size] = raw
            out[name] = buf
        out["uop"][:self.uop_words.size * 4] = self.uop_words.astype("<u4").view(np.uint8)
        out["insn"][:len(self.insn_blob)] = np.frombuffer(self.insn_blob, dtype=np.uint8)
        return out

    def to_bundle(self, inputs: dict[str, np.ndarray]) -> Bundle:
        contents = self.dram_contents(inputs)
        regions = sorted((self.regions[n][0], contents[n]) for n in self.regions)
        return Bundle(self.hw.name, self.insn_addr, self.insn_count, regions)


def compile_program(wl: Workload, knobs: dict, hw: HwConfig, *, sync: str = ir.REFERENCE_SYNC,
                    profile: str = DEFAULT_PROFILE) -> Program:
    """``sync`` selects the dependence-token scheme: ``"tvm-0.14"`` (byte-identical to the
    TVM v0.14 stack) or ``"single"`` (one dependence pass, docs/compiler.md); ``profile``
    which configurations compile (``profiles.py``)."""
    low = check_config(wl, knobs, hw, profile)
    dram = Dram()
    sizes = low.region_sizes()
    bases = {name: dram.alloc(nbytes) for name, nbytes in sizes.items()}
    low.place({name: (bases[name], sizes[name]) for name in sizes})
    root = ir.finalize(low.build_ir(), sync)
    rt = Runtime(hw)
    ir.emit(root, {}, rt)
    rt.synchronize()
    uop_bytes = max(4, 4 * len(rt.uop_words))
    uop_addr = dram.alloc(uop_bytes)
    try:
        blob = rt.encode(uop_addr // 4)
    except FieldOverflowError as exc:
        raise field_overflow(exc) from None
    insn_addr = dram.alloc(len(blob))
    regions = {name: (bases[name], sizes[name]) for name in sizes}
    regions["uop"] = (uop_addr, uop_bytes)
    regions["insn"] = (insn_addr, len(blob))
    return Program(wl.bind(hw), dict(knobs), hw, np.array(rt.uop_words, dtype=np.uint32),
                   regions, blob, extra={"lowering": low, "sync": sync, "profile": profile})
