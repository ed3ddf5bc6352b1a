"""VTA auto-tuning: the tuning driver (tasks, runners, tuners and the database joined), the
VTA loop-nest features, and best-so-far histories."""
from .features import (CONV_FEATURES, DENSE_FEATURES, VTA_FEATURE_TYPES, itervar_feature_fn,
                       itervar_feature_names, itervar_features, itervar_features_batch,
                       vta_feature_fn)
from .session import TuneSummary, tune

__all__ = ["CONV_FEATURES", "DENSE_FEATURES", "TuneSummary", "VTA_FEATURE_TYPES",
           "itervar_feature_fn", "itervar_feature_names", "itervar_features",
           "itervar_features_batch", "tune", "vta_feature_fn"]
