"""Simulator registry: simulator name -> class, and the one place simulators are built."""
from __future__ import annotations

from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from .dram import Dram


def _fsim():
    from .fsim import FunctionalSimulator
    return FunctionalSimulator


def _tsim():
    from .tsim import TimingSimulator
    return TimingSimulator


SIMULATORS = {"fsim": _fsim, "tsim": _tsim}


def create_simulator(target: str, hw: HwConfig, dram: Dram | None = None, **options):
    if target not in SIMULATORS:
        raise ConfigurationError("target", f"unknown simulator {target!r}; available: {', '.join(SIMULATORS)}")
    return SIMULATORS[target]()(hw, dram, **options)
