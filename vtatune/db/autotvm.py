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

Reading is hostile-input safe: files are read line by line (at most ``MAX_LINE_BYTES`` per
line, so ``/dev/zero`` or a binary file costs bounded memory), JSON nesting is capped at
``MAX_JSON_DEPTH`` and integers at ``MAX_INT_DIGITS`` digits, and every field is checked
before a record is built.  A line that is not an importable record is *rejected*
(``RejectedLine``: line number, stable reason code, message, the typed error); only
file-level faults raise (``LogFileError``).

Nothing here needs SQLAlchemy, except ``import_log``/``export_log`` which take a database.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import stat
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..errors import (ConfigurationError, ErrorCategory, LogFileError, RecordDecodeError,
                      VtatuneError)
from .records import FAILED_COST, TuningRecord, config_hash, split_workload_key, workload_key

if TYPE_CHECKING:
    from .storage import Database

log = logging.getLogger(__name__)

#: ``version`` written in (and expected of) every line.
LOG_VERSION = 0.2
#: ``tvm_version`` written in new lines: the AutoTVM release whose format we follow.
TVM_VERSION = "0.14.0"
#: Costs AutoTVM writes for a failed measurement.
ERROR_COSTS = [FAILED_COST]

#: Longest log line read (bytes, without its newline); a longer one is a file-level error.
MAX_LINE_BYTES = 1 << 20
#: Deepest JSON nesting of a line (an AutoTVM v0.2 record needs about 5 levels).
MAX_JSON_DEPTH = 64
#: Most digits of one JSON integer (indices are below 2**63: 19 digits).
MAX_INT_DIGITS = 100
#: Rejected lines whose details ``import_log`` keeps (all are counted).
MAX_REJECTED_KEPT = 1000
#: Config indices are stored as 64-bit signed integers.
INDEX_LIMIT = 1 << 63
_INT32_LIMIT = 1 << 31
#: AutoTVM's ``MeasureErrorNo`` values.
ERROR_NOS = frozenset(int(e) for e in ErrorCategory)

# Stable reason codes of rejected lines (RejectedLine.reason).
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
TOO_DEEP = "too_deep"
AUTOTVM_V01 = "autotvm_v01"
NOT_V02 = "not_v02"
BAD_FIELD = "bad_field"
#: Reason of a line a validator rejected with an error that has no ``reason`` of its own.
VALIDATOR_REJECTED = "rejected"

Validator = Callable[[TuningRecord], "TuningRecord | None"]

#: Warnings of the line being validated (set by ``iter_log`` around each validator call).
_LINE_WARNINGS: ContextVar["list[tuple[str, str, str | None]] | None"] = ContextVar(
    "vtatune_line_warnings", default=None)


def warn_line(reason: str, message: str, field: str | None = None) -> None:
    """Report a warning about the line being imported, from inside an import validator.

    The line is still imported (a warning is not a refusal — raise for that); the warning
    reaches ``ImportResult.warnings`` (and ``iter_log``'s ``on_warning``) as a
    ``LineWarning`` with the line's path and number, unless the line ends up rejected.
    ``reason`` is a stable code (e.g. ``index_mismatch``), ``field`` the part of the record
    it is about.  Called outside an import (a validator used directly) it does nothing.
    """
    sink = _LINE_WARNINGS.get()
    if sink is not None:
        sink.append((str(reason), " ".join(str(message).split()),
                     None if field is None else str(field)))


