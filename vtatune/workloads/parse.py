"""Workloads from text: spec strings and AutoTVM task inputs (the ``input`` of a log line).

Spec strings (grammar in docs/workloads.md)::

    conv2d:N,H,W,CI,CO,K,PAD,STRIDE
    group_conv2d:N,H,W,CI,CO,GROUPS,K,PAD,STRIDE
    conv2d_transpose:N,H,W,CI,CO,K,PAD,STRIDE
    dense:N,IN,OUT
    ...;epilogue=bias|relu|shift_clip

``N`` is an integer or ``B`` (the hardware BATCH); ``K`` is ``K`` or ``KHxKW``; ``PAD`` and
``STRIDE`` are one value or ``H/W`` (``PAD`` also ``T/L/B/R`` if top = bottom and
left = right).  Every malformed or unsupported description raises ``WorkloadError`` whose
``field`` names the offending spec field or task argument.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from .workload import (CONV2D, CONV2D_TRANSPOSE, DENSE, EPILOGUES, GROUP_CONV2D, TEMPLATES,
                       Workload, WorkloadError)

if TYPE_CHECKING:
    from ..hardware.config import HwConfig

#: Short template names of spec strings -> AutoTVM task names.
SPEC_TEMPLATES = {"conv2d": CONV2D, "group_conv2d": GROUP_CONV2D,
                  "conv2d_transpose": CONV2D_TRANSPOSE, "dense": DENSE}
_SHORT = {v: k for k, v in SPEC_TEMPLATES.items()}
SPEC_FIELDS = {
    CONV2D: ("N", "H", "W", "CI", "CO", "K", "PAD", "STRIDE"),
    GROUP_CONV2D: ("N", "H", "W", "CI", "CO", "GROUPS", "K", "PAD", "STRIDE"),
    CONV2D_TRANSPOSE: ("N", "H", "W", "CI", "CO", "K", "PAD", "STRIDE"),
    DENSE: ("N", "IN", "OUT"),
}
#: Workload field -> spec field (to re-label errors raised by ``Workload``).
_TO_SPEC = {"batch": "N", "height": "H", "width": "W", "in_channels": "CI", "out_channels": "CO",
            "kernel_h": "K", "kernel_w": "K", "pad_h": "PAD", "pad_w": "PAD",
            "stride_h": "STRIDE", "stride_w": "STRIDE", "groups": "GROUPS", "epilogue": "epilogue"}
_INT = re.compile(r"[0-9]+\Z")


def _relabel(exc: WorkloadError, template: str) -> WorkloadError:
    field = _TO_SPEC.get(exc.field, exc.field)
    if template == DENSE:
        field = {"CI": "IN", "CO": "OUT"}.get(field, field)
    msg = str(exc)[len(exc.field) + 2:] if str(exc).startswith(exc.field + ": ") else str(exc)
    return WorkloadError(field, msg)


def _int(text: str, field: str, *, minimum: int = 1) -> int:
    t = text.strip()
    if not _INT.match(t):
        raise WorkloadError(field, f"expected an integer, got {text.strip()!r}")
    v = int(t)
    if v < minimum:
        raise WorkloadError(
            field, f"must be {'positive' if minimum == 1 else '>= ' + str(minimum)}, got {v}")
    return v


def _pair(text: str, field: str, *, minimum: int, seps: str) -> tuple[int, int]:
    form = {"K": "K or KHxKW", "PAD": "PAD or PH/PW", "STRIDE": "STRIDE or SH/SW"}[field]
    if not re.fullmatch(rf"\s*[0-9]+(\s*[{re.escape(seps)}]\s*[0-9]+)*\s*", text):
        raise WorkloadError(field, f"expected {form} (integers), got {text.strip()!r}")
    parts = re.split(f"[{re.escape(seps)}]", text.strip())
    if len(parts) == 1:
        v = _int(parts[0], field, minimum=minimum)
        return v, v
    if len(parts) == 2:
        return _int(parts[0], field, minimum=minimum), _int(parts[1], field, minimum=minimum)
    if field == "PAD" and len(parts) == 4:
        t, l, b, r = (_int(p, field, minimum=minimum) for p in parts)
        if (t, l) != (b, r):
            raise WorkloadError(field, f"asymmetric padding top/left/bottom/right {t}/{l}/{b}/{r} "
                                       "is unsupported (VTA pads top = bottom and left = right)")
        return t, l
    raise WorkloadError(field, f"expected {form}, got {text.strip()!r}")


def check_tvm_limits(w: Workload, *, pad_field: str = "PAD") -> None:
    """Restrictions of the TVM VTA templates that ``Workload`` itself does not express."""
    if w.template in (CONV2D, GROUP_CONV2D) and w.pad_h == 0 and w.pad_w != 0:
        raise WorkloadError(pad_field, f"padding {w.pad_h}/{w.pad_w}: the VTA conv templates "
                                       "pad only when the row padding is non-zero (pad_w would "
                                       "be ignored)")
    if w.template == CONV2D_TRANSPOSE:
        if w.pad_h > w.kernel_h - 1 or w.pad_w > w.kernel_w - 1:
            raise WorkloadError(pad_field, f"conv2d_transpose padding {w.pad_h}/{w.pad_w} must "
                                           f"be at most kernel - 1 "
                                           f"({w.kernel_h - 1}/{w.kernel_w - 1})")
        if w.out_height < 1 or w.out_width < 1:
            raise WorkloadError(pad_field, "conv2d_transpose output would be empty")


# ---------------------------------------------------------------------- spec strings
def parse_spec(text: str) -> Workload:
    """A ``Workload`` from a spec string (batch ``None`` when ``N`` is ``B``)."""
    if not isinstance(text, str) or ":" not in text:
        raise WorkloadError(
            "spec", f"expected TEMPLATE:FIELDS (e.g. conv2d:1,56,56,64,64,3,1,1), got {text!r}")
    head, _, rest = text.strip().partition(":")
    key = head.strip().lower()
    template = SPEC_TEMPLATES.get(key) or (key if key in TEMPLATES else None)
    if template is None:
        raise WorkloadError(
            "template", f"unknown template {head.strip()!r}; known: {', '.join(SPEC_TEMPLATES)}")
    body, *options = rest.split(";")
    epilogue = "shift_clip"
    for opt in options:
        if not opt.strip():
            continue
        k, eq, v = opt.partition("=")
        if not eq or k.strip() != "epilogue":
            raise WorkloadError(
                "option", f"unknown option {opt.strip()!r}; only epilogue=... is supported")
        epilogue = v.strip()
        if epilogue not in EPILOGUES:
            raise WorkloadError(
                "epilogue", f"unknown epilogue {epilogue!r}; known: {', '.join(EPILOGUES)}")
    names = SPEC_FIELDS[template]
    vals = body.split(",")
    if len(vals) != len(names):
        raise WorkloadError("spec", f"{_SHORT[template]} takes {len(names)} fields "
                                    f"{','.join(names)}; got {len(vals)} in {body.strip()!r}")
    f = dict(zip(names, vals))
    batch = None if f["N"].strip().upper() == "B" else _int(f["N"], "N")
    kw: dict[str, Any] = {}
    if template == DENSE:
        kw.update(height=1, width=1, in_channels=_int(f["IN"], "IN"),
                  out_channels=_int(f["OUT"], "OUT"))
    else:
        kh, kwid = _pair(f["K"], "K", minimum=1, seps="xX")
        ph, pw = _pair(f["PAD"], "PAD", minimum=0, seps="/xX")
        sh, sw = _pair(f["STRIDE"], "STRIDE", minimum=1, seps="/xX")
        kw.update(height=_int(f["H"], "H"), width=_int(f["W"], "W"),
                  in_channels=_int(f["CI"], "CI"), out_channels=_int(f["CO"], "CO"),
                  kernel_h=kh, kernel_w=kwid, pad_h=ph, pad_w=pw,
                  stride_h=sh, stride_w=sw)
        if template == GROUP_CONV2D:
            kw["groups"] = _int(f["GROUPS"], "GROUPS")
    try:
        w = Workload(template, batch=batch, epilogue=epilogue, **kw)
    except WorkloadError as exc:
        raise _relabel(exc, template) from None
    check_tvm_limits(w)
    return replace(w, name=format_spec(w))


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
        s = f"{_SHORT[w.template]}:{','.join(fields)}"
    return s if w.epilogue == "shift_clip" else f"{s};epilogue={w.epilogue}"


# ---------------------------------------------------------------------- AutoTVM inputs
class AutotvmTask(NamedTuple):
    """A parsed AutoTVM task input: the (bound) workload, its hardware and the raw target."""

    workload: Workload
    hw: "HwConfig"
    target: str
    task_name: str


_MODEL = re.compile(r"(?:^|\s)-model=(\S+)")


def model_of_target(target: str) -> str:
    """The ``-model=`` of a VTA target string (old TopHub forms accepted)."""
    if not isinstance(target, str):
        raise WorkloadError("target", f"expected a target string, got {target!r}")
    tokens = target.split()
    if not tokens or tokens[0] != "ext_dev":
        raise WorkloadError(
            "target", f"not a VTA target (expected 'ext_dev ... -model=...'): {target!r}")
    m = _MODEL.search(target)
    if not m:
        raise WorkloadError("target", f"no -model= in target {target!r}")
    return m.group(1)


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


def _load_hw(hw: Any) -> "HwConfig":
    from ..hardware.config import HwConfig
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
        from ..hardware.config import shipped_configs
        shipped = shipped_configs()
        if model not in shipped:
            raise WorkloadError("target", f"-model={model} is not a shipped hardware "
                                          f"configuration (shipped: {', '.join(shipped)}); pass "
                                          "the hardware explicitly")
        hwc = _load_hw(model)
    else:
        hwc = _load_hw(hw)
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
