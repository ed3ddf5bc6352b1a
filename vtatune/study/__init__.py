"""The invalid-configuration study (issue 11 item 4, docs/study.md): exhaustive
exploration of a workload's space through the tuning pipeline, the analyses E1 (invalid
fraction by reason), E2 (clustering on the knob grid) and E3 (cost model with invalid
configurations kept or removed), PNG figures and a Markdown report per run."""
from .analysis import (
                       DEFAULT_SIZES,
                       EDGE_MODES,
                       SCENARIOS,
                       CostModelStudy,
                       best_config,
                       clustering,
                       cost_model_study,
                       default_map_knobs,
                       grid_edges,
                       grid_map,
                       invalid_by_reason,
                       ndcg_at_k,
                       neighbour_validity,
                       pairwise_accuracy,
                       precision_at_k,
                       top_share_k,
                       valid_at_k,
                       validity_auc,
)
from .explore import INVALID, MISSING, NO_LABEL, VALID, StudyData, explore, load_study
from .run import StudyOptions, WorkloadStudy, analyse, study_workload, write_suite_report

__all__ = ["DEFAULT_SIZES", "EDGE_MODES", "INVALID", "MISSING", "NO_LABEL", "SCENARIOS",
           "VALID", "CostModelStudy", "StudyData", "StudyOptions", "WorkloadStudy", "analyse",
           "best_config", "clustering", "cost_model_study", "default_map_knobs", "explore",
           "grid_edges", "grid_map", "invalid_by_reason", "load_study", "ndcg_at_k",
           "neighbour_validity", "pairwise_accuracy", "precision_at_k", "study_workload",
           "top_share_k", "valid_at_k", "validity_auc", "write_suite_report"]
