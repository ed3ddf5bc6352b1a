"""Compile-only validity verdicts over a configuration space.

A verdict comes from the compiler's own checks without emitting the instruction stream:
``check_config`` (the profile's lowering checks, the runtime library's micro-op checks,
every DMA field over all tile positions) and the stream-length limit
(``stream_size.check_stream_size``: bounded by counting the host program's statements,
emitted only when the bounds straddle the limit).  These are every check of full
compilation, so a verdict equals ``compile_program``'s (``tests/compiler/test_sweep.py``),
at milliseconds per configuration.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import ErrorCategory, MeasureError, UnsupportedError
from ..hardware.config import HwConfig
from ..space import space_for
from ..workloads.workload import Workload
from .ir import REFERENCE_SYNC
from .profiles import DEFAULT_PROFILE
from .program import check_config
from .stream_size import check_stream_size

def verdict(wl: Workload, knobs: dict, hw: HwConfig, profile: str = DEFAULT_PROFILE,
            sync: str = REFERENCE_SYNC) -> tuple[bool, int, str, str]:
    """(valid, category, reason, message) of one configuration."""
    try:
        low = check_config(wl, knobs, hw, profile)
        check_stream_size(low, hw, sync)
    except MeasureError as exc:
        return False, int(exc.category), exc.reason, exc.message
    except UnsupportedError as exc:
        return False, int(ErrorCategory.UNKNOWN_ERROR), "not_modelled", str(exc)
    return True, 0, "", ""


def sweep(wl: Workload, hw: HwConfig, indices: Iterable[int] | None = None,
          name: str | None = None, profile: str = DEFAULT_PROFILE,
          sync: str = REFERENCE_SYNC) -> Iterator[dict]:
    """One JSON-ready record per configuration (all of them unless ``indices``)."""
    wl = wl.bind(hw)
    space = space_for(wl, hw)
    for index in (range(space.size) if indices is None else indices):
        cfg = space.get(index)
        valid, category, reason, message = verdict(wl, cfg.knobs, hw, profile, sync)
        yield {"workload": name or wl.name, "hw": hw.name, "profile": profile, "sync": sync,
               "index": index, "knobs": cfg.to_json_dict()["entity"], "valid": valid,
               "category": category, "reason": reason, "message": message}
