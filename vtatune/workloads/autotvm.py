"""The AutoTVM task-input codec: ``[target_str, task_name, args, kwargs]`` (the ``input``
of a log line) to a bound workload and back.  Malformed or unsupported inputs raise
``WorkloadError`` naming the task argument."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, NamedTuple, Sequence

from ..hardware.config import HwConfig, shipped_configs
from ..hardware.target import TargetError
from ..hardware.target import model_of_target as _model_of_target
from .spec import check_tvm_limits
from .workload import (CONV2D, CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, TEMPLATES, Workload,
                       WorkloadError, format_spec)

#: Argument counts accepted per task: the current signature and the older ones TopHub's
#: v0.2 logs hold (``conv2d_packed.vta`` with 8 arguments — an output layout between layout
#: and out_dtype, TopHub's 4x8 ResNet-18 records —, ``conv2d_transpose_packed.vta`` with 5,
#: without output_padding, as in ``vta_v0.08.log``).
SIGNATURES = {CONV2D: (7, 8), GROUP_CONV2D: (7,), CONV2D_TRANSPOSE: (5, 6), DENSE: (4,)}


class AutotvmTask(NamedTuple):
    """A parsed AutoTVM task input: the (bound) workload, its hardware and the raw target."""

    workload: Workload
    hw: "HwConfig"
    target: str
    task_name: str


def model_of_target(target: str) -> str:
    """The ``-model=`` of a VTA target string (old TopHub forms accepted)."""
    try:
        return _model_of_target(target)
    except TargetError as exc:
        raise WorkloadError(exc.field, str(exc)[len(exc.field) + 2:]) from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tensor(arg: Any, field: str, ndim: int) -> list[int]:
    if (not isinstance(arg, (list, tuple)) or len(arg) != 3 or arg[0] != "TENSOR"
            or not isinstance(arg[1], (list, tuple))):
        raise WorkloadError(field, f"expected [\"TENSOR\", shape, dtype], got {arg!r}")
    shape, dtype = list(arg[1]), arg[2]
    if len(shape) != ndim or not all(_is_int(d) and d >= 1 for d in shape):
        raise WorkloadError(
            field, f"expected a packed {ndim}-D shape of positive integers, got {shape}")
    if dtype != "int8":
        raise WorkloadError(
            field, f"dtype {dtype!r} is unsupported: VTA's templates take int8 tensors")
    return shape


def _ints(arg: Any, field: str, lengths: Sequence[int], *, minimum: int) -> list[int]:
    if isinstance(arg, int) and not isinstance(arg, bool):
        arg = [arg, arg]
    if (not isinstance(arg, (list, tuple)) or len(arg) not in lengths
            or not all(_is_int(v) and v >= minimum for v in arg)):
        raise WorkloadError(
            field, f"expected {' or '.join(map(str, lengths))} integers >= {minimum}, got {arg!r}")
    return list(arg)


def _padding(arg: Any) -> tuple[int, int]:
    p = _ints(arg, "padding", (2, 4), minimum=0)
    if len(p) == 4:
        top, left, bottom, right = p
        if (top, left) != (bottom, right):
            raise WorkloadError("padding", f"asymmetric padding [top, left, bottom, right] = {p} "
                                           "is unsupported (VTA pads top = bottom and left = "
                                           "right)")
        return top, left
    return p[0], p[1]


def _dtype(arg: Any, field: str, want: str) -> None:
    if arg != want:
        raise WorkloadError(field, f"must be {want!r}, got {arg!r}")


class PackedForOtherHardwareError(WorkloadError):
    """A packed tensor whose inner blocks are not the hardware's: the task was packed for
    another hardware configuration (e.g. a TopHub record of a 1x16 task filed under a 4x8
    target).  AutoTVM never applies such a record to this hardware's tasks (its workload
    cannot occur there), so it is refused rather than re-packed.

    ``field`` names the tensor argument (``data``, ``kernel``, ``weight``); ``blocks`` maps
    each block that differs (``BATCH``, ``BLOCK_IN``, ``BLOCK_OUT``) to ``(packed,
    hardware)``; ``shape`` is the tensor's packed shape, ``hw`` the hardware's name and
    ``fits`` the shipped configurations whose blocks match the packing (may be empty).
    ``reason`` is the stable code an import reports for the line."""

    reason = "packed_for_other_hw"

    def __init__(self, field: str, shape: Sequence[int], blocks: dict[str, tuple[int, int]],
                 hw: str, fits: Sequence[str] = ()):
        self.shape = list(shape)
        self.blocks = dict(blocks)
        self.hw = hw
        self.fits = list(fits)
        packed = ", ".join(f"{n}={p}" for n, (p, _) in blocks.items())
        has = ", ".join(f"{n}={h}" for n, (_, h) in blocks.items())
        where = (f"; shipped configurations with that packing: {', '.join(fits)}" if fits
                 else "")
        super().__init__(field, f"packed for {packed} (shape {self.shape}) but the hardware {hw} "
                                f"has {has}: the task was packed for another hardware "
                                f"configuration{where}")


def _fitting_configs(blocks: dict[str, int]) -> list[str]:
    """Shipped configurations whose BATCH/BLOCK_IN/BLOCK_OUT include ``blocks``."""
    attr = {"BATCH": "batch", "BLOCK_IN": "block_in", "BLOCK_OUT": "block_out"}
    out = []
    for name in shipped_configs():
        try:
            hwc = HwConfig.load(name)
        except Exception:  # noqa: BLE001 - a broken shipped file is reported elsewhere
            continue
        if all(getattr(hwc, attr[b]) == v for b, v in blocks.items()):
            out.append(name)
    return out


def _check_blocks(shape: list[int], field: str, inner: Sequence[int], names: Sequence[str],
                  want: Sequence[int], hw: str) -> None:
    """The packed inner dimensions ``inner`` of ``shape`` against the hardware's blocks."""
    bad = {name: (got, w) for got, name, w in zip(inner, names, want) if got != w}
    if bad:
        packed = {name: got for got, name in zip(inner, names)}
        raise PackedForOtherHardwareError(field, shape, bad, hw, _fitting_configs(packed))


