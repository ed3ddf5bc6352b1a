"""``apply_history_best``-style lookup: the best config per workload and hardware.

AutoTVM's ``ApplyHistoryBest`` (TVM v0.14 ``autotvm/task/dispatcher.py``) ignores records
whose ``error_no`` is not 0, keeps per (target model, workload) the record with the lowest
mean cost, and on equal means the one it read first.  Here the model is the ``hw`` column
(the target's ``-model=``), the order is the order records were stored (file order for an
imported log), and only measurements count (``measured`` and ``imported``, never
``predicted``).  AutoTVM's second table, by target *keys* (used when the model is unknown),
has no counterpart: every VTA target names its model.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .autotvm import write_log
from .records import TuningRecord

if TYPE_CHECKING:
    from .storage import Database


def best_record(db: "Database", workload_key: str, hw: str) -> TuningRecord | None:
    """The best successful record of ``workload_key`` on ``hw``, or None."""
    recs = db.best(workload_key, hw, k=1)
    return recs[0] if recs else None


def best_config(db: "Database", workload_key: str, hw: str) -> dict[str, Any] | None:
    """The AutoTVM ``config`` dict (``{"index", "code_hash", "entity"}`` for VTA) of the best
    record of ``workload_key`` on ``hw``, or None when there is no successful record."""
    rec = best_record(db, workload_key, hw)
    return None if rec is None else rec.config


def pick_best(db: "Database", path: str | os.PathLike, *, hw: str | None = None) -> int:
    """Write the best record of every (workload, hardware) pair — of one ``hw`` if given — to
    the AutoTVM log ``path`` (like ``tvm.autotvm.record.pick_best``); returns the line count.
    """
    pairs: dict[tuple[str, str], None] = {}
    for g in db.stats()["groups"]:
        if g["error_no"] == 0 and g["source"] != "predicted" and hw in (None, g["hw"]):
            pairs[(g["workload_key"], g["hw"])] = None
    best = [r for key, h in pairs for r in db.best(key, h, k=1)]
    return write_log(path, best, append=False)
