"""Tuners (backend-agnostic): propose configuration indices of a ``ConfigSpace`` in batches
and learn from ``MeasureOutcome``s.  ``create_tuner(name, space, **kw)`` with ``"random"``,
``"grid"``, ``"ga"`` or ``"xgb"`` (docs/tuners.md).  xgboost is imported only when an
``XGBTuner`` is created."""
from .base import InitFn, MeasureOutcome, Tuner, create_tuner, register_tuner, tuner_names
from .features import (
                   CONV_FEATURES,
                   DENSE_FEATURES,
                   itervar_feature_names,
                   itervar_features,
                   itervar_features_batch,
)
from .ga import GATuner
from .grid import GridSearchTuner
from .random import RandomTuner
from .sa import SimulatedAnnealingOptimizer
from .xgb import XGBoostCostModel, XGBTuner, average_recall

__all__ = ["CONV_FEATURES", "DENSE_FEATURES", "GATuner", "GridSearchTuner", "InitFn",
           "MeasureOutcome", "RandomTuner", "SimulatedAnnealingOptimizer", "Tuner",
           "XGBTuner", "XGBoostCostModel", "average_recall", "create_tuner",
           "itervar_feature_names", "itervar_features", "itervar_features_batch",
           "register_tuner", "tuner_names"]