# ---------------------------------------------------------------------- helpers
def shown_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as printable text (undecodable bytes of a file name as ``\\xNN`` escapes);
    ``ConfigurationError`` for something that is not a path (a file descriptor number is
    never read, nor closed)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ConfigurationError("path", f"a record file is named by a path, got "
                                         f"{type(path).__name__}")
    p = os.fspath(path)
    if isinstance(p, bytes):
        return p.decode("utf-8", "backslashreplace")
    return p.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _error(where: tuple[str, int], message: str, reason: str = NOT_V02,
           field: str | None = None) -> RecordDecodeError:
    path, lineno = where
    exc = RecordDecodeError(f"{path}:{lineno}: {message}")
    exc.path = path  # type: ignore[attr-defined]
    exc.lineno = lineno  # type: ignore[attr-defined]
    exc.reason = reason  # type: ignore[attr-defined]
    exc.field = field  # type: ignore[attr-defined]
    exc.detail = message  # type: ignore[attr-defined]
    return exc


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    """A JSON number that is a finite float (huge integers overflow, NaN/Infinity are not)."""
    if not _is_number(v):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _storable_text(s: str) -> bool:
    """Text every database stores as given: no NUL (PostgreSQL refuses it) and no lone
    surrogate (not encodable as UTF-8; JSON's ``\\ud800`` escapes make them)."""
    if "\x00" in s:
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(v: Any, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[:n] + "..."


def _backend_and_hw(target: str) -> tuple[str, str]:
    """("vta", model) for a VTA target; ("autotvm", model or "unknown") for another."""
    from ..hardware.target import is_vta_target, model_option
    model = model_option(target)
    if is_vta_target(target) and model is not None:
        return "vta", model
    return "autotvm", model or "unknown"  # AutoTVM's default model


def _is_v01(obj: Any) -> bool:
    return isinstance(obj, dict) and "input" not in obj and "i" in obj and "r" in obj


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_INT_DIGITS})")
    return int(text)


def _too_deep(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests deeper than ``limit`` (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (list, dict)))
    return False


def load_json_line(text: str, where: tuple[str, int], *,
                   max_depth: int = MAX_JSON_DEPTH) -> Any:
    """One JSON value of a record file, bounded: ``RecordDecodeError`` (reason ``not_json``
    or ``too_deep``, naming ``where`` = (path, line)) instead of ``RecursionError``, huge
    integers or deep nesting."""
    try:
        obj = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        obj = None
        deep = True
    except json.JSONDecodeError as exc:
        raise _error(where, f"not JSON: {exc.msg} (column {exc.colno})", NOT_JSON) from None
    except ValueError as exc:  # parse_int, or Python's own integer-digit limit
        raise _error(where, f"not JSON: {exc}", NOT_JSON) from None
    else:
        deep = isinstance(obj, (list, dict)) and _too_deep(obj, max_depth)
    if deep:
        raise _error(where, f"JSON nested deeper than {max_depth} levels", TOO_DEEP)
    return obj


def _load(text: str, where: tuple[str, int]) -> dict:
    obj = load_json_line(text, where)
    if not isinstance(obj, dict):
        raise _error(where, "a log record is a JSON object")
    return obj


