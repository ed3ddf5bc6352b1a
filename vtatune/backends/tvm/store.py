"""MetaSchedule's database, backed by the vtatune tuning-record database.

``MSDatabase(db, target)`` is a MetaSchedule ``PyDatabase``: every workload and tuning record
MetaSchedule commits goes into the same SQL store as the VTA records, and ``get_top_k`` reads
from it, so tuning, transfer-tuning and ``compile_relax`` all share one store.

Mapping (docs/database.md, "MetaSchedule records"):

* workload key = the MetaSchedule workload line ``[structural hash, base64 module]`` as
  canonical JSON (so a key *is* a line of ``database_workload.json``), backend
  ``metaschedule``, name = the task name when known;
* record: ``config = {"trace": ..., "args_info": ...}``, ``costs`` = ``run_secs``,
  ``target`` = the target JSON, ``hw`` = a short target label (``llvm-znver4-2c``); failures
  carry an ``error_no`` and ``reason`` instead of MetaSchedule's bare ``[1e10]``.

Only records of this adapter's ``hw`` label are visible to MetaSchedule: times measured on
another machine or core count are never mixed in.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ...db.autotvm import (check_record, load_json_line, open_record_file, read_lines,
                           shown_path)
from ...db.records import TuningRecord, canonical_json
from ...errors import ConfigurationError, ErrorCategory, RecordDecodeError
from .env import require_tvm, target_json, target_label

tvm = require_tvm()
import tvm_ffi  # noqa: E402
from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir.meta_schedule.database import PyDatabase  # noqa: E402
from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord  # noqa: E402
from tvm.s_tir.meta_schedule.database import Workload  # noqa: E402

log = logging.getLogger(__name__)

BACKEND = "metaschedule"
#: MetaSchedule's run time of a failed candidate.
FAILED_SECS = 1e10
#: Runner label of MetaSchedule's LocalRunner measurements made by the tuner.
LOCAL_RUNNER = "ms-local"
#: Runner label of transfer-tuning's standalone measurements (same runner, other purpose:
#: they never count against a tuning budget).
TRANSFER_RUNNER = "ms-transfer"
#: Failures that say nothing about the schedule (a busy machine): they do not use up a tuning
#: budget and are no training labels.
NOT_COUNTED = (int(ErrorCategory.BUILD_TIMEOUT), int(ErrorCategory.RUN_TIMEOUT))
_MAX_ATTEMPTS = 64


def _is_failure(run_secs: Iterable[float] | None) -> bool:
    secs = list(run_secs or [])
    return not secs or any((not math.isfinite(s)) or s >= FAILED_SECS / 10 or s <= 0
                           for s in secs)


class WorkloadIndex:
    """Workload lookup by structural equality (MetaSchedule's "structural" module equality),
    with the vtatune database as the store of record and an in-process cache."""

    def __init__(self, db: Any):
        self.db = db
        self._cache: dict[str, list[tuple[Any, str]]] = {}  # shash -> [(Workload, key)]
        self.names: dict[str, str] = {}  # key -> task name

    @staticmethod
    def _shash(mod: Any) -> str:
        return str(tvm_ffi.structural_hash(mod))

    def _candidates(self, shash: str) -> list[tuple[Any, str]]:
        if shash not in self._cache:
            found = []
            for key, name in self.db.workloads(BACKEND, key_prefix=f'["{shash}",'):
                try:
                    found.append((Workload.from_json(json.loads(key)), key))
                except Exception as exc:  # noqa: BLE001 - a damaged row must not stop tuning
                    log.warning("skipping an unreadable MetaSchedule workload (%s)", exc)
                if name:
                    self.names.setdefault(key, name)
            self._cache[shash] = found
        return self._cache[shash]

    def find(self, mod: Any) -> tuple[Any, str] | None:
        shash = self._shash(mod)
        for wl, key in self._candidates(shash):
            if tvm_ffi.structural_equal(wl.mod, mod):
                return wl, key
        return None

    def commit(self, mod: Any, name: str = "") -> tuple[Any, str]:
        hit = self.find(mod)
        if hit is not None:
            if name and not self.names.get(hit[1]):
                self.names[hit[1]] = name
                self.db.ensure_workload(hit[1], name, BACKEND)
            return hit
        wl = Workload(mod)
        js = wl.as_json()
        key = canonical_json([str(js[0]), js[1]])
        name = name or self.names.get(key, "")
        self.db.ensure_workload(key, name, BACKEND)
        self._cache.setdefault(str(js[0]), []).append((wl, key))
        if name:
            self.names[key] = name
        return wl, key

    def workload_of_key(self, key: str) -> Any:
        try:
            shash = str(json.loads(key)[0])
        except (json.JSONDecodeError, IndexError, TypeError):
            raise RecordDecodeError(f"not a MetaSchedule workload key: {key[:80]!r}") from None
        for wl, k in self._candidates(shash):
            if k == key:
                return wl
        wl = Workload.from_json(json.loads(key))
        self._cache.setdefault(shash, []).append((wl, key))
        return wl


def to_vtatune(ms_json: list, key: str, name: str, hw: str, *, error_no: int | None = None,
               reason: str = "", message: str = "", source: str = "measured",
               runner: str = LOCAL_RUNNER, session: str = "", raw: str | None = None,
               timestamp: float | None = None) -> TuningRecord:
    """A vtatune record from MetaSchedule's record JSON ``[trace, run_secs, target, args]``."""
    if not isinstance(ms_json, list) or len(ms_json) != 4:
        raise RecordDecodeError(f"a MetaSchedule record is [trace, run_secs, target, args_info],"
                                f" got {str(ms_json)[:80]!r}")
    trace, run_secs, target, args_info = ms_json
    secs = [float(s) for s in (run_secs or [])]
    if error_no is None:
        error_no = int(ErrorCategory.RUNTIME_DEVICE) if _is_failure(secs) else 0
        if error_no and not reason:
            reason = "failed"
    return TuningRecord(
        backend=BACKEND, workload_key=key, workload_name=name,
        target=canonical_json(target if target is not None else {}), hw=hw,
        config={"trace": trace, "args_info": args_info},
        costs=secs if secs else [FAILED_SECS], error_no=int(error_no),
        timestamp=time.time() if timestamp is None else timestamp, reason=reason,
        message=message, source=source, runner=runner, session=session, raw=raw)


def to_ms_json(rec: TuningRecord) -> list:
    """MetaSchedule's record JSON of a vtatune record (failures get ``[1e10]``)."""
    secs = list(rec.costs) if rec.ok else [FAILED_SECS]
    return [rec.config["trace"], secs, json.loads(rec.target) if rec.target else None,
            rec.config.get("args_info")]


@derived_object
class MSDatabase(PyDatabase):
    """A MetaSchedule database over a vtatune ``Database`` (see the module docstring)."""

    def __init__(self, db: Any, target: Any, *, runner: str = LOCAL_RUNNER, session: str = ""):
        super().__init__()
        self.db = db
        self.hw = target_label(target)
        self.target_json = target_json(target)
        self.runner = runner
        self.session = session
        self.index = WorkloadIndex(db)

    # -- naming: tasks are registered before tuning so records carry their task name
    def register(self, name: str, mod: Any) -> str:
        return self.index.commit(mod, name)[1]

    def key_of(self, mod: Any) -> str:
        return self.index.commit(mod)[1]

    # -- MetaSchedule's PyDatabase interface
    def has_workload(self, mod: Any) -> bool:
        return self.index.find(mod) is not None

    def commit_workload(self, mod: Any) -> Any:
        return self.index.commit(mod)[0]

    def commit_tuning_record(self, record: Any) -> None:
        self.commit(record)

    def commit(self, record: Any, *, error_no: int | None = None, reason: str = "",
               message: str = "", source: str = "measured") -> TuningRecord:
        """Store a MetaSchedule record (optionally with a failure category); returns it."""
        key = self.key_of(record.workload.mod)
        rec = to_vtatune(record.as_json(), key, self.index.names.get(key, ""), self.hw,
                         error_no=error_no, reason=reason, message=message, source=source,
                         runner=self.runner, session=self.session)
        # the same schedule measured again (a resumed search re-proposes it) is a new
        # attempt, never silently dropped by the store's de-duplication
        for attempt in range(_MAX_ATTEMPTS):
            rec.attempt = attempt
            if self.db.add([rec]):
                return rec
        log.warning("%s: %d measurements of one schedule are stored already; not storing "
                    "another", self.index.names.get(key, key[:40]), _MAX_ATTEMPTS)
        return rec

    def get_top_k(self, workload: Any, top_k: int) -> list:
        key = self.key_of(workload.mod)
        return [m for m in (self._to_ms(r, workload) for r in
                            self.db.best(key, self.hw, k=int(top_k))) if m is not None]

    def get_all_tuning_records(self) -> list:
        out = []
        for r in self.db.records(hw=self.hw):
            if r.backend == BACKEND:
                m = self._to_ms(r, None)
                if m is not None:
                    out.append(m)
        return out

    def _to_ms(self, rec: TuningRecord, workload: Any) -> Any:
        """MetaSchedule's record of a stored one; None (with a warning) for a damaged row,
        which must not stop a tuning run."""
        try:
            wl = workload if workload is not None else self.index.workload_of_key(rec.workload_key)
            return MSRecord.from_json(to_ms_json(rec), wl)
        except Exception as exc:  # noqa: BLE001 - TVM raises assorted errors on bad JSON
            log.warning("skipping an unreadable MetaSchedule record of %s: %s",
                        rec.workload_name or "?", str(exc).splitlines()[0] if str(exc) else exc)
            return None

    def __len__(self) -> int:
        return sum(1 for r in self.db.records(hw=self.hw) if r.backend == BACKEND)


# ---------------------------------------------------------------------- JSON database files
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
#: Longest line read from a MetaSchedule JSON file (a workload line holds a whole module).
MS_MAX_LINE_BYTES = 16 << 20
#: Deepest JSON nesting read (traces nest about 10 levels); deeper is refused before TVM
#: sees it.
MS_MAX_JSON_DEPTH = 64


def _json_lines(path: Path) -> Iterator[tuple[int, str, Any]]:
    """``(line number, stripped line, JSON value)`` of the non-blank lines of a MetaSchedule
    JSON file, one line in memory at a time.  ``RecordDecodeError`` naming file and line for
    a line that is not UTF-8 or not JSON (or nested too deeply); ``LogFileError`` for a file
    that cannot be read (a directory, a device) or a line over ``MS_MAX_LINE_BYTES``."""
    shown = shown_path(path)
    with open_record_file(path) as f:
        for no, raw in read_lines(f, shown, max_bytes=MS_MAX_LINE_BYTES):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordDecodeError(f"{shown}:{no}: not UTF-8: {exc.reason} at byte "
                                        f"{exc.start}") from None
            if not text.strip():
                continue
            yield no, text.strip(), load_json_line(text, (shown, no),
                                                   max_depth=MS_MAX_JSON_DEPTH)


def export_json(db: Any, work_dir: str | os.PathLike, *, hw: str | None = None) -> tuple[int, int]:
    """Write the MetaSchedule records (of one ``hw`` label, or all) as a MetaSchedule
    ``JSONDatabase`` in ``work_dir``; returns (workloads, records) written.  Failed records
    are written with ``[1e10]``, as MetaSchedule writes them."""
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    recs = [r for r in db.records(hw=hw) if r.backend == BACKEND]
    keys: dict[str, int] = {}
    for r in recs:
        keys.setdefault(r.workload_key, len(keys))
    with open(out / WORKLOAD_FILE, "w", encoding="utf-8") as fw:
        for key in keys:
            fw.write(key + "\n")
    with open(out / RECORD_FILE, "w", encoding="utf-8") as fr:
        for r in recs:
            fr.write(canonical_json([keys[r.workload_key], to_ms_json(r)]) + "\n")
    return len(keys), len(recs)


def import_json(db: Any, work_dir: str | os.PathLike, *, session: str = "") -> tuple[int, int]:
    """Import a MetaSchedule ``JSONDatabase`` directory; returns (records read, new records).
    Each record's ``hw`` label comes from its own target.  Malformed lines raise
    ``RecordDecodeError`` naming file and line (not UTF-8, not JSON, nested too deeply, not
    a workload or record), before anything is stored; ``LogFileError`` for a file that
    cannot be read or a line over ``MS_MAX_LINE_BYTES``."""
    src = Path(work_dir)
    wpath, rpath = src / WORKLOAD_FILE, src / RECORD_FILE
    for p in (wpath, rpath):
        if not p.exists():
            raise ConfigurationError("work_dir", f"{shown_path(src)}: no {p.name} (not a "
                                                 "MetaSchedule JSON database)")
    index = WorkloadIndex(db)
    mods: list[Any] = []
    for no, line, obj in _json_lines(wpath):
        try:
            mods.append(Workload.from_json(obj).mod)
        except Exception as exc:  # noqa: BLE001
            raise RecordDecodeError(f"{shown_path(wpath)}:{no}: not a MetaSchedule workload "
                                    f"({_first_line(exc)})") from None
    bodies = []
    labels: dict[str, str] = {}
    for no, line, obj in _json_lines(rpath):
        try:
            widx, body = obj
            if isinstance(widx, bool) or not isinstance(widx, int) or not 0 <= widx < len(mods):
                raise RecordDecodeError(f"workload index {widx!r} is not one of the "
                                        f"{len(mods)} workloads")
            if not isinstance(body, list) or len(body) != 4:
                raise RecordDecodeError("expected [trace, run_secs, target, args_info]")
            tgt = canonical_json(body[2])
            if tgt not in labels:
                labels[tgt] = target_label(tvm.target.Target(body[2]))
            # every field checked now, so that nothing is stored from a file with a bad line
            check_record(to_vtatune(body, "[]", "", labels[tgt], source="imported",
                                    runner=LOCAL_RUNNER, session=session, raw=line))
        except RecordDecodeError as exc:
            raise RecordDecodeError(f"{shown_path(rpath)}:{no}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise RecordDecodeError(f"{shown_path(rpath)}:{no}: not a MetaSchedule record "
                                    f"({_first_line(exc)})") from None
        bodies.append((widx, body, line, labels[tgt]))
    keys = [index.commit(mod)[1] for mod in mods]   # validated: now store
    recs = [to_vtatune(body, keys[widx], index.names.get(keys[widx], ""), label,
                       source="imported", runner=LOCAL_RUNNER, session=session, raw=line)
            for widx, body, line, label in bodies]
    return len(recs), db.add(recs)


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message (TVM's messages carry whole stack traces)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
