"""Operator workloads that VTA's AutoTVM templates can offload.

One frozen dataclass describes every template's workload (conv2d, group conv2d, conv2d
transpose, dense); ``bind(hw)`` checks it against a hardware configuration and resolves the
batch of suite workloads, which (like TVM's VTA test scripts) default to ``env.BATCH``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..hardware.config import HwConfig

CONV2D = "conv2d_packed.vta"
GROUP_CONV2D = "group_conv2d_packed.vta"
CONV2D_TRANSPOSE = "conv2d_transpose_packed.vta"
DENSE = "dense_packed.vta"
TEMPLATES = (CONV2D, GROUP_CONV2D, CONV2D_TRANSPOSE, DENSE)
#: Short template names of spec strings -> AutoTVM task names.
SPEC_TEMPLATES = {"conv2d": CONV2D, "group_conv2d": GROUP_CONV2D,
                  "conv2d_transpose": CONV2D_TRANSPOSE, "dense": DENSE}
_SHORT_NAMES = {v: k for k, v in SPEC_TEMPLATES.items()}

#: Epilogues: the tuning template's ``>> 8``, clip to [0, 127], cast int8 (what AutoTVM
#: logs such as TopHub were measured with); ``bias`` adds an int32 per-channel bias after the
#: shift (TVM's benchmark pipeline); ``relu`` is ``>> 8``, max(., 0), cast (wrapping).
EPILOGUES = ("shift_clip", "bias", "relu")
#: a quantized network's layer (``Workload.requant`` holds its parameters); not a spec option
REQUANT = "requant"
SHIFT = 8


class WorkloadError(ConfigurationError):
    """A workload VTA cannot offload, or a malformed workload description."""


@dataclass(frozen=True)
class Requant:
    """The requantization of a quantized network's layer (epilogue ``requant``): the int32
    accumulator plus an int32 per-channel bias (wrapping; the bias carries the rounding
    term), an arithmetic right shift by ``shift``, clip to [``lo``, ``hi``], the low byte.
    On VTA: LOAD ACC of the bias + ALU ADD, SHR imm, MIN imm ``hi``, MAX imm ``lo`` (§6.8)."""

    shift: int
    lo: int = -127
    hi: int = 127

    def __post_init__(self) -> None:
        for f, lo, hi in (("shift", 0, 31), ("lo", -128, 127), ("hi", -128, 127)):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise WorkloadError(f"requant.{f}", f"must be an integer in [{lo}, {hi}], got {v!r}")
        if self.lo > self.hi:
            raise WorkloadError("requant.lo", f"lo {self.lo} is above hi {self.hi}")


@dataclass(frozen=True)
class Workload:
    template: str
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel_h: int = 1
    kernel_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    stride_h: int = 1
    stride_w: int = 1
    groups: int = 1
    batch: int | None = None  # None: the hardware's BATCH (as TVM's VTA scripts do)
    epilogue: str = "shift_clip"
    requant: Requant | None = None  # the parameters of epilogue "requant"
    name: str = ""
    offloadable: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise WorkloadError("template", f"unknown template {self.template!r}; known: {', '.join(TEMPLATES)}")
        if self.epilogue not in EPILOGUES + (REQUANT,):
            raise WorkloadError("epilogue", f"unknown epilogue {self.epilogue!r}; known: "
                                            f"{', '.join(EPILOGUES + (REQUANT,))}")
        if (self.epilogue == REQUANT) != isinstance(self.requant, Requant):
            raise WorkloadError("requant", "epilogue 'requant' takes a Requant (and only it does), "
                                           f"got epilogue {self.epilogue!r} with {self.requant!r}")
        for f in ("height", "width", "in_channels", "out_channels", "kernel_h", "kernel_w",
                  "stride_h", "stride_w", "groups"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise WorkloadError(f, f"must be a positive integer, got {v!r}")
        for f in ("pad_h", "pad_w"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise WorkloadError(f, f"must be a non-negative integer, got {v!r}")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            raise WorkloadError("batch", f"must be a positive integer, got {self.batch!r}")
        if self.template == DENSE and (self.height, self.width, self.kernel_h, self.kernel_w) != (1, 1, 1, 1):
            raise WorkloadError("template", "a dense workload has height = width = kernel = 1")
        if self.template != GROUP_CONV2D and self.groups != 1:
            raise WorkloadError("groups", f"only group_conv2d has groups, got {self.groups}")
        if self.template in (CONV2D, GROUP_CONV2D) and self.offloadable:
            if self.out_height < 1 or self.out_width < 1:
                raise WorkloadError("kernel_h", "the kernel is larger than the padded input")

    # ------------------------------------------------------------------ geometry
    @property
    def out_height(self) -> int:
        if self.template == CONV2D_TRANSPOSE:
            return (self.height - 1) * self.stride_h - 2 * self.pad_h + self.kernel_h
        return (self.height + 2 * self.pad_h - self.kernel_h) // self.stride_h + 1

    @property
    def out_width(self) -> int:
        if self.template == CONV2D_TRANSPOSE:
            return (self.width - 1) * self.stride_w - 2 * self.pad_w + self.kernel_w
        return (self.width + 2 * self.pad_w - self.kernel_w) // self.stride_w + 1

    @property
    def flops(self) -> int:
        """2 x MACs of the whole operator (what AutoTVM's ``cfg.add_flop`` counts)."""
        b = self.batch or 1
        per_out = self.kernel_h * self.kernel_w * self.in_channels // self.groups
        return 2 * b * self.out_channels * self.out_height * self.out_width * per_out

    @property
    def has_bias(self) -> bool:
        """Whether the fused operator adds an int32 bias tensor (a LOAD ACC + ALU ADD)."""
        return self.epilogue in ("bias", REQUANT)

    @property
    def shape(self) -> tuple:
        """Everything that defines the computation (not name/epilogue/notes): template,
        batch, H, W, CI, CO, kernel, padding, strides, groups."""
        return (self.template, self.batch, self.height, self.width, self.in_channels,
                self.out_channels, self.kernel_h, self.kernel_w, self.pad_h, self.pad_w,
                self.stride_h, self.stride_w, self.groups)

    @property
    def spec(self) -> str:
        """The canonical spec string (docs/workloads.md), e.g. ``conv2d:B,56,56,64,64,3,1,1``."""
        return format_spec(self)

    # ------------------------------------------------------------------ binding
    def bind(self, hw: "HwConfig") -> "Workload":
        """This workload on ``hw``: batch resolved, offloadability checked (typed errors)."""
        if not self.offloadable:
            raise WorkloadError("workload", f"{self.name or self.template} is not offloadable to VTA: {self.note}")
        batch = self.batch if self.batch is not None else hw.batch
        if batch % hw.batch:
            raise WorkloadError("batch", f"batch {batch} is not a multiple of the hardware BATCH {hw.batch}")
        cin = self.in_channels // self.groups if self.template == GROUP_CONV2D else self.in_channels
        if self.template == GROUP_CONV2D:
            if self.in_channels % self.groups or self.out_channels % self.groups:
                raise WorkloadError("groups", f"channels {self.in_channels}->{self.out_channels} "
                                              f"not divisible by {self.groups} groups")
            if (self.out_channels // self.groups) % hw.block_out:
                raise WorkloadError("out_channels", f"channels per group {self.out_channels // self.groups} "
                                                    f"not a multiple of BLOCK_OUT {hw.block_out}")
        if cin % hw.block_in:
            raise WorkloadError("in_channels", f"{cin} input channels{' per group' if self.groups > 1 else ''} "
                                               f"are not a multiple of BLOCK_IN {hw.block_in}")
        if self.out_channels % hw.block_out:
            raise WorkloadError("out_channels", f"{self.out_channels} output channels are not a "
                                                f"multiple of BLOCK_OUT {hw.block_out}")
        return replace(self, batch=batch)

    # ------------------------------------------------------------------ AutoTVM form
    def autotvm_args(self, hw: "HwConfig") -> list:
        """The packed task arguments as AutoTVM logs them (``input[2]``)."""
        w = self.bind(hw)
        B, BI, BO = hw.batch, hw.block_in, hw.block_out
        nb = w.batch // B
        layout = f"NCHW{B}n{BI}c"
        if self.template == DENSE:
            return [["TENSOR", [nb, self.in_channels // BI, B, BI], "int8"],
                    ["TENSOR", [self.out_channels // BO, self.in_channels // BI, BO, BI], "int8"],
                    None, "int32"]
        data = ["TENSOR", [nb, self.in_channels // BI, self.height, self.width, B, BI], "int8"]
        strides = [self.stride_h, self.stride_w]
        pad4 = [self.pad_h, self.pad_w, self.pad_h, self.pad_w]
        if self.template == CONV2D:
            kern = ["TENSOR", [self.out_channels // BO, self.in_channels // BI, self.kernel_h,
                               self.kernel_w, BO, BI], "int8"]
            return [data, kern, strides, pad4, [1, 1], layout, "int32"]
        if self.template == GROUP_CONV2D:
            kern = ["TENSOR", [self.out_channels // BO, self.in_channels // self.groups // BI,
                               self.kernel_h, self.kernel_w, BO, BI], "int8"]
            return [data, kern, strides, pad4, [1, 1], self.groups, "int32"]
        kern = ["TENSOR", [self.out_channels // BO, self.in_channels // BI, self.kernel_h,
                           self.kernel_w, BO, BI], "int8"]
        return [data, kern, strides, pad4, "int32", [0, 0]]


def format_spec(w: Workload) -> str:
    """The canonical spec string of a workload (``parse_spec(format_spec(w))`` has its shape)."""
    n = "B" if w.batch is None else str(w.batch)
    if w.template == DENSE:
        s = f"dense:{n},{w.in_channels},{w.out_channels}"
    else:
        def two(a: int, b: int, sep: str) -> str:
            return str(a) if a == b else f"{a}{sep}{b}"
        fields = [n, str(w.height), str(w.width), str(w.in_channels), str(w.out_channels)]
        if w.template == GROUP_CONV2D:
            fields.append(str(w.groups))
        fields += [two(w.kernel_h, w.kernel_w, "x"), two(w.pad_h, w.pad_w, "/"),
                   two(w.stride_h, w.stride_w, "/")]
        s = f"{_SHORT_NAMES[w.template]}:{','.join(fields)}"
    if w.epilogue == REQUANT:  # not parseable: a network layer, built in code
        q = w.requant
        return f"{s};epilogue=requant(shift={q.shift},lo={q.lo},hi={q.hi})"
    return s if w.epilogue == "shift_clip" else f"{s};epilogue={w.epilogue}"
