"""Compile-only validity verdicts over a configuration space.

A verdict comes from the compiler's own checks (``check_config``: the lowering's SRAM,
DMA and padding checks and the runtime library's micro-op checks, computed once per tile
shape, not per tile) without emitting the instruction stream, so a sweep of a whole
space takes milliseconds per configuration.  ``tests/compiler`` shows that these verdicts
equal full compilation.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import ErrorCategory, MeasureError, UnsupportedError
from ..hardware.config import HwConfig
from ..space import space_for
from ..workloads.workload import Workload
from .program import check_config


def verdict(wl: Workload, knobs: dict, hw: HwConfig) -> tuple[bool, int, str, str]:
    """(valid, category, reason, message) of one configuration."""
    try:
        check_config(wl, knobs, hw)
    except MeasureError as exc:
        return False, int(exc.category), exc.reason, exc.message
    except UnsupportedError as exc:
        return False, int(ErrorCategory.UNKNOWN_ERROR), "not_modelled", str(exc)
    return True, 0, "", ""


def sweep(wl: Workload, hw: HwConfig, indices: Iterable[int] | None = None,
          name: str | None = None) -> Iterator[dict]:
    """One JSON-ready record per configuration (all of them unless ``indices``)."""
    wl = wl.bind(hw)
    space = space_for(wl, hw)
    for index in (range(space.size) if indices is None else indices):
        cfg = space.get(index)
        valid, category, reason, message = verdict(wl, cfg.knobs, hw)
        yield {"workload": name or wl.name, "hw": hw.name, "index": index,
               "knobs": cfg.to_json_dict()["entity"], "valid": valid, "category": category,
               "reason": reason, "message": message}
