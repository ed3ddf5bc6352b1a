"""Workloads: operator shapes, named suites, spec strings and AutoTVM task inputs."""
from .parse import (AutotvmTask, autotvm_input, format_spec, model_of_target,
                    parse_autotvm_input, parse_spec)
from .suites import (VARIANTS, all_workloads, get_workload, list_suites, resolve_workload,
                     suite)
from .workload import (CONV2D, CONV2D_TRANSPOSE, DENSE, EPILOGUES, GROUP_CONV2D, TEMPLATES,
                       Workload, WorkloadError)

__all__ = ["AutotvmTask", "CONV2D", "CONV2D_TRANSPOSE", "DENSE", "EPILOGUES", "GROUP_CONV2D",
           "TEMPLATES", "VARIANTS", "Workload", "WorkloadError", "all_workloads",
           "autotvm_input", "format_spec", "get_workload", "list_suites", "model_of_target",
           "parse_autotvm_input", "parse_spec", "resolve_workload", "suite"]
