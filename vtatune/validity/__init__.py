"""Validity classifier (issue 11 item 1): features of template configurations computed
without compiling, labels from compile-only verdicts or measured records, and a calibrated
scikit-learn model per template and hardware (docs/validity.md)."""
from .features import CONV_DERIVED, DENSE_DERIVED, FEATURE_SETS, digits_of, feature_names, features
from .init import ProbeThenClassify, ValidityInit, grid_components
from .labels import (
                       LABEL_SOURCES,
                       RecordLabels,
                       SweepLabels,
                       hw_key,
                       record_label,
                       record_labels,
                       sweep_labels,
)
from .model import (
                       KINDS,
                       LabelledSet,
                       ValidityModel,
                       leave_one_workload_out,
                       metrics,
                       record_set,
                       sweep_set,
                       train,
                       workload_id,
)
from .screen import ExactScreen, LearnedScreen

__all__ = ["CONV_DERIVED", "DENSE_DERIVED", "FEATURE_SETS", "KINDS", "LABEL_SOURCES",
           "ExactScreen", "LabelledSet", "LearnedScreen", "ProbeThenClassify", "RecordLabels",
           "SweepLabels", "ValidityInit", "ValidityModel", "digits_of", "feature_names",
           "features", "grid_components", "hw_key", "leave_one_workload_out", "metrics",
           "record_label", "record_labels", "record_set", "sweep_labels", "sweep_set", "train",
           "workload_id"]
