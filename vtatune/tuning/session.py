"""The tuning loop: propose with a tuner, measure in worker processes, record every result
in the database, resume from it.

Every completed measurement is written to the database as soon as its chunk finishes, so an
interrupted run (Ctrl-C, kill, crash) loses at most the measurements in flight; rerunning
the same command reads the records back, feeds them to the tuner and measures only what is
missing.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from ..hardware.config import HwConfig
from ..measure.measure import MeasureInput, MeasureResult
from ..space import space_for
from ..workloads.parse import autotvm_input
from ..workloads.suites import resolve_workload

log = logging.getLogger(__name__)


def runner_label(target: str, hw: HwConfig, sync: str) -> str:
    """What a record's cost was measured with.  tsim costs depend on the token scheme and
    on the timing parameters, so both are part of the label (a hardware file that changes
    only ``timing`` keeps the configuration's name but not its records)."""
    if target != "tsim":
        return target
    import hashlib
    import json as _json
    timing = hashlib.sha256(_json.dumps(vars(hw.timing), sort_keys=True).encode()).hexdigest()[:8]
    return f"tsim/{sync}/{timing}"


def workload_key(wl, hw: HwConfig) -> str:
    """AutoTVM's task key of a bound workload (the database's ``workload_key``)."""
    from ..db.records import workload_key as key_of
    _, task, args, _ = autotvm_input(wl, hw)
    return key_of(task, args)


@dataclass
class TuneSummary:
    workload: str
    hw: str
    target: str
    tuner: str
    space_size: int
    measured: int = 0          # records for this workload/target in the database afterwards
    new: int = 0               # measured in this run
    resumed: int = 0           # taken from the database
    valid: int = 0
    invalid: int = 0
    best_index: int | None = None
    best_cost: float = math.inf
    best_gops: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    history: list = field(default_factory=list)  # (trial number, best cost so far)

    def as_dict(self) -> dict:
        d = dict(vars(self))
        d["best_cost"] = None if math.isinf(self.best_cost) else self.best_cost
        return d


class _Progress:
    """tqdm when available and stderr is a terminal (and not in CI), else quiet."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty() and not os.environ.get("CI"):
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="trial", file=sys.stderr, leave=True)
            except ImportError:
                self.bar = None

    def update(self, n: int, summary: TuneSummary) -> None:
        if self.bar is not None:
            self.bar.set_postfix(best_gops=f"{summary.best_gops:.2f}", valid=summary.valid,
                                 invalid=summary.invalid, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def tune(workload: str, hw: HwConfig | str | None = None, *, db, target: str = "tsim",
         tuner: str = "xgb", n_trial: int = 200, seed: int = 0, workers: int = 2,
         early_stopping: int | None = None, check: bool = False, sync: str = "tvm-0.14",
         number: int = 1, chunk: int | None = None, init: Callable | None = None,
         pool=None, progress: bool = True, tuner_options: dict | None = None) -> TuneSummary:
    """Tune one workload until ``n_trial`` configurations of it are recorded for this target
    (records already in ``db`` count), the space is exhausted, or ``early_stopping`` trials
    pass without improvement."""
    from ..db.records import TuningRecord
    from ..measure.pool import MeasurePool
    from . import create_tuner
    from .base import MeasureOutcome

    from ..errors import ConfigurationError
    from ..sim.targets import SIMULATORS
    if target not in SIMULATORS:  # before anything is recorded under a bogus target
        hint = " (the PYNQ board runner is not part of this release)" if target.startswith("pynq://") else ""
        raise ConfigurationError("target", f"unknown measurement target {target!r}{hint}; "
                                           f"available: {', '.join(sorted(SIMULATORS))}")
    hw = hw if isinstance(hw, HwConfig) else HwConfig.load(hw)
    wl, hw = resolve_workload(workload, hw)
    space = space_for(wl, hw)
    key = workload_key(wl, hw)
    name = wl.name or workload
    flops = float(wl.flops)
    summary = TuneSummary(name, hw.name, target, tuner, space.size)
    runner = runner_label(target, hw, sync)
    t_start = time.perf_counter()
    session = uuid.uuid4().hex[:12]
    options = dict(tuner_options or {})
    if tuner == "xgb":  # itervar features are computed from the workload's loop nest
        options.setdefault("workload", wl)
        options.setdefault("hw", hw)
    tun = create_tuner(tuner, space, seed=seed, init=init, **options)

    def outcome(index: int, costs, error_no: int) -> "MeasureOutcome":
        return MeasureOutcome(index=index, costs=tuple(costs), error_no=error_no, flops=flops)

    last_improvement = [0]

    def account(index: int, costs, error_no: int) -> None:
        summary.measured += 1
        cost = float(sum(costs) / len(costs)) if costs else math.inf
        if error_no == 0 and math.isfinite(cost) and cost > 0:
            summary.valid += 1
            if cost < summary.best_cost:
                summary.best_cost, summary.best_index = cost, index
                summary.best_gops = flops / cost / 1e9
                last_improvement[0] = summary.measured
        else:
            summary.invalid += 1
        summary.history.append((summary.measured, summary.best_cost))

    # ---- resume: everything this workload already has for this target
    previous = [r for r in db.records(workload_key=key, hw=hw.name, source="measured")
                if r.runner == runner and r.config_index is not None]
    seen: set[int] = set()
    resumed = []
    for r in sorted(previous, key=lambda r: r.timestamp):
        if r.config_index in seen:
            continue
        seen.add(r.config_index)
        resumed.append(outcome(r.config_index, r.costs, r.error_no))
        account(r.config_index, r.costs, r.error_no)
    summary.resumed = len(resumed)
    if resumed:
        tun.update(resumed)
        log.info("%s: resumed %d measured configurations from the database", name, len(resumed))

    budget = min(n_trial, space.size)
    # what the worker processes resolve again: a suite name or spec, a shipped name or file
    wl_ref = wl.name or workload
    hw_ref = hw.source if os.path.isfile(hw.source) else hw.name
    own_pool = pool is None
    pool = pool or MeasurePool(workers)
    chunk = chunk or max(2 * pool.n, 4)
    bar = _Progress(budget, name, progress)
    bar.update(min(summary.measured, budget), summary)
    try:
        while summary.measured < budget and tun.has_next():
            batch = [i for i in tun.next_batch(min(budget - summary.measured, 64)) if i not in seen]
            if not batch:
                continue
            for lo in range(0, len(batch), chunk):
                part = batch[lo:lo + chunk]
                inputs = [MeasureInput(wl_ref, hw_ref, i, target, number, check, sync) for i in part]
                results: list[MeasureResult] = pool.measure(inputs)
                records = [TuningRecord.for_vta(
                    wl, hw, space.get(i), costs=r.costs, error_no=r.error_no, all_cost=r.all_cost,
                    timestamp=r.timestamp, reason=r.reason, message=r.message, source="measured",
                    runner=runner, session=session) for i, r in zip(part, results)]
                stored = db.add(records)  # committed before anything else happens
                if stored != len(records):
                    log.warning("%s: %d of %d records were already in the database", name,
                                len(records) - stored, len(records))
                outs = [outcome(i, r.costs, r.error_no) for i, r in zip(part, results)]
                for i, r in zip(part, results):
                    seen.add(i)
                    account(i, r.costs, r.error_no)
                    summary.new += 1
                tun.update(outs)
                bar.update(len(part), summary)
                if early_stopping and summary.measured - last_improvement[0] >= early_stopping:
                    break
            if early_stopping and summary.measured - last_improvement[0] >= early_stopping:
                log.info("%s: no improvement in %d trials, stopping early", name,
                         summary.measured - last_improvement[0])
                break
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("%s: interrupted after %d new measurements; rerun the same command to resume",
                    name, summary.new)
    finally:
        bar.close()
        if own_pool:
            pool.close()
    summary.seconds = time.perf_counter() - t_start
    return summary
