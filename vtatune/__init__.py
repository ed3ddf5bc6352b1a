"""vtatune: auto-tuning of tensor programs for the VTA accelerator.

Public surface of this release: the hardware model, the ISA codec and the functional
simulator.  Nothing is loaded at import time.
"""
from ._version import __version__

__all__ = ["__version__"]