# ---------------------------------------------------------------------- one record
def _decode(obj: dict, text: str, where: tuple[str, int], session: str) -> TuningRecord:
    if _is_v01(obj):
        raise _error(where, "AutoTVM v0.1 record (keys i/r/v) is not supported: only "
                            "v0.2 records are read", AUTOTVM_V01)
    missing = [k for k in ("input", "config", "result") if k not in obj]
    if missing:
        raise _error(where, f"missing key {missing[0]!r} (an AutoTVM v0.2 record has input, "
                            "config, result, version, tvm_version)")
    if "version" in obj and obj["version"] != LOG_VERSION:
        raise _error(where, f"unsupported log version {_short(obj['version'])} "
                            "(expected 0.2)", field="version")

    def bad(field: str, message: str) -> RecordDecodeError:
        return _error(where, f"'{field}' {message}", BAD_FIELD, field)

    inp = obj["input"]
    if not isinstance(inp, list) or len(inp) != 4:
        raise _error(where, "'input' must be [target, task_name, args, kwargs]", BAD_FIELD,
                     "input")
    target, task_name, args, kwargs = inp
    if not isinstance(target, str) or not target.strip():
        raise bad("input.target", f"must be a non-empty string, got {_short(target)}")
    if not _storable_text(target):
        raise bad("input.target", "holds a NUL character or a lone surrogate")
    if not isinstance(task_name, str) or not task_name:
        raise bad("input.task_name", f"must be a non-empty string, got {_short(task_name)}")
    if not isinstance(args, list):
        raise bad("input.args", f"must be a list, got {_short(args)}")
    if not isinstance(kwargs, dict):
        raise bad("input.kwargs", f"must be an object, got {_short(kwargs)}")
    config = obj["config"]
    if not isinstance(config, dict):
        raise bad("config", f"must be an object, got {_short(config)}")
    index = config.get("index")
    if index is not None:
        if not _is_int(index):
            raise bad("config.index", f"must be an integer, got {_short(index)}")
        if not 0 <= index < INDEX_LIMIT:
            raise bad("config.index", f"must be in [0, 2**63), got {_short(index)}")
    if "entity" in config and not isinstance(config["entity"], list):
        raise bad("config.entity", "must be a list of [knob, kind, value]")
    result = obj["result"]
    if not isinstance(result, list) or len(result) != 4:
        raise _error(where, "'result' must be [costs, error_no, all_cost, timestamp]",
                     BAD_FIELD, "result")
    costs, error_no, all_cost, timestamp = result
    if not isinstance(costs, list):
        raise bad("result.costs", f"must be a list, got {_short(costs)}")
    if not _is_int(error_no) or error_no not in ERROR_NOS:
        raise bad("result.error_no", f"must be an AutoTVM MeasureErrorNo (0 to "
                                     f"{max(ERROR_NOS)}), got {_short(error_no)}")
    if error_no == 0:
        if not all(_is_number(c) for c in costs):
            raise bad("result.costs", f"of a successful record must be numbers: "
                                      f"{_short(costs)}")
        if not all(_is_finite(c) and c >= 0 for c in costs):
            raise bad("result.costs", f"of a successful record must be finite seconds "
                                      f">= 0: {_short(costs)}")
    elif not all(_is_finite(c) for c in costs if _is_number(c)):
        raise bad("result.costs", f"must hold finite numbers: {_short(costs)}")
    for name, v in (("all_cost", all_cost), ("timestamp", timestamp)):
        if not _is_number(v):
            raise bad(f"result.{name}", f"must be a number, got {_short(v)}")
        if not _is_finite(v):
            raise bad(f"result.{name}", f"must be finite, got {_short(v)}")
    tvm_version = obj.get("tvm_version", "")
    if not isinstance(tvm_version, str):
        raise bad("tvm_version", f"must be a string, got {_short(tvm_version)}")
    if not _storable_text(tvm_version):
        raise bad("tvm_version", "holds a NUL character or a lone surrogate")
    backend, hw = _backend_and_hw(target)
    try:
        return TuningRecord(
            backend=backend, workload_key=workload_key(task_name, args), target=target, hw=hw,
            config=config, config_index=index, costs=costs, error_no=error_no,
            all_cost=all_cost, timestamp=timestamp, source="imported", runner="import",
            tool_version=tvm_version, raw=text, session=session)
    except ConfigurationError as exc:
        raise _error(where, str(exc), BAD_FIELD, getattr(exc, "field", None)) from None


