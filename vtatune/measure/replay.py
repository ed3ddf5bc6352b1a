"""Replay: re-evaluate every record of an AutoTVM log — the entity applied as AutoTVM's
``ApplyHistoryBest`` applies it (``ConfigSpace.apply_entity``: the entity, not the index; a
split by its inner factor), compile-only validity, and (with a runner) correctness and
simulated time.  Records of other AutoTVM targets (TopHub's VTA logs hold arm_cpu records
for the host) are skipped, not errors."""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np

from ..compiler.sweep import verdict
from ..db.autotvm import RejectedLine, iter_log
from ..errors import UnsupportedError, VtatuneError
from ..hardware.config import HwConfig
from ..hardware.target import is_vta_target
from ..task import VtaTask
from ..workloads.autotvm import parse_autotvm_input
from .runners import Runner, evaluate

def replay_record(rec: dict, lineno: int, hw: HwConfig | None, runner: Runner | None,
                  check: bool) -> dict:
    """One row: workload, index, the applied entity's index and knobs, whether the index
    decodes to the entity, the warnings of the application (``warnings``: reason, field,
    message each), the compile-only verdict, and with ``runner``/``check`` the simulated
    time and correctness.  A record of another (non-VTA) target gives a ``skipped`` row."""
    row: dict = {"line": lineno}
    target = rec["input"][0]
    if not is_vta_target(target):
        row.update(skipped=f"not a VTA target ({target!r}): task {rec['input'][1]!r} is not "
                           "replayed")
        return row
    parsed = parse_autotvm_input(rec["input"], hw)
    task = VtaTask(parsed.workload, parsed.hw)
    given = rec["config"]
    row.update(workload=task.workload.name or rec["input"][1], hw=task.hw.name,
               index=given.get("index"))
    try:
        cfg, notes = task.space.apply_entity(given)
    except VtatuneError as exc:
        row["entity_error"] = str(exc)  # the entity itself is not a point of this space
        row["index_matches"] = False
        return row
    row["applied_index"] = cfg.index
    row["index_matches"] = given.get("index") in (None, cfg.index)
    row["warnings"] = [n._asdict() for n in notes]
    if not row["index_matches"]:
        row["index_error"] = (f"record index {given.get('index')} does not match its entity, "
                              f"which is index {cfg.index}")
    row["knobs"] = cfg.knobs
    valid, cat, reason, msg = verdict(task.workload, cfg.knobs, task.hw)
    result = rec.get("result") or [[], None]
    row.update(valid=valid, category=cat, reason=reason, message=msg, recorded_error_no=result[1])
    timed = runner is not None and runner.kind == "tsim"
    if valid and (check or timed):
        ev = evaluate(task, cfg, runner or "fsim", check=check, seed=lineno, functional=True)
        if check:
            row["correct"] = ev.correct
        if timed:
            res = ev.execution.result
            row.update(latency_ms=round(res.latency_ms, 4), cycles=round(res.cycles),
                       gops=round(res.gops, 3))
            costs = [c for c in result[0] if isinstance(c, (int, float))]
            # a zero mean is no time (e.g. the placeholder of a log shipped without its times)
            if result[1] == 0 and costs and float(np.mean(costs)) > 0:
                row["recorded_ms"] = round(float(np.mean(costs)) * 1e3, 4)
    return row


def replay_log(path: str, hw: HwConfig | None = None, runner: Runner | None = None,
               check: bool = False) -> Iterator[dict]:
    """One row per record line of ``path`` (read as ``db.autotvm.iter_log`` reads it for
    import: bounded, the same rejections with the same reasons); a line that cannot be
    replayed gives a row with ``error`` (typed error name and message), ``field`` (the part
    of the line at fault, when the error names one) and, for a typed error with a stable
    code (``PackedForOtherHardwareError``: ``packed_for_other_hw``), ``reason``."""
    for lineno, item in iter_log(path):
        if isinstance(item, RejectedLine):
            yield {"line": lineno, "rejected": item.reason, "field": item.field,
                   "error": f"{type(item.error).__name__}: {item}"}
            continue
        try:
            yield replay_record(json.loads(item.raw), lineno, hw, runner, check)
        except (VtatuneError, UnsupportedError) as exc:
            row = {"line": lineno, "error": f"{type(exc).__name__}: {exc}"}
            for attr in ("field", "reason"):
                value = getattr(exc, attr, None)
                if isinstance(value, str):
                    row[attr] = value
            yield row
