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
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...errors import ConfigurationError, ErrorCategory
from .env import (TuningFailedError, load_intrinsics_for, require_device, require_tvm,
                  target_cores, target_label)
from .importer import ImportedModel, Kernel, extract_kernels

tvm = require_tvm()
from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402
from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord  # noqa: E402

from .builder import BUILD_TIMEOUT_TAG, RetryingBuilder  # noqa: E402
from .store import LOCAL_RUNNER, NOT_COUNTED, MSDatabase  # noqa: E402,F401 - NOT_COUNTED re-exported


class _Stop(Exception):
    """Raised from a callback to leave MetaSchedule's loop after Ctrl-C."""

log = logging.getLogger(__name__)


def classify(build_error: str | None, run_error: str | None,
             run_secs: list | None = None) -> tuple[int, str]:
    """(error_no, reason) of one measured candidate."""
    if build_error:
        if build_error.startswith(BUILD_TIMEOUT_TAG):
            return int(ErrorCategory.BUILD_TIMEOUT), "build_timeout"
        return int(ErrorCategory.COMPILE_HOST), "build_error"
    if run_error:
        if "timeout" in run_error.lower():
            return int(ErrorCategory.RUN_TIMEOUT), "run_timeout"
        return int(ErrorCategory.RUNTIME_DEVICE), "run_error"
    if run_secs is not None and not run_secs:
        return int(ErrorCategory.RUNTIME_DEVICE), "run_error"   # ran, but no time came back
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

    stop_requested = False
    error: BaseException | None = None

    def apply(self, task_scheduler: Any, task_id: int, measure_candidates: list,
              builder_results: list, runner_results: list) -> None:
        # exceptions raised here reach Python again only as TVM's RuntimeError: keep the
        # real one for tune_model
        try:
            self._apply(task_scheduler, task_id, measure_candidates, builder_results,
                        runner_results)
        except BaseException as exc:
            self.error = exc
            raise
        if self.stop_requested:
            raise _Stop("interrupted")

    def _apply(self, task_scheduler: Any, task_id: int, measure_candidates: list,
               builder_results: list, runner_results: list) -> None:
        task = task_scheduler.tasks_[task_id].ctx
        workload = self.database.commit_workload(task.mod)
        name = str(task.task_name)
        for cand, b, r in zip(measure_candidates, builder_results, runner_results):
            secs_in = None if r.run_secs is None else list(r.run_secs)
            error_no, reason = classify(b.error_msg, r.error_msg, secs_in)
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
    search: dict = field(default_factory=dict)    # strategy, learned-model calls per round

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def local_runner(timeout_s: float, runs: int) -> Any:
    """MetaSchedule's LocalRunner as vtatune measures with it: ``runs`` timed repeats of at
    least 20 ms each (tuning and transfer-tuning share it, so their times compare)."""
    cfg = ms.runner.EvaluatorConfig(number=1, repeat=max(1, runs), min_repeat_ms=20,
                                    enable_cpu_cache_flush=False)
    return ms.runner.LocalRunner(timeout_sec=timeout_s, evaluator_config=cfg)