def check_record(rec: TuningRecord) -> None:
    """Refuse (``ConfigurationError`` naming the field) a record that no database can store
    as given: an index outside [0, 2**63), an integer field outside PostgreSQL's 32-bit
    range, a non-finite ``all_cost``/``timestamp`` (SQLite stores NaN as NULL), or text
    with a NUL character or a lone surrogate.  ``Database.add`` calls it for every record."""
    if not isinstance(rec, TuningRecord):
        raise ConfigurationError("record", f"expected TuningRecord, got {type(rec).__name__}")
    idx = rec.config_index
    if idx is not None and not (_is_int(idx) and 0 <= idx < INDEX_LIMIT):
        raise ConfigurationError("config_index", f"must be None or in [0, 2**63), got "
                                                 f"{_short(idx)}")
    for name in ("error_no", "attempt"):
        v = getattr(rec, name)
        if not (_is_int(v) and 0 <= v < _INT32_LIMIT):
            raise ConfigurationError(name, f"must be in [0, 2**31), got {_short(v)}")
    for name in ("all_cost", "timestamp"):
        if not _is_finite(getattr(rec, name)):
            raise ConfigurationError(name, f"must be finite, got {_short(getattr(rec, name))}")
    for name in ("backend", "workload_key", "target", "hw", "workload_name", "reason",
                 "message", "source", "runner", "tool_version", "raw", "session"):
        v = getattr(rec, name)
        if isinstance(v, str) and not _storable_text(v):
            raise ConfigurationError(name, "holds a NUL character or a lone surrogate, which "
                                           "the database cannot store")


def from_line(line: str, *, session: str = "", path: str = "<line>",
              lineno: int = 1) -> TuningRecord:
    """The imported record of one AutoTVM v0.2 line (``raw`` = the line less its ``\\n``).

    Raises ``RecordDecodeError`` (with ``path``, ``lineno``, ``reason`` and ``field``) for
    anything else, v0.1 lines included.
    """
    where = (path, lineno)
    if not isinstance(line, str):
        raise _error(where, f"a log line is text, got {type(line).__name__}")
    if len(line) > MAX_LINE_BYTES + 1:
        raise _error(where, f"line longer than {MAX_LINE_BYTES} bytes", NOT_JSON)
    text = line[:-1] if line.endswith("\n") else line
    if "\n" in text:
        raise _error(where, "one log line expected, got several")
    return _decode(_load(text, where), text, where, session)


