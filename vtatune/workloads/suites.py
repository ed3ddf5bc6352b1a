"""Named workload suites and name resolution.

Suites (batch ``None`` = the hardware BATCH, epilogue ``shift_clip`` unless stated):

* ``resnet18``  C1..C11, ResNet-18's conv2d layers (C1 listed but not offloadable);
* ``mobilenet`` D1..D9, MobileNet group convolutions;
* ``dcgan``     CT1..CT3, DCGAN transposed convolutions;
* ``dense``     0..2, the dense benchmarks (explicit batches 128, 1, 4);
* ``deepbench`` 0..48, DeepBench inference convolutions VTA can offload (methods §A.2).

Every workload ``<suite>.<id>`` also resolves as ``<suite>.<id>.bias`` and
``<suite>.<id>.relu`` (same shape, other epilogue); those variants are not listed.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .autotvm import load_hw, looks_like_autotvm, parse_autotvm_input
from .spec import parse_spec
from .workload import CONV2D, CONV2D_TRANSPOSE, DENSE, GROUP_CONV2D, Workload, WorkloadError

if TYPE_CHECKING:
    from ..hardware.config import HwConfig

VARIANTS = ("bias", "relu")


def _conv(name: str, h: int, w: int, ci: int, co: int, k: int | tuple[int, int], pad: int,
          stride: int, **extra: Any) -> Workload:
    kh, kw = (k, k) if isinstance(k, int) else k
    return Workload(CONV2D, h, w, ci, co, kh, kw, pad, pad, stride, stride, name=name, **extra)


def _resnet18() -> list[Workload]:
    rows = [  # name, H, W, CI, CO, k, pad, stride (vta-spec §6.9)
        ("C2", 56, 56, 64, 64, 3, 1, 1), ("C3", 56, 56, 64, 128, 3, 1, 2),
        ("C4", 56, 56, 64, 128, 1, 0, 2), ("C5", 28, 28, 128, 128, 3, 1, 1),
        ("C6", 28, 28, 128, 256, 3, 1, 2), ("C7", 28, 28, 128, 256, 1, 0, 2),
        ("C8", 14, 14, 256, 256, 3, 1, 1), ("C9", 14, 14, 256, 512, 3, 1, 2),
        ("C10", 14, 14, 256, 512, 1, 0, 2), ("C11", 7, 7, 512, 512, 3, 1, 1),
    ]
    c1 = _conv("resnet18.C1", 224, 224, 3, 64, 7, 3, 2, offloadable=False,
               note="3 input channels: the first ResNet-18 layer runs on the ARM CPU")
    return [c1] + [_conv(f"resnet18.{n}", *r) for n, *r in rows]


def _mobilenet() -> list[Workload]:
    rows = [  # name, H, W, CI, CO, groups, stride (all 3x3, pad 1; vta-spec §6.9)
        ("D1", 112, 112, 32, 32, 2, 1), ("D2", 112, 112, 64, 64, 4, 2),
        ("D3", 56, 56, 128, 128, 8, 1), ("D4", 56, 56, 128, 128, 8, 2),
        ("D5", 28, 28, 256, 256, 16, 1), ("D6", 28, 28, 256, 256, 16, 2),
        ("D7", 14, 14, 512, 512, 32, 1), ("D8", 14, 14, 512, 512, 32, 2),
        ("D9", 7, 7, 1024, 1024, 64, 1),
    ]
    return [Workload(GROUP_CONV2D, h, w, ci, co, 3, 3, 1, 1, s, s, groups=g, name=f"mobilenet.{n}")
            for n, h, w, ci, co, g, s in rows]


def _dcgan() -> list[Workload]:
    rows = [("CT1", 4, 1024, 512), ("CT2", 8, 512, 256), ("CT3", 16, 256, 128)]
    return [Workload(CONV2D_TRANSPOSE, hw, hw, ci, co, 4, 4, 1, 1, 2, 2, name=f"dcgan.{n}")
            for n, hw, ci, co in rows]


def _dense() -> list[Workload]:
    rows = [(128, 128, 128), (1, 256, 128), (4, 256, 128)]  # (batch, in, out)
    return [Workload(DENSE, 1, 1, i, o, batch=b, name=f"dense.{n}")
            for n, (b, i, o) in enumerate(rows)]


#: DeepBench inference convolutions (methods.md §A.2), as (H, W, C, K, (R, S), pad, stride),
#: in the order listed there.  1x1 groups have pad 0.
DEEPBENCH_SHAPES: tuple[tuple[int, int, int, int, tuple[int, int], int, int], ...] = (
    *[(h, w, c, k, (3, 3), 1, 1) for h, w, c, k in (
        (54, 54, 64, 64), (27, 27, 128, 128), (14, 14, 128, 256), (7, 7, 256, 512),
        (112, 112, 64, 128), (56, 56, 128, 256), (28, 28, 256, 512), (14, 14, 512, 512),
        (7, 7, 512, 512), (56, 56, 64, 64), (28, 28, 128, 128), (14, 14, 256, 256),
        (24, 240, 16, 32), (12, 120, 32, 64), (6, 60, 64, 128), (80, 350, 64, 64),
        (40, 175, 128, 128), (20, 84, 256, 256), (10, 42, 512, 512))],
    (28, 28, 192, 32, (5, 5), 2, 1), (14, 14, 512, 48, (5, 5), 2, 1),
    (7, 7, 832, 128, (5, 5), 2, 1), (80, 350, 64, 128, (5, 5), 1, 2),
    (40, 175, 128, 256, (5, 5), 1, 2), (20, 84, 256, 512, (5, 5), 1, 2),
    (79, 341, 32, 32, (5, 10), 0, 2),
    *[(h, w, c, k, (1, 1), 0, 1) for h, w, c, k in (
        (28, 28, 192, 64), (14, 14, 512, 192), (7, 7, 832, 256), (14, 14, 256, 256),
        (7, 7, 512, 512), (112, 112, 64, 64), (56, 56, 64, 256), (56, 56, 256, 64),
        (28, 28, 128, 512), (28, 28, 512, 128), (14, 14, 256, 1024), (14, 14, 1024, 256),
        (7, 7, 512, 2048), (7, 7, 2048, 512))],
    *[(h, w, c, k, (1, 1), 0, 2) for h, w, c, k in (
        (56, 56, 64, 256), (28, 28, 128, 512), (14, 14, 256, 1024), (56, 56, 256, 128),
        (28, 28, 512, 256), (28, 28, 512, 1024), (14, 14, 1024, 512), (14, 14, 1024, 2048))],
    (7, 7, 2048, 512, (1, 1), 3, 2),
)


def _deepbench() -> list[Workload]:
    from ..hardware.config import HwConfig

    default = HwConfig.load()
    seen: set = set()
    out: list[Workload] = []
    for shape in DEEPBENCH_SHAPES:
        if shape in seen:
            continue
        seen.add(shape)
        h, w, c, k, (r, s), pad, stride = shape
        wl = _conv(f"deepbench.{len(out)}", h, w, c, k, (r, s), pad, stride)
        try:
            wl.bind(default)
        except WorkloadError:
            continue
        out.append(wl)
    return out


_BUILDERS = {"resnet18": _resnet18, "mobilenet": _mobilenet, "dcgan": _dcgan,
             "dense": _dense, "deepbench": _deepbench}


@lru_cache(maxsize=None)
def _suite(name: str) -> tuple[Workload, ...]:
    return tuple(_BUILDERS[name]())


def list_suites() -> list[str]:
    """Names of the built-in suites."""
    return list(_BUILDERS)


def suite(name: str) -> list[Workload]:
    """The workloads of a suite, in order (variants are not listed)."""
    if name not in _BUILDERS:
        raise WorkloadError("suite", f"unknown suite {name!r}; suites: {', '.join(_BUILDERS)}")
    return list(_suite(name))


def all_workloads() -> list[Workload]:
    return [w for s in _BUILDERS for w in _suite(s)]


def _by_name(name: str) -> Workload:
    head, _, tail = name.partition(".")
    if head not in _BUILDERS:
        raise WorkloadError("workload", f"unknown workload {name!r}: expected "
                                        "SUITE.ID[.bias|.relu] "
                                        f"with SUITE one of {', '.join(_BUILDERS)}, a spec string "
                                        "(TEMPLATE:FIELDS) or an AutoTVM input (JSON)")
    ident, _, variant = tail.partition(".")
    base = next((w for w in _suite(head) if w.name.lower() == f"{head}.{ident}".lower()), None)
    if base is None:
        ids = ", ".join(w.name.partition(".")[2] for w in _suite(head))
        raise WorkloadError("workload", f"no workload {ident!r} in suite {head!r} (ids: {ids})")
    if not variant:
        return base
    if variant not in VARIANTS:
        raise WorkloadError("workload", f"unknown variant {variant!r} of {base.name}; variants: "
                                        f"{', '.join(VARIANTS)}")
    return replace(base, epilogue=variant, name=f"{base.name}.{variant}")


def resolve_workload(name_or_spec: Any, hw: "HwConfig | str | None" = None
                     ) -> tuple[Workload, "HwConfig"]:
    """A workload bound to its hardware, from a suite name (with optional variant), a spec
    string, an AutoTVM task input (JSON text or list) or a ``Workload``.

    The hardware is ``hw`` if given, else the AutoTVM input's ``-model=``, else the default
    configuration.  Raises ``WorkloadError`` if the workload cannot be bound.
    """
    if isinstance(name_or_spec, Workload):
        hwc = load_hw(hw)
        return name_or_spec.bind(hwc), hwc
    if isinstance(name_or_spec, (list, tuple, dict)) or (
            isinstance(name_or_spec, str) and looks_like_autotvm(name_or_spec)):
        task = parse_autotvm_input(name_or_spec, hw)
        return task.workload, task.hw
    w = get_workload(name_or_spec)
    hwc = load_hw(hw)
    return w.bind(hwc), hwc


def get_workload(name_or_spec: Any, hw: "HwConfig | str | None" = None) -> Workload:
    """Resolve a suite name (``resnet18.C2``, ``dense.0.relu``), a spec string
    (``conv2d:1,56,56,64,64,3,1,1``) or an AutoTVM task input (JSON text or list).

    Without ``hw`` names and specs come back unbound (batch may be ``None``); with ``hw``
    (a ``HwConfig``, shipped name or file) the result is ``bind(hw)``-ed.  AutoTVM inputs
    are always bound (to ``hw`` or the target's ``-model=``).
    """
    if isinstance(name_or_spec, Workload):
        return name_or_spec if hw is None else name_or_spec.bind(load_hw(hw))
    if isinstance(name_or_spec, (list, tuple, dict)):
        return parse_autotvm_input(name_or_spec, hw).workload
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise WorkloadError("workload", "expected a workload name, spec string or AutoTVM "
                                        f"input, got {name_or_spec!r}")
    text = name_or_spec.strip()
    if looks_like_autotvm(text):
        return parse_autotvm_input(text, hw).workload
    w = parse_spec(text) if ":" in text else _by_name(text)
    return w if hw is None else w.bind(load_hw(hw))
