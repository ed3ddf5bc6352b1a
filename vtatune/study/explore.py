"""Exhaustive exploration of a task's configuration space through the normal tuning
pipeline, and the table read back from the database.

``explore`` is ``autotune.tune`` with the grid tuner and a budget of the whole space: every
configuration is compiled and run by the measurement workers and stored as a ``measured``
record as soon as its chunk finishes, so an interrupted exploration loses at most the
chunk in flight and a rerun measures only what is missing.  ``load_study`` reads the
records of one runner label back into per-index arrays (``StudyData``); the analyses work
on those arrays only, never on the database.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autotune import TuneSummary, tune
from ..errors import ConfigurationError, IncompleteStudyError
from ..measure.runners import Runner, runner_for
from ..space import ConfigSpace
from ..task import VtaTask
from ..validity.labels import record_label

#: ``StudyData.label`` values.
VALID, INVALID, NO_LABEL, MISSING = 1, 0, -1, -2


@dataclass
class StudyData:
    """One exhaustively measured space.  Arrays are indexed by configuration index.

    ``label``: ``VALID`` (ran), ``INVALID`` (the configuration is rejected: compile,
    runtime or wrong answer), ``NO_LABEL`` (a record that says nothing about the
    configuration: a crash, a timeout, an unmodelled case) or ``MISSING`` (no record yet).
    ``cost`` is the record's mean cost in seconds (``inf`` unless valid), ``reason`` the
    record's reason code (``""`` when valid, ``"missing"`` when not measured).
    """

    workload: str
    spec: str
    hw: str
    runner: str
    space: ConfigSpace
    flops: float
    label: np.ndarray      # int8
    error_no: np.ndarray   # int16, -1 when missing
    reason: np.ndarray     # object (str)
    cost: np.ndarray       # float64 seconds
    work: np.ndarray | None = None  # the records' all_cost: worker seconds spent on each

    @property
    def size(self) -> int:
        return int(self.label.size)

    @property
    def valid(self) -> np.ndarray:
        return self.label == VALID

    @property
    def measured(self) -> np.ndarray:
        return self.label != MISSING

    @property
    def n_missing(self) -> int:
        return int(np.sum(self.label == MISSING))

    @property
    def complete(self) -> bool:
        return self.n_missing == 0

    @property
    def throughput(self) -> np.ndarray:
        """Operations per second of each configuration; 0 where not valid (AutoTVM's label
        of a failed measurement)."""
        out = np.zeros(self.size)
        v = self.valid
        out[v] = self.flops / self.cost[v]
        return out

    def require_complete(self) -> None:
        if not self.complete:
            raise IncompleteStudyError(self.workload, self.n_missing, self.size)


def load_study(db: Any, task: VtaTask, runner: Runner | str = "tsim") -> StudyData:
    """The measured records of ``task`` with ``runner``'s label, one per index (the first
    stored, as the tuning session's resume takes them).  Records of other runner labels
    (another token scheme, other timing parameters, fsim) are ignored."""
    runner = runner_for(runner)
    label_name = runner.label(task)
    size = task.space.size
    label = np.full(size, MISSING, dtype=np.int8)
    error_no = np.full(size, -1, dtype=np.int16)
    reason = np.full(size, "missing", dtype=object)
    cost = np.full(size, math.inf)
    work = np.full(size, math.nan)
    recs = [r for r in db.records(workload_key=task.key, hw=task.hw.name, source="measured")
            if r.runner == label_name and r.config_index is not None
            and 0 <= r.config_index < size]
    for r in sorted(recs, key=lambda r: r.timestamp):
        i = r.config_index
        if label[i] != MISSING:
            continue
        lab = record_label(r)
        mean = r.mean_cost
        if lab == 1 and not math.isfinite(mean):
            lab = None  # "valid" without a usable time cannot be ranked; count it apart
        label[i] = NO_LABEL if lab is None else lab
        error_no[i] = r.error_no
        reason[i] = "" if lab == 1 else (r.reason or f"error_no_{r.error_no}")
        cost[i] = mean if lab == 1 else math.inf
        work[i] = r.all_cost
    return StudyData(workload=task.name, spec=task.workload.spec, hw=task.hw.name,
                     runner=label_name, space=task.space, flops=task.flops, label=label,
                     error_no=error_no, reason=reason, cost=cost, work=work)


def explore(task: VtaTask, runner: Runner | str = "tsim", *, db: Any, workers: int = 2,
            on_progress=None, max_size: int | None = None,
            pool=None) -> tuple[TuneSummary, StudyData]:
    """Measure every configuration of ``task`` not yet recorded for ``runner`` (grid tuner
    over the whole space, ``autotune.tune``), then read the study table back.

    ``on_progress(summary, n)`` is passed through to the tuning session.  ``max_size``
    refuses spaces larger than that (``ConfigurationError`` on ``space``) before anything
    is measured.  ``pool`` (a ``MeasurePool`` or ``DaskMeasurePool``, see
    ``measure.executors``) says where the measurements run; it is not closed here.  Without
    it the session starts ``workers`` local processes.  After an interruption ``summary.interrupted`` is set and the returned
    data is incomplete (``StudyData.complete``); rerunning measures only what is missing.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigurationError("workers", f"must be a positive integer, got {workers!r}")
    runner = runner_for(runner)
    size = task.space.size
    if max_size is not None and size > max_size:
        raise ConfigurationError("space", f"{task.name} has {size} configurations, more than "
                                          f"the {max_size} an exhaustive study accepts")
    summary = tune(task, runner, db=db, tuner="grid", n_trial=size, workers=workers,
                   on_progress=on_progress, pool=pool)
    return summary, load_study(db, task, runner)
