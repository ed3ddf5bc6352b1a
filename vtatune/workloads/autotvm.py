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


def _check_blocks(shape: list[int], field: str, names: Sequence[str], want: Sequence[int]) -> None:
    for got, name, w in zip(shape, names, want):
        if got != w:
            raise WorkloadError(field, f"packed {name} block is {got} but the hardware has {w} "
                                       f"(shape {shape}); the task was packed for another "
                                       "configuration")


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
    expect = {CONV2D: (7,), GROUP_CONV2D: (7,), CONV2D_TRANSPOSE: (5, 6), DENSE: (4,)}[task_name]
    if len(args) not in expect:
        raise WorkloadError("args", f"{task_name} takes {' or '.join(map(str, expect))} "
                                    f"arguments, got {len(args)}")

    if task_name == DENSE:
        d = _tensor(args[0], "data", 4)
        wt = _tensor(args[1], "weight", 4)
        _check_blocks([d[2], d[3]], "data", ("BATCH", "BLOCK_IN"), (B, BI))
        _check_blocks([wt[2], wt[3]], "weight", ("BLOCK_OUT", "BLOCK_IN"), (BO, BI))
        if wt[1] != d[1]:
            raise WorkloadError("weight", f"input blocks {wt[1]} differ from the data's {d[1]}")
        if args[2] is not None:
            raise WorkloadError("bias", f"dense_packed tasks have bias None, got {args[2]!r}")
        _dtype(args[3], "out_dtype", "int32")
        w = Workload(DENSE, 1, 1, d[1] * BI, wt[0] * BO, batch=d[0] * B)
    else:
        d = _tensor(args[0], "data", 6)
        k = _tensor(args[1], "kernel", 6)
        _check_blocks([d[4], d[5]], "data", ("BATCH", "BLOCK_IN"), (B, BI))
        _check_blocks([k[4], k[5]], "kernel", ("BLOCK_OUT", "BLOCK_IN"), (BO, BI))
        sh, sw = _ints(args[2], "strides", (2,), minimum=1)
        ph, pw = _padding(args[3])
        groups = 1
        if task_name in (CONV2D, GROUP_CONV2D):
            dil = _ints(args[4], "dilation", (2,), minimum=1)
            if dil != [1, 1]:
                raise WorkloadError(
                    "dilation", f"dilation {dil} is unsupported (VTA supports [1, 1])")
            _dtype(args[6], "out_dtype", "int32")
        if task_name == CONV2D:
            layout = f"NCHW{B}n{BI}c"
            if args[5] != layout:
                raise WorkloadError(
                    "layout", f"layout {args[5]!r} does not match the hardware's {layout!r}")
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
