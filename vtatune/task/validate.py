"""Validation of imported VTA records against their task's configuration space.

``db.autotvm.import_log`` knows nothing of workloads (the database sits below them); it
calls a validator on every decoded record.  ``vta_record_validator`` is that validator for
VTA records: the record's AutoTVM input must resolve to a task, and its entity must be a
point of the task's space.  The stored ``config_index`` is the index the entity decodes to
(AutoTVM's ``ApplyHistoryBest`` applies the entity, not the index); a line whose index
disagrees is kept with that correction and the disagreement noted in ``message``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..db.records import TuningRecord
from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from ..workloads.autotvm import parse_autotvm_input
from .task import VtaTask

Validator = Callable[[TuningRecord], TuningRecord]


def vta_record_validator(hw: HwConfig | None = None) -> Validator:
    """A validator for ``import_log``: VTA records checked (``ConfigurationError`` naming the
    field), other backends' records passed through.  ``hw`` pins the hardware (else each
    line's ``-model=`` must name a shipped configuration)."""
    tasks: dict[tuple[str, str], VtaTask] = {}

    def task_of(rec: TuningRecord) -> VtaTask:
        k = (rec.target, rec.workload_key)
        if k not in tasks:
            parsed = parse_autotvm_input([rec.target, rec.task_name, rec.args, {}], hw)
            tasks[k] = VtaTask(parsed.workload, parsed.hw)
        return tasks[k]

    def validate(rec: TuningRecord) -> TuningRecord:
        if rec.backend != "vta":
            return rec
        task = task_of(rec)
        if not isinstance(rec.config, dict):
            raise ConfigurationError("config", f"expected an object, got {rec.config!r}")
        given = rec.config.get("index")
        if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
            raise ConfigurationError("config.index", f"must be an integer, got {given!r}")
        entity = task.space.from_json_dict(rec.config, check_index=False)
        if given is None or given == entity.index:
            return replace(rec, config_index=entity.index)
        note = (f"log index {given} does not decode to its entity; entity applied "
                f"(index {entity.index})")
        return replace(rec, config_index=entity.index,
                       message=f"{rec.message}; {note}" if rec.message else note)

    return validate
