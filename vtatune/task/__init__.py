"""The VTA tuning task (workload + hardware + token scheme, built once) and the validation
of imported records against a task's space."""
from .task import DEFAULT_SYNC, VtaTask, check_sync
from .validate import vta_record_validator

__all__ = ["DEFAULT_SYNC", "VtaTask", "check_sync", "vta_record_validator"]
