"""AutoTVM v0.2 JSON-lines logs: reading, writing, importing into and exporting from the
tuning database.

One log line is one JSON object with the keys ``input``, ``config``, ``result``, ``version``
and ``tvm_version``, in that order (TVM v0.14 ``autotvm/record.py``, ``encode``)::

    {"input": [target, task_name, args, kwargs], "config": {"index", "code_hash", "entity"},
     "result": [costs, error_no, all_cost, timestamp], "version": 0.2, "tvm_version": "0.14.0"}

Rules (docs/database.md):

* an imported record keeps its line in ``raw`` and is exported byte-identical to it (TopHub
  lines with their older target string, resolved ``[outer, inner]`` splits and
  ``tvm_version`` 0.7.dev0 stay as they came);
* a new record is written as TVM v0.14's ``encode`` writes it: ``json.dumps`` with default
  separators, ``tvm_version`` "0.14.0", and for a failed measurement (``error_no != 0``) the
  costs ``[1e9]`` (AutoTVM writes ``(1e9,)`` there because its failed results carry the
  exception object, which JSON cannot hold);
* ``predicted`` records (validity-classifier verdicts, not measurements) are never exported.

Nothing here needs SQLAlchemy, except ``import_log``/``export_log`` which take a database.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigurationError, RecordDecodeError
from .records import TuningRecord, config_hash, split_workload_key, workload_key

if TYPE_CHECKING:
    from .storage import Database

log = logging.getLogger(__name__)

#: ``version`` written in (and expected of) every line.
LOG_VERSION = 0.2
#: ``tvm_version`` written in new lines: the AutoTVM release whose format we follow.
TVM_VERSION = "0.14.0"
#: Costs AutoTVM writes for a failed measurement.
ERROR_COSTS = [1e9]

_MODEL = re.compile(r"(?:^|\s)-model=(\S+)")


def _error(where: tuple[str, int], message: str) -> RecordDecodeError:
    path, lineno = where
    exc = RecordDecodeError(f"{path}:{lineno}: {message}")
    exc.path = path  # type: ignore[attr-defined]
    exc.lineno = lineno  # type: ignore[attr-defined]
    return exc


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _backend_and_hw(target: str) -> tuple[str, str]:
    """("vta", model) for a VTA target; ("autotvm", model or "unknown") for another."""
    from ..workloads.parse import model_of_target
    from ..workloads.workload import WorkloadError
    try:
        return "vta", model_of_target(target)
    except WorkloadError:
        m = _MODEL.search(target)
        return "autotvm", (m.group(1) if m else "unknown")  # AutoTVM's default model


def _is_v01(obj: Any) -> bool:
    return isinstance(obj, dict) and "input" not in obj and "i" in obj and "r" in obj


def _load(text: str, where: tuple[str, int]) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(where, f"not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _error(where, "a log record is a JSON object")
    return obj


def _decode(obj: dict, text: str, where: tuple[str, int], session: str) -> TuningRecord:
    if _is_v01(obj):
        raise _error(where, "AutoTVM v0.1 record (keys i/r/v) is not supported")
    missing = [k for k in ("input", "config", "result") if k not in obj]
    if missing:
        raise _error(where, f"missing key {missing[0]!r} (an AutoTVM v0.2 record has input, "
                            "config, result, version, tvm_version)")
    if "version" in obj and obj["version"] != LOG_VERSION:
        raise _error(where, f"unsupported log version {obj['version']!r} (expected 0.2)")
    inp = obj["input"]
    if not isinstance(inp, list) or len(inp) != 4:
        raise _error(where, "'input' must be [target, task_name, args, kwargs]")
    target, task_name, args, kwargs = inp
    if not isinstance(target, str) or not target.strip():
        raise _error(where, f"'input' target must be a string, got {target!r}")
    if not isinstance(task_name, str) or not task_name:
        raise _error(where, f"'input' task name must be a string, got {task_name!r}")
    if not isinstance(args, list):
        raise _error(where, f"'input' args must be a list, got {args!r}")
    if not isinstance(kwargs, dict):
        raise _error(where, f"'input' kwargs must be an object, got {kwargs!r}")
    config = obj["config"]
    if not isinstance(config, dict):
        raise _error(where, "'config' must be an object")
    index = config.get("index")
    if index is not None and not (isinstance(index, int) and not isinstance(index, bool)):
        raise _error(where, f"'config' index must be an integer, got {index!r}")
    if "entity" in config and not isinstance(config["entity"], list):
        raise _error(where, "'config' entity must be a list of [knob, kind, value]")
    result = obj["result"]
    if not isinstance(result, list) or len(result) != 4:
        raise _error(where, "'result' must be [costs, error_no, all_cost, timestamp]")
    costs, error_no, all_cost, timestamp = result
    if not isinstance(costs, list):
        raise _error(where, f"'result' costs must be a list, got {costs!r}")
    if not isinstance(error_no, int) or isinstance(error_no, bool) or error_no < 0:
        raise _error(where, f"'result' error_no must be an integer >= 0, got {error_no!r}")
    if error_no == 0 and not all(_is_number(c) for c in costs):
        raise _error(where, f"'result' costs of a successful record must be numbers: {costs!r}")
    for name, v in (("all_cost", all_cost), ("timestamp", timestamp)):
        if not _is_number(v):
            raise _error(where, f"'result' {name} must be a number, got {v!r}")
    tvm_version = obj.get("tvm_version", "")
    if not isinstance(tvm_version, str):
        raise _error(where, f"'tvm_version' must be a string, got {tvm_version!r}")
    backend, hw = _backend_and_hw(target)
    try:
        return TuningRecord(
            backend=backend, workload_key=workload_key(task_name, args), target=target, hw=hw,
            config=config, config_index=index, costs=costs, error_no=error_no,
            all_cost=all_cost, timestamp=timestamp, source="imported", runner="import",
            tool_version=tvm_version, raw=text, session=session)
    except ConfigurationError as exc:
        raise _error(where, str(exc)) from None


def from_line(line: str, *, session: str = "", path: str = "<line>",
              lineno: int = 1) -> TuningRecord:
    """The imported record of one AutoTVM v0.2 line (``raw`` = the line less its ``\\n``).

    Raises ``RecordDecodeError`` (with ``path`` and ``lineno``) for anything else, v0.1 lines
    included.
    """
    text = line[:-1] if line.endswith("\n") else line
    return _decode(_load(text, (path, lineno)), text, (path, lineno), session)


def read_log(path: str | os.PathLike, *, session: str | None = None) -> list[TuningRecord]:
    """The records of an AutoTVM log file, in file order.

    Blank lines and lines starting with ``#`` are skipped; v0.1 lines (keys ``i``/``r``/``v``)
    are skipped with one warning per file; anything else that is not a v0.2 record raises
    ``RecordDecodeError`` naming the path and line number.  Records are ``source="imported"``,
    ``runner="import"``, ``tool_version`` = the line's ``tvm_version``, ``session`` = the
    file name unless given.  A config that occurs again for the same workload and target
    gets the next ``attempt`` (0, 1, ...), so re-importing a file adds nothing and every line
    of it is kept.
    """
    path = os.fspath(path)
    session = os.path.basename(path) if session is None else session
    out: list[TuningRecord] = []
    seen: Counter = Counter()
    v01: list[int] = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline
    for lineno, raw_bytes in enumerate(lines, 1):
        try:
            text = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error((path, lineno), f"not UTF-8: {exc.reason}") from None
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        obj = _load(text, (path, lineno))
        if _is_v01(obj):
            v01.append(lineno)
            continue
        rec = _decode(obj, text, (path, lineno), session)
        key = (rec.workload_key, rec.target, config_hash(rec.config))
        rec.attempt = seen[key]
        seen[key] += 1
        out.append(rec)
    if v01:
        shown = ", ".join(map(str, v01[:5])) + (", ..." if len(v01) > 5 else "")
        log.warning("%s: skipped %d AutoTVM v0.1 record(s) (line %s); only v0.2 is read",
                    path, len(v01), shown)
    return out


def to_line(record: TuningRecord) -> str:
    """The AutoTVM v0.2 line of ``record`` (no trailing newline).

    An imported record (``raw`` set) gives its original line unchanged; any other record is
    written as TVM v0.14's AutoTVM ``encode`` writes it (``[1e9]`` costs on failure).
    """
    if record.raw is not None:
        return record.raw
    task_name, args = split_workload_key(record.workload_key)
    costs = list(record.costs) if record.error_no == 0 else list(ERROR_COSTS)
    return json.dumps({
        "input": [record.target, task_name, args, {}],
        "config": record.config,
        "result": [costs, record.error_no, record.all_cost, record.timestamp],
        "version": LOG_VERSION,
        "tvm_version": TVM_VERSION,
    })


def write_log(path: str | os.PathLike, records: Iterable[TuningRecord], *,
              append: bool = True) -> int:
    """Write ``records`` (``predicted`` ones skipped) as log lines; returns the line count.

    ``append`` (default) adds to the file like AutoTVM's ``log_to_file``.
    """
    n = 0
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as f:
        for rec in records:
            if rec.source == "predicted":
                continue
            f.write(to_line(rec) + "\n")
            n += 1
    return n


def export_log(db: "Database", path: str | os.PathLike, workload_key: str | None = None,
               hw: str | None = None, *, append: bool = False) -> int:
    """Write the measured and imported records of ``db`` (optionally of one workload and/or
    hardware) to ``path`` in the order they were stored; returns the number of lines.
    ``predicted`` records are never exported."""
    recs = db.records(workload_key=workload_key, hw=hw, source=("measured", "imported"))
    return write_log(path, recs, append=append)


def import_log(db: "Database", path: str | os.PathLike, *,
               session: str | None = None) -> tuple[int, int]:
    """Read an AutoTVM log into ``db``; returns (records read, records newly inserted).

    The whole file is read (and checked) before anything is written, then added in one
    transaction, so a malformed file imports nothing.
    """
    recs = read_log(path, session=session)
    return len(recs), db.add(recs)
