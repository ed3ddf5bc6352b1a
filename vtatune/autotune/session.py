"""The VTA tuning driver: propose with a tuner, measure in worker processes, record every
result in the database, resume from it.

Every completed measurement is written to the database as soon as its chunk finishes, so an
interrupted run (Ctrl-C, kill, crash) loses at most the measurements in flight; rerunning
the same command reads the records back, feeds them to the tuner and measures only what is
missing.  Nothing here prints: progress goes to the ``on_progress`` callback.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..compiler.profiles import DEFAULT_PROFILE
from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from ..measure.measure import MeasureInput, MeasureResult
from ..measure.runners import Runner, runner_for
from ..task import DEFAULT_SYNC, VtaTask
from ..tuning import MeasureOutcome, create_tuner
from .features import vta_feature_fn
from .search import InitStrategy, Screen, search

log = logging.getLogger(__name__)

#: Failure reasons that say the measurement itself broke, not the configuration.
CRASH_REASONS = ("build_crashed", "run_crashed", "worker_crashed", "runtime_error",
                 "board_unavailable")
#: failures of the measurement infrastructure, not of the configuration: a resumed run
#: measures these configurations again (as the next ``attempt``; the old record stays)
RETRY_ON_RESUME = ("board_unavailable",)


@dataclass
class TuneSummary:
    workload: str
    hw: str
    target: str
    tuner: str
    space_size: int
    runner: str = ""           # the records' runner label
    measured: int = 0          # records for this workload/runner in the database afterwards
    new: int = 0               # measured and stored by this run
    resumed: int = 0           # taken from the database
    valid: int = 0
    invalid: int = 0
    crashed: int = 0           # of this run's measurements: the measurement broke
    screened: int = 0          # proposed but not measured (predicted invalid)
    best_index: int | None = None
    best_cost: float = math.inf
    best_gops: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    history: list = field(default_factory=list)  # (trial number, best cost so far)

    @property
    def all_crashed(self) -> bool:
        """Every measurement of this run broke (a broken setup, not bad configurations)."""
        return self.crashed > 0 and self.crashed == self.attempted

    attempted: int = 0         # measured by this run (stored or found already stored)

    def as_dict(self) -> dict:
        d = dict(vars(self))
        d["best_cost"] = None if math.isinf(self.best_cost) else self.best_cost
        return d


ProgressFn = Callable[[TuneSummary, int], None]
"""``on_progress(summary, n)``: ``n`` more trials are done (0 once at the start)."""


def tune(task: VtaTask | Any, runner: Runner | str = "tsim", *, db, tuner: str = "xgb",
         n_trial: int = 200, seed: int = 0, workers: int = 2,
         early_stopping: int | None = None, check: bool = False, number: int = 1,
         chunk: int | None = None, init: InitStrategy | None = None,
         screen: Screen | None = None, pool=None, feature: str = "itervar",
         tuner_options: dict | None = None, on_progress: ProgressFn | None = None,
         hw: HwConfig | str | None = None, sync: str | None = None,
         profile: str | None = None) -> TuneSummary:
    """Tune one task until ``n_trial`` configurations of it are recorded for this runner
    (records already in ``db`` count), the space is exhausted, or ``early_stopping`` trials
    pass without improvement.  ``task`` may also be a workload reference (suite name, spec,
    AutoTVM input), bound to ``hw`` with token scheme ``sync`` and compiler ``profile``.  The runner and the token
    scheme are checked before anything is recorded.

    ``init`` (a validity-driven first plan) and ``screen`` (which proposals are measured) are
    ``autotune.search`` strategies; screened configurations are stored as ``predicted``
    records with reason ``screened`` — never exported, never labels, never counted."""
    runner = runner_for(runner)
    if isinstance(task, VtaTask):
        if hw is not None or sync is not None or profile is not None:
            raise ConfigurationError("task", "a VtaTask carries its hardware, token scheme and "
                                             "profile; hw=/sync=/profile= are for a workload reference")
    else:
        task = VtaTask.create(task, hw, sync=sync or DEFAULT_SYNC,
                              profile=profile or DEFAULT_PROFILE)
    space = task.space
    flops = task.flops
    label = runner.label(task)
    if hasattr(runner, "for_session"):  # boards: `number` runs per call, leases in `db`
        runner = runner.for_session(db, number)
    summary = TuneSummary(task.name, task.hw.name, runner.kind, tuner, space.size, runner=label)
    t_start = time.perf_counter()
    session = uuid.uuid4().hex[:12]
    options = dict(tuner_options or {})
    if tuner in ("xgb", "pruner") and "feature_fn" not in options:
        options["feature_fn"] = vta_feature_fn(feature, space, task.workload, task.hw)
    if tuner == "pruner" and "draft" not in options:  # draft-then-verify: the analytic model
        from .draft import draft_model
        options["draft"] = draft_model(space, task.workload, task.hw, task.profile, task.sync)

    def make_tuner(init_hook):
        return create_tuner(tuner, space, seed=seed, init=init_hook, **options)

    def outcome(index: int, costs, error_no: int) -> MeasureOutcome:
        return MeasureOutcome(index=index, costs=tuple(costs), error_no=error_no, flops=flops)

    def account(index: int, costs, error_no: int) -> None:
        summary.measured += 1
        cost = float(sum(costs) / len(costs)) if costs else math.inf
        if error_no == 0 and math.isfinite(cost) and cost > 0:
            summary.valid += 1
            if cost < summary.best_cost:
                summary.best_cost, summary.best_index = cost, index
                summary.best_gops = flops / cost / 1e9
        else:
            summary.invalid += 1
        summary.history.append((summary.measured, summary.best_cost))

    def progress(n: int) -> None:
        if on_progress is not None:
            on_progress(summary, n)

    # ---- resume: everything this task already has for this runner
    previous = [r for r in db.records(workload_key=task.key, hw=task.hw.name, source="measured")
                if r.runner == label and r.config_index is not None]
    seen: set[int] = set()
    last_attempt: dict[int, int] = {}
    resumed = []
    for r in sorted(previous, key=lambda r: r.timestamp):
        if not 0 <= r.config_index < space.size:
            continue
        last_attempt[r.config_index] = max(last_attempt.get(r.config_index, -1), r.attempt)
        if r.config_index in seen or r.reason in RETRY_ON_RESUME:
            continue
        seen.add(r.config_index)
        resumed.append(outcome(r.config_index, r.costs, r.error_no))
        account(r.config_index, r.costs, r.error_no)
    summary.resumed = len(resumed)
    if resumed:
        log.info("%s: resumed %d measured configurations from the database", task.name,
                 len(resumed))

    own_pool = pool is None
    if own_pool:
        from ..measure.pool import MeasurePool
        pool = MeasurePool(workers)

    def measure(indices: list[int]) -> list[MeasureOutcome]:
        inputs = [MeasureInput(task, space.get(i), runner, number, check) for i in indices]
        results: list[MeasureResult] = pool.measure(inputs)
        records = [task.record(inp.config, costs=r.costs, error_no=r.error_no,
                               all_cost=r.all_cost, timestamp=r.timestamp, reason=r.reason,
                               message=r.message, source="measured", runner=label,
                               session=session, attempt=last_attempt.get(inp.config.index, -1) + 1)
                   for inp, r in zip(inputs, results)]
        stored = db.add(records)  # committed before anything else happens
        if stored != len(records):  # another process measured them meanwhile
            log.warning("%s: %d of %d records were already in the database", task.name,
                        len(records) - stored, len(records))
        summary.new += stored
        summary.attempted += len(indices)
        summary.crashed += sum(r.reason in CRASH_REASONS for r in results)
        for i, r in zip(indices, results):
            account(i, r.costs, r.error_no)
        progress(len(indices))
        return [outcome(i, r.costs, r.error_no) for i, r in zip(indices, results)]

    def screened(indices: list[int]) -> None:
        summary.screened += len(indices)
        db.add([task.record(space.get(i), source="predicted", reason="screened",
                            message="not measured: screened out as predicted invalid",
                            runner=label, session=session) for i in indices])

    progress(0)
    try:
        result = search(make_tuner, measure, min(n_trial, space.size),
                        early_stopping=early_stopping, screen=screen, init=init, space=space,
                        rng=np.random.default_rng(seed), resumed=resumed,
                        on_screened=screened, chunk=chunk or max(2 * pool.n, 4))
        if result.stopped_early:
            log.info("%s: no improvement in %d trials, stopping early", task.name,
                     early_stopping)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("%s: interrupted after %d new measurements; rerun the same command to "
                    "resume", task.name, summary.new)
    finally:
        if own_pool:
            pool.close()
    summary.seconds = time.perf_counter() - t_start
    return summary
