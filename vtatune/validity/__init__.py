"""Validity classifier (issue 11 item 1): features of template configurations computed
without compiling, labels from compile-only verdicts or measured records, and a calibrated
scikit-learn model per template and hardware (docs/validity.md)."""
from .features import CONV_DERIVED, DENSE_DERIVED, FEATURE_SETS, digits_of, feature_names, features
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

__all__ = ["CONV_DERIVED", "DENSE_DERIVED", "FEATURE_SETS", "KINDS", "LABEL_SOURCES",
           "LabelledSet", "RecordLabels", "SweepLabels", "ValidityModel", "digits_of",
           "feature_names", "features", "hw_key", "leave_one_workload_out", "metrics",
           "record_label", "record_labels", "record_set", "sweep_labels", "sweep_set", "train",
           "workload_id"]
