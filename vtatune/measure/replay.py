"""Replay: re-evaluate every record of an AutoTVM log — index against entity, compile-only
validity, and (with a runner) correctness and simulated time."""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np

from ..compiler.sweep import verdict
from ..errors import RecordDecodeError, UnsupportedError, VtatuneError
from ..hardware.config import HwConfig
from ..task import VtaTask
from ..workloads.autotvm import parse_autotvm_input
from .runners import Runner, evaluate

#: Longest log line read (a line is one record: kilobytes; anything far longer is not a log).
MAX_LINE_BYTES = 1 << 20


def parse_record(line: str) -> dict:
    """Parse one AutoTVM v0.2 log line, checking the structure it must have."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordDecodeError(f"not JSON: {exc}") from None
    except RecursionError:
        raise RecordDecodeError("JSON nested too deeply") from None
    if not isinstance(rec, dict):
        raise RecordDecodeError("a log record is a JSON object")
    for key, kind in (("input", list), ("config", dict)):
        if not isinstance(rec.get(key), kind):
            raise RecordDecodeError(f"field {key!r} must be a JSON {kind.__name__}")
    result = rec.get("result")
    if result is not None and not (isinstance(result, list) and len(result) >= 2
                                   and isinstance(result[0], list)):
        raise RecordDecodeError("field 'result' must be [costs, error_no, all_cost, timestamp]")
    return rec


def parse_record_or_v01(line: str) -> dict | None:
    """``parse_record``, or None for an AutoTVM v0.1 line (``{"i": ..., "r": ...}``)."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        obj = None
    if isinstance(obj, dict) and "input" not in obj and "i" in obj and "r" in obj:
        return None
    return parse_record(line)


def replay_record(rec: dict, lineno: int, hw: HwConfig | None, runner: Runner | None,
                  check: bool) -> dict:
    """One row: workload, index, whether the index decodes to the entity, the compile-only
    verdict, and with ``runner``/``check`` the simulated time and correctness."""
    row: dict = {"line": lineno}
    parsed = parse_autotvm_input(rec["input"], hw)
    task = VtaTask(parsed.workload, parsed.hw)
    given = rec["config"]
    row.update(workload=task.workload.name or rec["input"][1], hw=task.hw.name,
               index=given.get("index"))
    try:
        cfg = task.space.from_json_dict(given, check_index=False)
    except VtatuneError as exc:
        row["entity_error"] = str(exc)  # the entity itself is not a point of this space
        row["index_matches"] = False
        return row
    row["index_matches"] = given.get("index") in (None, cfg.index)
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
            if result[1] == 0 and costs:
                row["recorded_ms"] = round(float(np.mean(costs)) * 1e3, 4)
    return row


def replay_log(path: str, hw: HwConfig | None = None, runner: Runner | None = None,
               check: bool = False) -> Iterator[dict]:
    """One row per record line of ``path`` (blank and ``#`` lines skipped); a line that
    cannot be replayed gives a row with ``error`` (typed error name and message)."""
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                yield {"line": lineno, "error": f"RecordDecodeError: {path}:{lineno}: line longer "
                                                f"than {MAX_LINE_BYTES} bytes"}
                while raw and not raw.endswith(b"\n"):  # skip the rest of that line
                    raw = f.readline(MAX_LINE_BYTES)
                continue
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                yield {"line": lineno, "error": f"RecordDecodeError: {path}:{lineno}: not UTF-8"}
                continue
            if not line or line.startswith("#"):
                continue
            try:
                rec = parse_record_or_v01(line)
                if rec is None:  # as import does: reported, not replayed
                    yield {"line": lineno, "skipped": "AutoTVM v0.1 record ('i'/'r' keys); "
                                                      "only v0.2 records are replayed"}
                    continue
                yield replay_record(rec, lineno, hw, runner, check)
            except (VtatuneError, UnsupportedError) as exc:
                yield {"line": lineno, "error": f"{type(exc).__name__}: {exc}"}
