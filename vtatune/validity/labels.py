"""Validity labels: 1 = the configuration runs, 0 = it is invalid, from two sources.

Compile-only verdicts (``sweep_labels``)
    The compiler's own checks (``vtatune.compiler.sweep``) on every configuration of a
    workload's space, cached per workload shape + epilogue + hardware + compiler source
    (in memory, and on disk under ``cache_dir`` when one is given).

Database records (``record_labels``)
    Only real measurements are labels: ``source`` in ``LABEL_SOURCES`` = ("measured",
    "imported").  ``predicted`` records (and any other source, e.g. a screen's) are never
    labels: a classifier trained on its own predictions would only confirm itself.

Mapping of AutoTVM ``MeasureErrorNo`` (``vtatune.errors.ErrorCategory``) to labels:

==========================  =====  ==========================================================
error_no                    label  why
==========================  =====  ==========================================================
0 NO_ERROR                  1      it ran
2 COMPILE_HOST              0      lowering rejects it (SRAM bounds, DMA pattern, padding)
3 COMPILE_DEVICE            0      device code generation rejects it
4 RUNTIME_DEVICE            0      the runtime library / device rejects it (micro-op
                                   hazard, closure size, simulator stop)
5 WRONG_ANSWER              0      the program computes garbage (field truncation, check)
1 INSTANTIATION_ERROR       none   the workload, not the configuration, cannot be built
6 BUILD_TIMEOUT             none   says how slow the machine was, not whether it is valid
7 RUN_TIMEOUT               none   same
8 UNKNOWN_ERROR             none   worker crashes and unmodelled cases
==========================  =====  ==========================================================

A record whose ``reason`` is a crash or a timeout (``build_crashed``, ``run_crashed``,
``worker_crashed``, ``build_timeout``, ``run_timeout``, ``not_modelled``,
``instantiation``) is not a label whatever its category: a crash of the tool says nothing
about the configuration.  Several labelling records of one index that disagree are
dropped (counted as ``conflicting``); agreeing duplicates count once.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ErrorCategory, ValidityModelError
from ..hardware.config import HwConfig
from ..workloads.workload import Workload

LABEL_SOURCES = ("measured", "imported")
VALID_CATEGORIES = frozenset({int(ErrorCategory.NO_ERROR)})
INVALID_CATEGORIES = frozenset({int(ErrorCategory.COMPILE_HOST), int(ErrorCategory.COMPILE_DEVICE),
                                int(ErrorCategory.RUNTIME_DEVICE), int(ErrorCategory.WRONG_ANSWER)})
#: Reasons that are never labels: crashes, timeouts, unmodelled cases, whole-workload errors.
NON_LABEL_REASONS = frozenset({"build_crashed", "run_crashed", "worker_crashed", "build_timeout",
                               "run_timeout", "not_modelled", "instantiation"})

#: Hardware fields the compile-time verdict depends on (not the board, queues or timing).
HW_VALIDITY_FIELDS = ("hw_ver", "log_inp_width", "log_wgt_width", "log_acc_width", "log_batch",
                      "log_block", "log_uop_buff_size", "log_inp_buff_size",
                      "log_wgt_buff_size", "log_acc_buff_size")


def hw_fields(hw: HwConfig) -> dict[str, Any]:
    return {f: getattr(hw, f) for f in HW_VALIDITY_FIELDS}


def hw_key(hw: HwConfig) -> str:
    """Short hash of the hardware fields validity depends on: two configurations with equal
    keys accept exactly the same template configurations."""
    text = json.dumps(hw_fields(hw), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- records
def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


def record_label(rec: Any) -> int | None:
    """1 / 0 / None (not a label) of one record (an object or mapping with ``source``,
    ``error_no`` and optionally ``reason``); see the module docstring."""
    source = _get(rec, "source", "measured")
    if not isinstance(source, str):
        raise ValidityModelError("source", f"expected a string, got {source!r}")
    if source not in LABEL_SOURCES:
        return None
    err = _get(rec, "error_no", None)
    if isinstance(err, bool) or not isinstance(err, (int, np.integer)):
        raise ValidityModelError("error_no", f"expected an int, got {err!r}")
    reason = _get(rec, "reason", "") or ""
    if reason in NON_LABEL_REASONS:
        return None
    err = int(err)
    if err in VALID_CATEGORIES:
        return 1
    if err in INVALID_CATEGORIES:
        return 0
    if err in {int(c) for c in ErrorCategory}:
        return None
    raise ValidityModelError("error_no", f"{err} is not an AutoTVM MeasureErrorNo (0..8)")


@dataclass
class RecordLabels:
    """Labels from records: ``indices`` (int64) and ``labels`` (int8, 1 = valid), one per
    configuration, sorted by index; ``counts`` says what was used and what skipped."""

    indices: np.ndarray
    labels: np.ndarray
    counts: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return int(self.indices.size)


def record_labels(records: Iterable[Any], workload_name: str | None = None) -> RecordLabels:
    """Labels of the configurations in ``records`` (objects or mappings with ``source``,
    ``error_no``, ``config_index`` and optionally ``reason``, ``workload_name``).  With
    ``workload_name`` only that workload's records are read.  Predicted records and
    every other non-measurement source are skipped (counted as ``skipped_source:<s>``)."""
    counts: Counter = Counter()
    seen: dict[int, set[int]] = {}
    for rec in records:
        if workload_name is not None and _get(rec, "workload_name", None) != workload_name:
            continue
        source = _get(rec, "source", "measured")
        label = record_label(rec)
        if label is None:
            counts[f"skipped_source:{source}" if source not in LABEL_SOURCES
                   else "skipped_not_a_label"] += 1
            continue
        index = _get(rec, "config_index", None)
        if index is None:
            counts["skipped_no_index"] += 1
            continue
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValidityModelError("config_index", f"expected a non-negative int, got {index!r}")
        seen.setdefault(int(index), set()).add(label)
        counts[f"used_{source}"] += 1
    keep = sorted(i for i, labs in seen.items() if len(labs) == 1)
    counts["conflicting"] = sum(1 for labs in seen.values() if len(labs) > 1)
    idx = np.asarray(keep, dtype=np.int64)
    lab = np.asarray([next(iter(seen[i])) for i in keep], dtype=np.int8)
    return RecordLabels(idx, lab, counts)


# ----------------------------------------------------------------------------- sweeps
@dataclass
class SweepLabels:
    """Compile-only verdicts of a whole space: per index ``valid`` (bool), ``category``
    (int8), ``reason`` (str); ``labelled`` is False where the verdict is not a label
    (``not_modelled``)."""

    valid: np.ndarray
    category: np.ndarray
    reason: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isin(self.reason, list(NON_LABEL_REASONS))

    def labels(self, indices=None) -> tuple[np.ndarray, np.ndarray]:
        """(indices, labels) of the labelled configurations (of ``indices`` if given)."""
        idx = np.arange(self.valid.size) if indices is None else np.asarray(indices, dtype=np.int64)
        idx = idx[self.labelled[idx]]
        return idx, self.valid[idx].astype(np.int8)


_MEMO: dict[str, SweepLabels] = {}


def _compiler_hash() -> str:
    """Hash of the compiler's source, so cached verdicts die with a compiler change."""
    root = pathlib.Path(__file__).resolve().parent.parent / "compiler"
    h = hashlib.sha256()
    for p in sorted(root.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def sweep_key(wl: Workload, hw: HwConfig, profile: str = "tvm-0.14") -> str:
    w = wl.bind(hw)
    text = json.dumps([list(w.shape), w.epilogue, hw_key(hw), profile, _compiler_hash()], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def sweep_labels(wl: Workload, hw: HwConfig, cache_dir: str | os.PathLike | None = None,
                 profile: str = "tvm-0.14") -> SweepLabels:
    """The compile-only verdict of every configuration of ``wl`` on ``hw`` in compiler
    ``profile`` (default the original stack's, the labels of the published study; cached)."""
    from ..compiler.sweep import sweep

    key = sweep_key(wl, hw, profile)
    path = pathlib.Path(cache_dir) / f"sweep-{key}.npz" if cache_dir is not None else None
    out = _MEMO.get(key)
    if out is None and path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            out = SweepLabels(z["valid"], z["category"], z["reason"])
    if out is None:
        recs = list(sweep(wl, hw, profile=profile))
        out = SweepLabels(np.array([r["valid"] for r in recs], dtype=bool),
                          np.array([r["category"] for r in recs], dtype=np.int8),
                          np.array([r["reason"] for r in recs], dtype=str))
    if path is not None and not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")  # atomic for concurrent runs
        np.savez_compressed(tmp, valid=out.valid, category=out.category, reason=out.reason)
        os.replace(tmp, path)
    _MEMO[key] = out
    return out
