"""The canonical tuning record shared by every backend and every storage.

A ``TuningRecord`` is one measurement (or one imported or predicted result) of one
configuration of one workload on one hardware configuration.  For VTA the ``config`` is
the AutoTVM ``config`` object of a log line (``{"index", "code_hash", "entity"}``); other
backends (MetaSchedule traces, later) store opaque JSON there.

Nothing here needs SQLAlchemy: this module and ``vtatune.db.autotvm`` work without it.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .._version import __version__
from ..errors import ConfigurationError, ErrorCategory

#: Values of ``TuningRecord.source``.
SOURCES = ("measured", "imported", "predicted")
#: Sources that are real measurements (used for best-config lookup and resuming).
MEASUREMENT_SOURCES = ("measured", "imported")
#: AutoTVM's stand-in cost of a failed measurement (its ``MeasureResult.costs`` and the
#: ``[1e9]`` its ``encode`` writes for a failure).
FAILED_COST = 1e9
#: ``tool_version`` of records produced by this vtatune.
TOOL_VERSION = f"vtatune {__version__}"


def canonical_json(value: Any) -> str:
    """Compact JSON text (``(",", ":")`` separators, key order kept): one text per value."""
    return json.dumps(value, separators=(",", ":"))


def workload_key(task_name: str, args: Sequence[Any]) -> str:
    """The workload key of an AutoTVM task: canonical JSON of ``[task_name, args]``.

    Tuples become lists, so lines of the same task match whatever their formatting.
    """
    return canonical_json([task_name, _jsonable(args)])


def split_workload_key(key: str) -> tuple[str, list]:
    """``(task_name, args)`` of a workload key made by ``workload_key``."""
    try:
        value = json.loads(key)
    except json.JSONDecodeError as exc:
        raise ConfigurationError("workload_key", f"not JSON: {exc}") from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], list)):
        raise ConfigurationError("workload_key", f"expected [task_name, args], got {key!r}")
    return value[0], value[1]


def config_hash(config: Any) -> str:
    """A stable hash of a config: SHA-256 (hex, 32 digits) of its JSON with sorted keys.

    Equal configs give equal hashes whatever the key order of their dicts.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _as_float(v: Any, field: str) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond the float range
        raise ConfigurationError(field, f"{str(v)[:20]}... is out of range") from None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class TuningRecord:
    """One tuning result.  Costs and times are in seconds.

    ``error_no`` is AutoTVM's ``MeasureErrorNo`` (``vtatune.errors.ErrorCategory``);
    ``raw`` is the original log line of an imported record (exported unchanged), else None;
    ``attempt`` tells deliberate re-measurements of the same config apart (the storage keeps
    one record per workload, target, config, source and attempt).
    """

    backend: str
    workload_key: str
    target: str
    hw: str
    config: Any
    costs: list = field(default_factory=list)
    error_no: int = 0
    all_cost: float = 0.0
    timestamp: float = 0.0
    workload_name: str = ""
    config_index: int | None = None
    reason: str = ""
    message: str = ""
    source: str = "measured"
    runner: str = ""
    tool_version: str = TOOL_VERSION
    raw: str | None = None
    session: str = ""
    attempt: int = 0

    def __post_init__(self) -> None:
        for name in ("backend", "workload_key", "target", "hw"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ConfigurationError(name, f"expected a non-empty string, got {v!r}")
        for name in ("workload_name", "reason", "message", "runner", "tool_version", "session"):
            v = getattr(self, name)
            if v is None:
                setattr(self, name, "")
            elif not isinstance(v, str):
                raise ConfigurationError(name, f"expected a string, got {v!r}")
        if self.source not in SOURCES:
            raise ConfigurationError("source", f"expected one of {', '.join(SOURCES)}, "
                                               f"got {self.source!r}")
        if isinstance(self.error_no, bool) or not isinstance(self.error_no, int):
            raise ConfigurationError("error_no", f"expected an int, got {self.error_no!r}")
        self.error_no = int(self.error_no)
        if not isinstance(self.costs, (list, tuple)):
            raise ConfigurationError("costs", f"expected a list of seconds, got {self.costs!r}")
        # successful costs are numbers (seconds); a failed record's costs are kept as given
        if self.error_no == 0 and not all(_is_number(c) for c in self.costs):
            raise ConfigurationError("costs", f"expected numbers, got {self.costs!r}")
        self.costs = [_as_float(c, "costs") if _is_number(c) else c for c in self.costs]
        for name in ("all_cost", "timestamp"):
            v = getattr(self, name)
            if not _is_number(v):
                raise ConfigurationError(name, f"expected a number, got {v!r}")
            setattr(self, name, _as_float(v, name))
        if self.config_index is not None and (isinstance(self.config_index, bool)
                                              or not isinstance(self.config_index, int)):
            raise ConfigurationError("config_index", f"expected an int or None, "
                                                     f"got {self.config_index!r}")
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) or self.attempt < 0:
            raise ConfigurationError("attempt", f"expected an int >= 0, got {self.attempt!r}")
        if self.raw is not None and (not isinstance(self.raw, str) or "\n" in self.raw):
            raise ConfigurationError("raw", f"expected one log line (no newline) or None, "
                                            f"got {self.raw!r}")

    # ------------------------------------------------------------------ derived
    @property
    def ok(self) -> bool:
        return self.error_no == ErrorCategory.NO_ERROR

    @property
    def mean_cost(self) -> float:
        """Mean of ``costs`` in seconds; ``inf`` for a failed record, one without costs, or
        one whose mean is not a positive finite time (never a 'best' configuration)."""
        if self.error_no != 0 or not self.costs:
            return math.inf
        mean = sum(self.costs) / len(self.costs)
        return mean if math.isfinite(mean) and mean > 0 else math.inf

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def task_name(self) -> str:
        return split_workload_key(self.workload_key)[0]

    @property
    def args(self) -> list:
        return split_workload_key(self.workload_key)[1]


def short_key(key: str, name: str = "") -> str:
    """A workload key fit to print: MetaSchedule keys embed the whole module (kilobytes of
    base64), so those become their structural hash and task name."""
    if len(key) <= 200:
        return key
    head = key[:key.find(",")] if key.startswith('["') else key[:40]
    return f"{head.strip('[')} ({name or 'unnamed'}, {len(key)} chars)"


def short_keys(stats: dict) -> dict:
    """``Database.stats()`` with every workload key shortened by ``short_key``."""
    names = {g["workload_key"]: g["workload_name"] for g in stats.get("groups", [])}
    out = dict(stats)
    out["workload"] = {short_key(k, names.get(k, "")): v for k, v in stats["workload"].items()}
    out["groups"] = [{**g, "workload_key": short_key(g["workload_key"], g["workload_name"])}
                     for g in stats["groups"]]
    return out