def tune_model(model: ImportedModel, target: Any, db: Any, *, trials: int,
               trials_per_task: int | None = None, batch: int = 32,
               cost_model: str = "xgb", strategy: str = "evolutionary", seed: int | None = None,
               kernels: Sequence[str] | None = None, build_timeout: float = 60.0,
               run_timeout: float = 30.0, runs: int = 3, session: str = "",
               progress: Callable[[int, int], Any] | None = None,
               on_batch: Callable[[str, int, float], None] | None = None,
               oneshot_model: Any = None) -> TuneReport:
    """Tune ``model`` on ``target`` with ``trials`` measurements in all (MetaSchedule's
    ``max_trials_global``), at most ``trials_per_task`` per kernel, ``batch`` candidates per
    round.  ``kernels`` restricts tuning to those task names.  Returns a ``TuneReport``.

    ``strategy="oneshot"`` (oneshot.py): each kernel gets one batch of k =
    ``trials_per_task`` (default ``min(batch, trials)``) candidates, the top-k of a
    model-only search with the frozen predictor ``oneshot_model`` (an ``OneShotMSPredictor``
    or its file; default: the one trained on the shipped data); ``cost_model`` is unused."""
    for name, v in (("trials", trials), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigurationError(name, f"expected an int >= 1, got {v!r}")
    if strategy not in ("evolutionary", "pruner", "oneshot"):
        raise ConfigurationError("strategy", f"expected evolutionary, pruner or oneshot, "
                                             f"got {strategy!r}")
    predictor = None
    if strategy == "oneshot":
        from .oneshot import resolve_predictor
        predictor = resolve_predictor(oneshot_model)
        batch = int(trials_per_task or min(batch, trials))
        trials_per_task = batch
        cost_model = "random"                   # unused: the predictor is the cost model
    if not isinstance(cost_model, str):         # a CostModel instance (e.g. mlp_model.py's)
        if not isinstance(cost_model, ms.cost_model.CostModel):
            raise ConfigurationError("cost_model", f"expected a name or a CostModel, got "
                                                   f"{type(cost_model).__name__}")
    elif cost_model not in ("xgb", "random", "mlp"):
        raise ConfigurationError("cost_model", f"expected xgb, random or mlp, got {cost_model!r}")
    elif cost_model == "xgb":
        try:
            import xgboost  # noqa: F401
        except ImportError:
            raise ConfigurationError("cost_model", "xgb needs xgboost: pip install "
                                                   "'vtatune[tvm]' (xgboost-cpu)") from None
    require_device(target)          # before the (slow, for cuda) intrinsics import
    load_intrinsics_for(target)
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
        # the tuner's own measurements count; timeouts (a busy machine) and transfer-tuning's
        # standalone measurements do not
        done[k.name] = db.count(key, label, runner=LOCAL_RUNNER, exclude_errors=NOT_COUNTED)
    report = TuneReport(model=model.spec, target=str(target), resumed_from=sum(done.values()))
    todo = [k for k in chosen if done[k.name] < per_task]
    remaining = min(trials - sum(min(done[k.name], per_task) for k in chosen),
                    sum(per_task - done[k.name] for k in todo))
    recorder = Recorder(database, None)
    builder = RetryingBuilder(max_workers=target_cores(target), timeout_sec=build_timeout)
    if remaining > 0 and todo:
        if progress:
            progress(0, remaining)
        measured = [0]

        def batch_done(name: str, n: int, best: float) -> None:
            measured[0] += n
            if progress:  # MetaSchedule may finish the round that crosses the budget
                progress(measured[0], max(remaining, measured[0]))
            if on_batch:
                on_batch(name, n, best)

        recorder.on_batch = batch_done
        # MetaSchedule has one per-task cap: kernels resumed at different points are tuned in
        # groups of equal remaining trials (one group on a fresh run)
        groups: dict[int, list[Kernel]] = {}
        for k in todo:
            groups.setdefault(per_task - done[k.name], []).append(k)
        left = remaining
        restore = _install_sigint(recorder)
        try:
            for cap, ks in sorted(groups.items(), reverse=True):
                share = min(left, cap * len(ks))
                if share <= 0:
                    break
                before = measured[0]
                _run_group(ks, target, database, recorder, builder, share, cap,
                           cap if predictor is not None else batch,
                           cost_model, strategy, seed, run_timeout, runs, report.search,
                           predictor)
                left -= measured[0] - before
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            restore()
            builder.shutdown()
        report.interrupted = report.interrupted or recorder.stop_requested
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


def _run_group(ks: list, target: Any, database: MSDatabase, recorder: Recorder, builder: Any,
               trials: int, cap: int, batch: int, cost_model: str, strategy: str,
               seed: int | None, run_timeout: float, runs: int,
               search: dict | None = None, predictor: Any = None) -> None:
    """One ``tune_tasks`` call over kernels with the same per-task cap.  TVM reports a Python
    exception raised inside its loop as RuntimeError: Ctrl-C (``_Stop``) comes out as
    ``KeyboardInterrupt``, a callback's error as itself, anything else as
    ``TuningFailedError``."""
    rand = ms.utils.fork_seed(seed, n=len(ks)) if seed is not None else [-1] * len(ks)
    pruner = None
    if strategy == "pruner":      # draft-then-verify (pruner.py); one clone per task
        from .pruner import PrunerSearch
        pruner = PrunerSearch()
    def strategy_of() -> Any:
        if pruner is not None:
            return pruner.clone()
        if strategy == "oneshot":
            from .oneshot import search_strategy
            return search_strategy()
        return strategy
    contexts = [ms.TuneContext(
        mod=k.mod, target=target, space_generator="post-order-apply",
        search_strategy=strategy_of(),
        task_name=k.name, rand_state=rs, num_threads=target_cores(target),
        logger=logging.getLogger(f"{__name__}.{k.name}")).clone() for k, rs in zip(ks, rand)]
    model = (cost_model if not isinstance(cost_model, str)
             else ms.CostModel.create(cost_model, num_tuning_cores=target_cores(target))
             if cost_model != "random" else "random")
    counter = None
    callbacks = [recorder, ms.measure_callback.RemoveBuildArtifact(),
                 ms.measure_callback.UpdateCostModel()]
    if predictor is not None:       # one-shot: the frozen predictor, nothing is updated
        from .oneshot import OneShotCostModel
        model = OneShotCostModel(predictor)
        callbacks = callbacks[:2]
    if search is not None and not isinstance(model, str):
        from .pruner import CountingCostModel
        model = counter = CountingCostModel(model)    # learned-model calls per round
    try:
        ms.tune_tasks(
            tasks=contexts, task_weights=[float(k.weight) for k in ks], work_dir="",
            max_trials_global=trials, max_trials_per_task=cap, num_trials_per_iter=batch,
            builder=builder, runner=local_runner(run_timeout, runs),
            database=database, cost_model=model,
            measure_callbacks=callbacks, task_scheduler="gradient")
        if counter is not None:
            calls = [n for n in counter.per_round if n]
            search["strategy"] = strategy
            search.setdefault("learned_calls_per_round", []).extend(calls)
            search["learned_seconds"] = search.get("learned_seconds", 0.0) + counter.seconds
        if predictor is not None and search is not None:
            search["oneshot_predictor"] = predictor.fingerprint()
            search["oneshot_k"] = batch
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - TVM wraps everything in RuntimeError
        if recorder.stop_requested or isinstance(recorder.error, (_Stop, KeyboardInterrupt)):
            raise KeyboardInterrupt from None
        if recorder.error is not None:
            raise recorder.error from None
        first = str(exc).strip().splitlines()
        raise TuningFailedError(f"MetaSchedule stopped: {first[-1] if first else exc}") from None


def _install_sigint(recorder: Recorder) -> Callable[[], None]:
    """First Ctrl-C: finish and store the batch being measured, then stop; second: abort."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if recorder.stop_requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        recorder.stop_requested = True
        log.warning("interrupted: storing the batch being measured, then stopping "
                    "(Ctrl-C again to abort)")
    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)
