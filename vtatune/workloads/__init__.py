"""Workloads: operator shapes (workload), named suites, spec strings (spec) and the
AutoTVM task-input codec (autotvm)."""
from .autotvm import AutotvmTask, autotvm_input, model_of_target, parse_autotvm_input
from .spec import parse_spec
from .suites import (VARIANTS, all_workloads, get_workload, list_suites, resolve_workload,
                     suite)
from .workload import (CONV2D, CONV2D_TRANSPOSE, DENSE, EPILOGUES, GROUP_CONV2D, TEMPLATES,
                       Workload, WorkloadError, format_spec)

__all__ = ["AutotvmTask", "CONV2D", "CONV2D_TRANSPOSE", "DENSE", "EPILOGUES", "GROUP_CONV2D",
           "TEMPLATES", "VARIANTS", "Workload", "WorkloadError", "all_workloads",
           "autotvm_input", "format_spec", "get_workload", "list_suites", "model_of_target",
           "parse_autotvm_input", "parse_spec", "resolve_workload", "suite"]