def load_hw(hw: "HwConfig | str | None") -> HwConfig:
    """A ``HwConfig`` as given, or loaded from a shipped name / file (None: the default)."""
    return hw if isinstance(hw, HwConfig) else HwConfig.load(hw)


def parse_autotvm_input(inp: Any, hw: "HwConfig | str | None" = None) -> AutotvmTask:
    """Parse ``[target_str, task_name, args, kwargs]`` (or a JSON string of it, or a whole
    log-line object with an ``input`` key).

    Without ``hw`` the hardware is the target's ``-model=``, which must be a shipped
    configuration; with ``hw`` the model must equal ``hw.name``.  The packed shapes must
    match the hardware's BATCH/BLOCK_IN/BLOCK_OUT, and the workload must pass ``bind``.
    """
    if isinstance(inp, str):
        try:
            inp = json.loads(inp)
        except json.JSONDecodeError as exc:
            raise WorkloadError("input", f"not valid JSON: {exc}") from None
    if isinstance(inp, dict):
        if "input" not in inp:
            raise WorkloadError("input", "a log-line object needs an 'input' key")
        inp = inp["input"]
    if not isinstance(inp, (list, tuple)) or len(inp) not in (3, 4):
        raise WorkloadError("input", "expected [target_str, task_name, args, kwargs]")
    target, task_name, args = inp[0], inp[1], inp[2]
    if len(inp) == 4 and inp[3] not in ({}, None):
        raise WorkloadError("kwargs", f"VTA tasks take no keyword arguments, got {inp[3]!r}")
    model = model_of_target(target)
    if hw is None:
        shipped = shipped_configs()
        if model not in shipped:
            raise WorkloadError("target", f"-model={model} is not a shipped hardware "
                                          f"configuration (shipped: {', '.join(shipped)}); pass "
                                          "the hardware explicitly")
        hwc = load_hw(model)
    else:
        hwc = load_hw(hw)
        if hwc.name != model:
            raise WorkloadError("target", f"-model={model} does not match the hardware {hwc.name}")
    if task_name not in TEMPLATES:
        raise WorkloadError(
            "task_name", f"unknown task {task_name!r}; VTA tasks: {', '.join(TEMPLATES)}")
    if not isinstance(args, (list, tuple)):
        raise WorkloadError("args", f"expected a list, got {args!r}")
    B, BI, BO = hwc.batch, hwc.block_in, hwc.block_out
    expect = SIGNATURES[task_name]
    if len(args) not in expect:
        raise WorkloadError("args", f"{task_name} takes {' or '.join(map(str, expect))} "
                                    f"arguments, got {len(args)}")

    if task_name == DENSE:
        d = _tensor(args[0], "data", 4)
        wt = _tensor(args[1], "weight", 4)
        _check_blocks(d, "data", d[2:], ("BATCH", "BLOCK_IN"), (B, BI), hwc.name)
        _check_blocks(wt, "weight", wt[2:], ("BLOCK_OUT", "BLOCK_IN"), (BO, BI), hwc.name)
        if wt[1] != d[1]:
            raise WorkloadError("weight", f"input blocks {wt[1]} differ from the data's {d[1]}")
        if args[2] is not None:
            raise WorkloadError("bias", f"dense_packed tasks have bias None, got {args[2]!r}")
        _dtype(args[3], "out_dtype", "int32")
        w = Workload(DENSE, 1, 1, d[1] * BI, wt[0] * BO, batch=d[0] * B)
    else:
        d = _tensor(args[0], "data", 6)
        k = _tensor(args[1], "kernel", 6)
        _check_blocks(d, "data", d[4:], ("BATCH", "BLOCK_IN"), (B, BI), hwc.name)
        _check_blocks(k, "kernel", k[4:], ("BLOCK_OUT", "BLOCK_IN"), (BO, BI), hwc.name)
        sh, sw = _ints(args[2], "strides", (2,), minimum=1)
        ph, pw = _padding(args[3])
        groups = 1
        if task_name in (CONV2D, GROUP_CONV2D):
            dil = _ints(args[4], "dilation", (2,), minimum=1)
            if dil != [1, 1]:
                raise WorkloadError(
                    "dilation", f"dilation {dil} is unsupported (VTA supports [1, 1])")
            _dtype(args[-1], "out_dtype", "int32")
        if task_name == CONV2D:
            layout = f"NCHW{B}n{BI}c"
            if args[5] != layout:
                raise WorkloadError(
                    "layout", f"layout {args[5]!r} does not match the hardware's {layout!r}")
            if len(args) == 8:  # TopHub's 0.7-era form: an output layout before out_dtype
                out_layout = f"NCHW{B}n{BO}c"
                if args[6] != out_layout:
                    raise WorkloadError(
                        "out_layout", f"output layout {args[6]!r} does not match the "
                                      f"hardware's packed output layout {out_layout!r}")
        elif task_name == GROUP_CONV2D:
            groups = args[5]
            if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
                raise WorkloadError("groups", f"must be a positive integer, got {groups!r}")
            if k[1] * groups != d[1]:
                raise WorkloadError("kernel", f"kernel input blocks {k[1]} x {groups} groups != "
                                              f"data input blocks {d[1]}")
        else:
            _dtype(args[4], "out_dtype", "int32")
            opad = _ints(args[5], "output_padding", (2,), minimum=0) if len(args) == 6 else [0, 0]
            if opad != [0, 0]:
                raise WorkloadError(
                    "output_padding", f"output padding {opad} is unsupported (must be [0, 0])")
        if task_name != GROUP_CONV2D and k[1] != d[1]:
            raise WorkloadError(
                "kernel", f"kernel input blocks {k[1]} differ from the data's {d[1]}")
        # (a kernel larger than the padded input raises WorkloadError naming kernel_h)
        w = Workload(task_name, d[2], d[3], d[1] * BI, k[0] * BO, k[2], k[3], ph, pw, sh, sw,
                     groups=groups, batch=d[0] * B)
        check_tvm_limits(w, pad_field="padding")
    w = replace(w, name=format_spec(w)).bind(hwc)
    return AutotvmTask(w, hwc, target, task_name)


def autotvm_input(w: Workload, hw: "HwConfig") -> list:
    """``[target_str, task_name, args, {}]`` of ``w`` on ``hw`` (the inverse of the parser)."""
    return [hw.tvm_target, w.template, w.autotvm_args(hw), {}]


def looks_like_autotvm(text: str) -> bool:
    t = text.lstrip()
    return t.startswith("[") or t.startswith("{")
