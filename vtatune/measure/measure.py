"""One measurement: compile (the builder) then run on a runner.

A ``MeasureInput`` carries everything a worker process needs — the task (with its full
hardware configuration), the configuration itself and the runner — so a worker never
re-reads files or re-resolves names.  An invalid configuration costs no device time: the
builder returns its typed error with the category the original stack would have recorded.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..db.records import FAILED_COST
from ..errors import (ErrorCategory, InternalCompilerError, MeasureError, UnsupportedError,
                      VtatuneError)
from ..space import ConfigEntity
from ..task import VtaTask
from .runners import Runner, compile_config, evaluate



@dataclass(frozen=True)
class MeasureInput:
    task: VtaTask
    config: ConfigEntity
    runner: Runner
    number: int = 1          # AutoTVM's `number`: costs repeated this many times
    check: bool = False      # compare with the numpy reference (WRONG_ANSWER on mismatch)

    @property
    def index(self) -> int:
        return self.config.index


@dataclass
class MeasureResult:
    costs: tuple
    error_no: int
    all_cost: float
    timestamp: float
    reason: str = ""
    message: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.error_no == 0

    @property
    def mean_cost(self) -> float:
        return float(np.mean(self.costs)) if self.valid else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"costs": list(self.costs), "error_no": self.error_no, "all_cost": self.all_cost,
                "timestamp": self.timestamp, "reason": self.reason, "message": self.message,
                "extra": self.extra}

    @staticmethod
    def from_dict(d: dict) -> "MeasureResult":
        return MeasureResult(tuple(d["costs"]), int(d["error_no"]), float(d["all_cost"]),
                             float(d["timestamp"]), d.get("reason", ""), d.get("message", ""),
                             d.get("extra", {}))

    @staticmethod
    def failure(category: ErrorCategory, reason: str, message: str, started: float) -> "MeasureResult":
        now = time.time()
        return MeasureResult((FAILED_COST,), int(category), now - started, now, reason, message)


def build(inp: MeasureInput):
    """The builder: compile one configuration (no device time)."""
    return compile_config(inp.task, inp.config)


def run(prog, inp: MeasureInput) -> tuple[tuple, dict]:
    """The runner: execute on the target; returns (costs in seconds, extra figures)."""
    ev = evaluate(inp.task, inp.config, inp.runner, check=inp.check, program=prog)
    if ev.correct is False:
        raise MeasureError(ErrorCategory.WRONG_ANSWER, "wrong_answer",
                           "output differs from the numpy reference")
    times = ev.execution.extra.get("times_s")  # a board's own per-run times
    if times and len(times) == max(1, inp.number):
        return tuple(float(t) for t in times), ev.execution.extra
    return (ev.execution.cost,) * max(1, inp.number), ev.execution.extra


def measure_one(inp: MeasureInput, on_phase=None) -> MeasureResult:
    """Build and run one configuration; every failure becomes a typed result.
    ``on_phase("build" | "run")`` is called when a phase starts (the pool's timeouts)."""
    started = time.time()
    try:
        if on_phase:
            on_phase("build")
        prog = build(inp)
    except MeasureError as exc:
        return MeasureResult.failure(exc.category, exc.reason, exc.message, started)
    except InternalCompilerError as exc:  # a compiler bug, not the configuration's fault
        return MeasureResult.failure(ErrorCategory.COMPILE_HOST, "build_crashed",
                                     f"{type(exc).__name__}: {exc}", started)
    except UnsupportedError as exc:
        return MeasureResult.failure(ErrorCategory.UNKNOWN_ERROR, "not_modelled", str(exc), started)
    except VtatuneError as exc:
        return MeasureResult.failure(ErrorCategory.INSTANTIATION_ERROR, "instantiation", str(exc), started)
    except Exception as exc:  # a compiler bug must not stop tuning: record it with its traceback
        return MeasureResult.failure(ErrorCategory.COMPILE_HOST, "build_crashed",
                                     f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}", started)
    try:
        if on_phase:
            on_phase("run")
        costs, extra = run(prog, inp)
    except MeasureError as exc:
        return MeasureResult.failure(exc.category, exc.reason, exc.message, started)
    except VtatuneError as exc:
        return MeasureResult.failure(ErrorCategory.RUNTIME_DEVICE, "runtime_error", f"{type(exc).__name__}: {exc}", started)
    except Exception as exc:
        return MeasureResult.failure(ErrorCategory.RUNTIME_DEVICE, "run_crashed",
                                     f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}", started)
    now = time.time()
    return MeasureResult(costs, 0, now - started, now, extra=extra)
