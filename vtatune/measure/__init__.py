"""Measurement: build a configuration (compile), run it on a target, return an
AutoTVM-shaped result; a pool of worker processes with build/run timeouts."""
from .measure import MeasureInput, MeasureResult, measure_one
from .pool import MeasurePool

__all__ = ["MeasureInput", "MeasurePool", "MeasureResult", "measure_one"]
