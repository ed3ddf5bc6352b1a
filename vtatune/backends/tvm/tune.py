"""Ansor-style tuning of a model's kernels with MetaSchedule, into the vtatune database.

MetaSchedule's evolutionary search with its XGB cost model, its gradient task scheduler across
the model's kernels, our ``RetryingBuilder`` and MetaSchedule's ``LocalRunner``.  Records go
to the vtatune database through ``MSDatabase``; the ``Recorder`` callback replaces
MetaSchedule's ``AddToDatabase`` so each failure is stored with its category (build error,
build timeout, run error, run timeout) and the progress bar advances per measured batch.

Resuming: trials already stored for a kernel (on the same target label) count against the
budget, so a rerun after Ctrl-C continues where the last batch was stored.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...errors import ConfigurationError, ErrorCategory
from .env import load_cpu_intrinsics_only, require_tvm, target_label
from .importer import ImportedModel, Kernel, extract_kernels

tvm = require_tvm()
from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402
from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord  # noqa: E402

from .builder import BUILD_TIMEOUT_TAG, RetryingBuilder  # noqa: E402
from .store import MSDatabase  # noqa: E402

log = logging.getLogger(__name__)


def classify(build_error: str | None, run_error: str | None) -> tuple[int, str]:
    """(error_no, reason) of one measured candidate."""
    if build_error:
        if build_error.startswith(BUILD_TIMEOUT_TAG):
            return int(ErrorCategory.BUILD_TIMEOUT), "build_timeout"
        return int(ErrorCategory.COMPILE_HOST), "build_error"
    if run_error:
        if "timeout" in run_error.lower():
            return int(ErrorCategory.RUN_TIMEOUT), "run_timeout"
        return int(ErrorCategory.RUNTIME_DEVICE), "run_error"
    return 0, ""


@derived_object
class Recorder(ms.measure_callback.PyMeasureCallback):
    """Stores every measured candidate in the vtatune database (with its failure category)
    and reports progress through ``on_batch(task_name, n_measured, best_secs)``."""

    def __init__(self, database: MSDatabase, on_batch: Callable[[str, int, float], None] | None):
        super().__init__()
        self.database = database
        self.on_batch = on_batch
        self.counts = {"ok": 0, "build_error": 0, "build_timeout": 0, "run_error": 0,
                       "run_timeout": 0}
        self.best: dict[str, float] = {}

    def apply(self, task_scheduler: Any, task_id: int, measure_candidates: list,
              builder_results: list, runner_results: list) -> None:
        task = task_scheduler.tasks_[task_id].ctx
        workload = self.database.commit_workload(task.mod)
        name = str(task.task_name)
        for cand, b, r in zip(measure_candidates, builder_results, runner_results):
            error_no, reason = classify(b.error_msg, r.error_msg)
            secs = [float(s) for s in r.run_secs] if (r.run_secs and not error_no) else [1e10]
            rec = MSRecord(trace=cand.sch.trace, workload=workload, run_secs=secs,
                           target=task.target, args_info=cand.args_info)
            msg = (b.error_msg or r.error_msg or "")[-2000:]
            self.database.commit(rec, error_no=error_no, reason=reason, message=msg)
            self.counts[reason or "ok"] += 1
            if not error_no:
                mean = sum(secs) / len(secs)
                self.best[name] = min(self.best.get(name, math.inf), mean)
        if self.on_batch:
            self.on_batch(name, len(measure_candidates), self.best.get(name, math.inf))


@dataclass
class TuneReport:
    model: str
    target: str
    kernels: list = field(default_factory=list)   # dicts: name, class, weight, trials, best_us
    measured: int = 0
    resumed_from: int = 0
    counts: dict = field(default_factory=dict)
    builder: dict = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _runner(cores: int, timeout_s: float, runs: int) -> Any:
    cfg = ms.runner.EvaluatorConfig(number=1, repeat=max(1, runs), min_repeat_ms=20,
                                    enable_cpu_cache_flush=False)
    return ms.runner.LocalRunner(timeout_sec=timeout_s, evaluator_config=cfg)


def tune_model(model: ImportedModel, target: Any, db: Any, *, trials: int,
               trials_per_task: int | None = None, batch: int = 32,
               cost_model: str = "xgb", strategy: str = "evolutionary", seed: int | None = None,
               kernels: Sequence[str] | None = None, build_timeout: float = 60.0,
               run_timeout: float = 30.0, runs: int = 3, session: str = "",
               progress: Callable[[int, int], Any] | None = None,
               on_batch: Callable[[str, int, float], None] | None = None) -> TuneReport:
    """Tune ``model`` on ``target`` with ``trials`` measurements in all (MetaSchedule's
    ``max_trials_global``), at most ``trials_per_task`` per kernel, ``batch`` candidates per
    round.  ``kernels`` restricts tuning to those task names.  Returns a ``TuneReport``."""
    for name, v in (("trials", trials), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigurationError(name, f"expected an int >= 1, got {v!r}")
    if cost_model not in ("xgb", "random", "mlp"):
        raise ConfigurationError("cost_model", f"expected xgb, random or mlp, got {cost_model!r}")
    if cost_model == "xgb":
        try:
            import xgboost  # noqa: F401
        except ImportError:
            raise ConfigurationError("cost_model", "xgb needs xgboost: pip install "
                                                   "'vtatune[tvm]' (xgboost-cpu)") from None
    if str(target.kind.name) == "llvm":
        load_cpu_intrinsics_only()
    t0 = time.perf_counter()
    all_kernels = extract_kernels(model, target)
    chosen = [k for k in all_kernels if kernels is None or k.name in kernels]
    if kernels is not None:
        missing = sorted(set(kernels) - {k.name for k in all_kernels})
        if missing:
            raise ConfigurationError("kernels", f"{model.spec} has no kernel {missing[0]!r} "
                                                f"(kernels: {', '.join(k.name for k in all_kernels)})")
    if not chosen:
        raise ConfigurationError("model", f"{model.spec}: no kernel to tune")
    database = MSDatabase(db, target, session=session)
    label = target_label(target)
    per_task = int(trials_per_task or trials)
    done = {}
    for k in chosen:
        key = database.register(k.name, k.mod)
        done[k.name] = db.count(key, label)
    report = TuneReport(model=model.spec, target=str(target), resumed_from=sum(done.values()))
    todo = [k for k in chosen if done[k.name] < per_task]
    remaining = min(trials - sum(min(done[k.name], per_task) for k in chosen),
                    sum(per_task - done[k.name] for k in todo))
    if remaining > 0 and todo:
        cap = max(per_task - done[k.name] for k in todo)
        if progress:
            progress(0, remaining)
        measured = [0]

        def batch_done(name: str, n: int, best: float) -> None:
            measured[0] += n
            if progress:  # MetaSchedule may finish the round that crosses the budget
                progress(measured[0], max(remaining, measured[0]))
            if on_batch:
                on_batch(name, n, best)

        recorder = Recorder(database, batch_done)
        builder = RetryingBuilder(max_workers=_cores(target), timeout_sec=build_timeout)
        contexts = []
        rand = ms.utils.fork_seed(seed, n=len(todo)) if seed is not None else [-1] * len(todo)
        for k, rs in zip(todo, rand):
            contexts.append(ms.TuneContext(
                mod=k.mod, target=target, space_generator="post-order-apply",
                search_strategy=strategy, task_name=k.name, rand_state=rs,
                num_threads=_cores(target), logger=logging.getLogger(f"{__name__}.{k.name}"),
            ).clone())
        try:
            ms.tune_tasks(
                tasks=contexts, task_weights=[float(k.weight) for k in todo], work_dir="",
                max_trials_global=remaining, max_trials_per_task=cap,
                num_trials_per_iter=batch, builder=builder,
                runner=_runner(_cores(target), run_timeout, runs), database=database,
                cost_model=ms.CostModel.create(cost_model, num_tuning_cores=_cores(target))
                if cost_model != "random" else "random",
                measure_callbacks=[recorder, ms.measure_callback.RemoveBuildArtifact(),
                                   ms.measure_callback.UpdateCostModel()],
                task_scheduler="gradient")
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            builder.shutdown()
        report.measured = measured[0]
        report.counts = dict(recorder.counts)
        report.builder = dict(builder.stats)
    for k in chosen:
        key = database.key_of(k.mod)
        best = db.best(key, label, k=1)
        report.kernels.append({**k.describe(), "trials": db.count(key, label),
                               "best_us": best[0].mean_cost * 1e6 if best else None})
    report.wall_s = time.perf_counter() - t0
    return report


def _cores(target: Any) -> int:
    attrs = dict((target.host or target).attrs) if str(target.kind.name) == "cuda" else dict(target.attrs)
    return int(attrs.get("num-cores", 1))


def best_latencies(db: Any, target: Any, kernels: Sequence[Kernel]) -> dict[str, float | None]:
    """Best stored time (seconds) of each kernel on ``target``, or None."""
    database = MSDatabase(db, target)
    out: dict[str, float | None] = {}
    for k in kernels:
        best = db.best(database.key_of(k.mod), database.hw, k=1)
        out[k.name] = best[0].mean_cost if best else None
    return out