# ---------------------------------------------------------------------- files
@dataclass(frozen=True)
class RejectedLine:
    """A line of a log that was not imported.

    ``reason`` is a stable code: ``not_utf8``, ``not_json``, ``too_deep``, ``autotvm_v01``,
    ``not_v02`` (not a v0.2 record: wrong structure, missing key, other version),
    ``bad_field`` (a field of the wrong type or out of range; ``field`` names it, e.g.
    ``config.index``), or, for a line the validator refused, the validator error's own
    ``reason`` attribute (``InvalidConfigError``) else ``rejected``.  ``message`` is one line
    without the ``path:line:`` prefix; ``error`` is the typed error (a ``VtatuneError``).
    """

    path: str
    lineno: int
    reason: str
    message: str
    field: str | None = None
    error: VtatuneError | None = dataclasses.field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: path, line, reason, field, message, error (the error's class name)."""
        return {"path": self.path, "line": self.lineno, "reason": self.reason,
                "field": self.field, "message": self.message,
                "error": type(self.error).__name__ if self.error is not None else None}


@dataclass(frozen=True)
class LineWarning:
    """A line that was imported, with something a validator reported about it
    (``warn_line``): e.g. a log index that is not its entity's (``index_mismatch``) or a
    split whose factors do not multiply to the axis length (``split_outer_ignored``).
    ``field`` names the part of the record (``index``, a knob name) or is None."""

    path: str
    lineno: int
    reason: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: path, line, reason, field, message."""
        return {"path": self.path, "line": self.lineno, "reason": self.reason,
                "field": self.field, "message": self.message}


class ImportResult(tuple):
    """What ``import_log`` did.  Unpacks as ``(read, inserted)`` (its earlier return value);
    ``rejected`` lists the first ``MAX_REJECTED_KEPT`` rejected lines in file order and
    ``n_rejected`` counts them all; ``warnings`` lists the first ``MAX_REJECTED_KEPT``
    warnings about imported lines (``LineWarning``, file order, several per line possible)
    and ``n_warnings`` counts them all."""

    rejected: list[RejectedLine]
    n_rejected: int
    warnings: list[LineWarning]
    n_warnings: int

    def __new__(cls, read: int, inserted: int, rejected: Iterable[RejectedLine] = (),
                n_rejected: int | None = None, warnings: Iterable[LineWarning] = (),
                n_warnings: int | None = None) -> ImportResult:
        self = super().__new__(cls, (int(read), int(inserted)))
        self.rejected = list(rejected)
        self.n_rejected = len(self.rejected) if n_rejected is None else int(n_rejected)
        self.warnings = list(warnings)
        self.n_warnings = len(self.warnings) if n_warnings is None else int(n_warnings)
        return self

    @property
    def read(self) -> int:
        """Records accepted: decoded, checked and validated."""
        return self[0]

    @property
    def inserted(self) -> int:
        """Accepted records that were new to the database."""
        return self[1]

    def __repr__(self) -> str:
        return (f"ImportResult(read={self[0]}, inserted={self[1]}, "
                f"n_rejected={self.n_rejected}, n_warnings={self.n_warnings})")

    def __reduce__(self) -> Any:
        return (ImportResult, (self[0], self[1], self.rejected, self.n_rejected,
                               self.warnings, self.n_warnings))


def open_record_file(path: str | bytes | os.PathLike) -> IO[bytes]:
    """Open a record file for reading in binary mode; ``LogFileError`` (naming it) when it is
    missing, unreadable, a directory or a device (``/dev/zero``, ``/dev/urandom``: endless
    input).  Regular files and pipes are read."""
    shown = shown_path(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise LogFileError(shown, f"cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if stat.S_ISDIR(st.st_mode):
        raise LogFileError(shown, "is a directory, not a record file")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise LogFileError(shown, "is a device, not a record file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise LogFileError(shown, f"cannot read: {exc.strerror or exc}") from None


def read_lines(f: IO[bytes], path: str, *,
               max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes without the \\n)`` of a binary file, one line in memory at a
    time; a line longer than ``max_bytes`` (``/dev/zero`` has no newline at all) raises
    ``LogFileError`` naming it: the file is not a record file."""
    lineno = 0
    while True:
        try:
            chunk = f.readline(max_bytes + 1)
        except OSError as exc:
            raise LogFileError(path, f"read error: {exc.strerror or exc}", lineno + 1) from None
        if not chunk:
            return
        lineno += 1
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        elif len(chunk) > max_bytes:
            raise LogFileError(path, f"line longer than {max_bytes} bytes: not a record file",
                               lineno)
        yield lineno, chunk


def _line_record(raw: bytes, where: tuple[str, int], session: str) -> TuningRecord | None:
    """The record of one line; None for blank and comment lines."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if raw.lstrip().startswith(b"#"):
            return None  # a comment in another encoding
        raise _error(where, f"not UTF-8: {exc.reason} at byte {exc.start}", NOT_UTF8) from None
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return _decode(_load(text, where), text, where, session)


def _validated(validate: Validator, rec: TuningRecord
               ) -> tuple[TuningRecord, list[tuple[str, str, str | None]]]:
    """The validator's record and the warnings it reported (``warn_line``) for the line."""
    notes: list[tuple[str, str, str | None]] = []
    token = _LINE_WARNINGS.set(notes)
    try:
        out = validate(rec)
    finally:
        _LINE_WARNINGS.reset(token)
    if out is None:
        return rec, notes
    if not isinstance(out, TuningRecord):
        raise TypeError(f"an import validator returns a TuningRecord or None, got "
                        f"{type(out).__name__}")
    check_record(out)
    return out, notes


def _rejected(exc: VtatuneError, where: tuple[str, int]) -> RejectedLine:
    detail = getattr(exc, "detail", None)
    reason = getattr(exc, "reason", None)
    field = getattr(exc, "field", None)
    return RejectedLine(
        path=where[0], lineno=where[1],
        reason=reason if isinstance(reason, str) and reason else VALIDATOR_REJECTED,
        message=detail if isinstance(detail, str) else " ".join(str(exc).split()),
        field=field if isinstance(field, str) else None, error=exc)


def _session_of(path: str | bytes | os.PathLike) -> str:
    return os.path.basename(shown_path(path))


def iter_log(path: str | bytes | os.PathLike, *, session: str | None = None,
             validate: Validator | None = None,
             on_warning: Callable[[LineWarning], None] | None = None
             ) -> Iterator[tuple[int, TuningRecord | RejectedLine]]:
    """``(line number, TuningRecord or RejectedLine)`` for every record line of an AutoTVM
    log, in file order (blank lines and ``#`` comments are skipped), one line in memory at a
    time.

    Records are ``source="imported"``, ``runner="import"``, ``tool_version`` = the line's
    ``tvm_version``, ``raw`` = the exact line without its ``\\n`` (a ``\\r`` is kept),
    ``session`` = the file name unless given; a config that occurs again for the same
    workload, target, source and runner gets the next ``attempt`` (0, 1, ...).
    ``validate`` is the hook described at ``import_log``; the warnings it reports for a line
    it accepts are passed to ``on_warning`` (a ``LineWarning`` each) before the line's record
    is yielded.  A file that cannot be read, or a line longer than ``MAX_LINE_BYTES``, raises
    ``LogFileError``; nothing else about a line raises.
    """
    shown = shown_path(path)
    session = _session_of(path) if session is None else session
    if not isinstance(session, str) or not _storable_text(session):
        raise ConfigurationError("session", f"must be printable text, got {_short(session)}")
    seen: Counter = Counter()
    with open_record_file(path) as f:
        for lineno, raw in read_lines(f, shown):
            where = (shown, lineno)
            notes: list[tuple[str, str, str | None]] = []
            try:
                rec = _line_record(raw, where, session)
                if rec is None:
                    continue
                if validate is not None:
                    rec, notes = _validated(validate, rec)
            except VtatuneError as exc:
                yield lineno, _rejected(exc, where)
                continue
            if on_warning is not None:
                for reason, message, field in notes:
                    on_warning(LineWarning(shown, lineno, reason, message, field))
            key = (rec.workload_key, rec.target, rec.hw, config_hash(rec.config), rec.source,
                   rec.runner)
            if rec.attempt != seen[key]:
                rec = dataclasses.replace(rec, attempt=seen[key])
            seen[key] += 1
            yield lineno, rec


def _as_error(bad: RejectedLine) -> RecordDecodeError:
    if isinstance(bad.error, RecordDecodeError):
        return bad.error
    return _error((bad.path, bad.lineno), bad.message, bad.reason, bad.field)


def scan_log(path: str | bytes | os.PathLike, *, session: str | None = None,
             validate: Validator | None = None, max_rejected: int = MAX_REJECTED_KEPT,
             on_warning: Callable[[LineWarning], None] | None = None
             ) -> tuple[list[TuningRecord], list[RejectedLine], int]:
    """``(records, rejected lines (the first max_rejected), number of rejected lines)`` of a
    log: ``iter_log`` collected (``on_warning`` as there)."""
    recs: list[TuningRecord] = []
    rejected: list[RejectedLine] = []
    n_rejected = 0
    for _, item in iter_log(path, session=session, validate=validate, on_warning=on_warning):
        if isinstance(item, RejectedLine):
            n_rejected += 1
            if len(rejected) < max_rejected:
                rejected.append(item)
        else:
            recs.append(item)
    return recs, rejected, n_rejected


def read_log(path: str | bytes | os.PathLike, *, session: str | None = None,
             validate: Validator | None = None) -> list[TuningRecord]:
    """The records of an AutoTVM log file, in file order: exactly those ``import_log`` would
    store, or ``RecordDecodeError`` (message ``path:line: ...``, attributes ``path``,
    ``lineno``, ``reason``, ``field``) for the first line it would reject (v0.1 lines
    included).  Blank lines and lines starting with ``#`` are skipped.  Fields as described
    at ``iter_log``."""
    recs, rejected, _ = scan_log(path, session=session, validate=validate, max_rejected=1)
    if rejected:
        raise _as_error(rejected[0])
    return recs


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


def import_log(db: "Database", path: str | bytes | os.PathLike, *, session: str | None = None,
               validate: Validator | None = None, strict: bool = False,
               max_rejected: int = MAX_REJECTED_KEPT) -> ImportResult:
    """Import an AutoTVM log into ``db``: every line is either stored or rejected.

    Returns an ``ImportResult``: ``read, inserted = result`` (records accepted, records that
    were new: re-importing a file adds nothing), ``result.rejected`` (the first
    ``max_rejected`` ``RejectedLine``s, in file order: path, line number, reason code,
    field, message, typed error), ``result.n_rejected`` (all of them), and
    ``result.warnings`` / ``result.n_warnings``: the validator's warnings about lines it
    accepted (``LineWarning``: path, line, reason, field, message; the first
    ``max_rejected`` kept, all counted).

    The whole file is read and checked first, then the accepted records are added in one
    transaction.  A line that is not an importable AutoTVM v0.2 record (not UTF-8, not JSON,
    nested too deeply, a v0.1 record, a missing key, a field of the wrong type or out of
    range: ``config.index`` outside [0, 2**63), an unknown ``error_no``, non-finite costs or
    times ...) is rejected and the import goes on.  With ``strict=True`` the first rejected
    line raises its ``RecordDecodeError`` instead and nothing is stored.  File-level faults
    raise ``LogFileError`` (missing or unreadable file, a directory or device, a line longer
    than ``MAX_LINE_BYTES``) and nothing is stored.

    ``validate(record)`` — the hook for checks this package cannot make (the database sits
    below workloads and config spaces) — is called once per decoded record, in file order,
    before anything is stored.  It receives a record that passed the structural checks
    above (``source="imported"``, ``runner="import"``, ``raw`` = the line, ``attempt`` 0;
    VTA lines have ``backend="vta"``, other AutoTVM targets ``backend="autotvm"``: pass
    those through if they are not yours) and:

    * returns None, or the record it was given: the record is stored as decoded;
    * returns another ``TuningRecord`` (e.g. ``dataclasses.replace(rec, config_index=...)``
      with the index recomputed from the entity, or a ``workload_name``): that record is
      stored instead.  It must pass ``check_record`` (else the line is rejected with that
      ``ConfigurationError``); its ``attempt`` is renumbered by the import.  ``raw`` is
      exported verbatim: keep it for a byte-identical export of the original line, set it
      to None to have ``to_line`` write the corrected record;
    * calls ``warn_line(reason, message, field)`` for what it accepts with a reservation
      (the VTA validator: a log index that is not its entity's, a split applied by its
      inner factor): the line is imported and the warning reported per line;
    * raises a ``VtatuneError`` (``ConfigurationError`` naming the field,
      ``InvalidConfigError`` ...): the line is rejected — reason = the error's ``reason``
      attribute if it has one, else ``rejected``; ``field`` = its ``field`` attribute — and
      the import goes on.  Any other exception is a bug of the validator: it propagates and
      nothing is stored.
    """
    warnings: list[LineWarning] = []
    n_warnings = 0

    def keep(w: LineWarning) -> None:
        nonlocal n_warnings
        n_warnings += 1
        if len(warnings) < max_rejected:
            warnings.append(w)

    recs, rejected, n_rejected = scan_log(path, session=session, validate=validate,
                                          max_rejected=1 if strict else max_rejected,
                                          on_warning=keep)
    if strict and rejected:
        raise _as_error(rejected[0])
    if rejected:
        log.info("%s: %d line(s) rejected (first: %s)", rejected[0].path, n_rejected,
                 rejected[0])
    if warnings:
        log.info("%s: %d warning(s) about imported lines (first: %s)", warnings[0].path,
                 n_warnings, warnings[0])
    return ImportResult(len(recs), db.add(recs) if recs else 0, rejected, n_rejected,
                        warnings, n_warnings)
