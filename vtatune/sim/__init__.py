"""Simulators of the VTA accelerator (fsim: functional, HLS semantics) and simulated DRAM."""
from .dram import Dram
from .fsim import FunctionalSimulator, RunResult

__all__ = ["Dram", "FunctionalSimulator", "RunResult"]
