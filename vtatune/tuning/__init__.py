"""Tuners (backend-agnostic): propose configuration indices of a ``ConfigSpace`` in batches
and learn from ``MeasureOutcome``s.  ``create_tuner(name, space, **kw)`` with ``"random"``,
``"grid"``, ``"ga"`` or ``"xgb"`` (docs/tuners.md).  Tuners see a space and, for the
model-based one, a feature function handed to them; nothing here knows VTA.  xgboost is
imported only when an ``XGBTuner`` is created."""
from .base import InitFn, MeasureOutcome, Tuner, create_tuner, register_tuner, tuner_names
from .features import FeatureFn, knob_feature_fn, space_features
from .ga import GATuner
from .grid import GridSearchTuner
from .random import RandomTuner
from .sa import SimulatedAnnealingOptimizer
from .xgb import XGBoostCostModel, XGBTuner, average_recall

__all__ = ["FeatureFn", "GATuner", "GridSearchTuner", "InitFn", "MeasureOutcome", "RandomTuner",
           "SimulatedAnnealingOptimizer", "Tuner", "XGBTuner", "XGBoostCostModel",
           "average_recall", "create_tuner", "knob_feature_fn", "register_tuner",
           "space_features", "tuner_names"]
