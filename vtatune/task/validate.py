"""Validation of imported VTA records against their task's configuration space.

``db.autotvm.import_log`` knows nothing of workloads (the database sits below them); it
calls a validator on every decoded record.  ``vta_record_validator`` is that validator for
VTA records: the record's AutoTVM input must resolve to a task (older TopHub signatures
included, see ``workloads.autotvm.SIGNATURES``), and its entity is applied to the task's
space as AutoTVM's ``ApplyHistoryBest`` applies it (``ConfigSpace.apply_entity``): the
entity, not the index; a split ``[outer, inner]`` by its inner factor.  The stored
``config_index`` is the applied point's index.  What the line says differently — a log index
that is not that point's, a split whose factors do not multiply to the axis length — is a
warning, not a refusal: noted in the record's ``message`` and reported per line through
``db.autotvm.warn_line`` (``ImportResult.warnings``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..db.autotvm import warn_line
from ..db.records import TuningRecord
from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from ..workloads.autotvm import parse_autotvm_input
from .task import VtaTask

Validator = Callable[[TuningRecord], TuningRecord]


def vta_record_validator(hw: HwConfig | None = None) -> Validator:
    """A validator for ``import_log``: VTA records checked (``ConfigurationError`` naming the
    field; ``PackedForOtherHardwareError``, reason ``packed_for_other_hw``, for a task packed
    for another configuration), other backends' records passed through.  ``hw`` pins the
    hardware (else each line's ``-model=`` must name a shipped configuration).  A record is
    stored with ``config_index`` = its applied entity's index and, when the line was applied
    with a reservation, a ``message`` saying so."""
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
        entity, notes = task.space.apply_entity(rec.config)
        if not notes:
            return replace(rec, config_index=entity.index)
        for note in notes:
            warn_line(note.reason, note.message,
                      "config.index" if note.field == "index" else f"config.entity.{note.field}")
        text = "; ".join(n.message for n in notes)
        return replace(rec, config_index=entity.index,
                       message=f"{rec.message}; {text}" if rec.message else text)

    return validate
