"""Simulator registry: target name -> simulator class (one interface for every target)."""
from __future__ import annotations

from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from .dram import Dram


def _fsim():
    from .fsim import FunctionalSimulator
    return FunctionalSimulator


SIMULATORS = {"fsim": _fsim}


def create_simulator(target: str, hw: HwConfig, dram: Dram | None = None):
    if target not in SIMULATORS:
        raise ConfigurationError("target", f"unknown simulator {target!r}; available: {', '.join(SIMULATORS)}")
    return SIMULATORS[target]()(hw, dram)
