"""Transfer-tuning (Gibson & Cano, PACT 2022) on MetaSchedule traces.

For each kernel of a new model, the best stored schedules of same-class kernels of already
tuned source models are replayed verbatim on it, each candidate is measured once, and the
fastest is kept.  Tile sizes are not re-fitted: replaying a ``SamplePerfectTile`` decision
keeps every inner factor that divides what is left of the new extent and gives the outermost
factor the rest; an inner factor that does not divide is replaced by all that is left (the
factors outside it become 1): a trivial split from that level out (docs/tvm.md).

Two variants (both reported by ``transfer``):

* ``faithful`` — the published artifact: the fastest transferred schedule wins even when it
  is slower than the untuned kernel (the artifact's untuned option is a 1000 ms placeholder);
* ``fixed`` — the untuned kernel is measured too (an empty trace) and kept when faster, so a
  transfer never makes a kernel slower.

Every measured candidate is stored in the database (session ``transfer:<model>``), the untuned
measurement included, so ``vtatune tvm run`` sees the fixed variant's choice.  Search time is
timed as in the paper: from the replay of the first trace to the last measurement
(``search_s``, the fixed variant); the faithful variant's time leaves out the untuned
measurements it never uses (``faithful_search_s``), which run in their own, last phase.

Source-model selection (docs/tvm.md): the paper's rule is not published; the PACT scripts use
one fixed source per target.  ``select_sources`` ranks candidate models by *class coverage*:
the share of the target's work (flops x calls) in kernels whose class has at least one tuned
kernel in the source; ties go to the source with more tuned kernels of those classes.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...errors import ConfigurationError
from .env import load_intrinsics_for, require_device, require_tvm, target_cores
from .importer import ImportedModel, Kernel, extract_kernels
from .store import TRANSFER_RUNNER, MSDatabase, to_ms_json
from .tune import classify, local_runner

tvm = require_tvm()
from tvm.s_tir import meta_schedule as ms  # noqa: E402
from tvm.s_tir.meta_schedule.arg_info import ArgInfo  # noqa: E402
from tvm.s_tir.meta_schedule.builder import BuilderInput  # noqa: E402
from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord  # noqa: E402
from tvm.s_tir.meta_schedule.runner import RunnerInput  # noqa: E402

from .builder import RetryingBuilder  # noqa: E402

log = logging.getLogger(__name__)

VARIANTS = ("fixed", "faithful")


@dataclass
class Source:
    """A tuned kernel of a source model: its class and best stored record."""
    model: str
    kernel: str
    klass: str
    record: Any          # vtatune TuningRecord (best)
    workload: Any        # MetaSchedule Workload of the source kernel


@dataclass
class KernelChoice:
    name: str
    klass: str
    weight: int
    candidates: int = 0
    valid: int = 0
    untuned_s: float | None = None
    faithful_s: float | None = None      # fastest transferred schedule (None: none worked)
    faithful_from: str = ""
    fixed_s: float | None = None         # min(faithful, untuned)
    fixed_from: str = ""                 # "" = untuned kept
    faithful_record: Any = field(default=None, repr=False)   # MS TuningRecord
    fixed_record: Any = field(default=None, repr=False)
    #: "<model>/<kernel>" of a source kernel with the same structural hash: the source's
    #: schedule is a database hit for this kernel (``tvm run`` uses it), not a transfer, so
    #: the kernel is left out of transfer figures (``TransferReport.transferred``)
    reused_from: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_record")}


@dataclass
class TransferReport:
    model: str
    sources: list
    kernels: list = field(default_factory=list)   # KernelChoice
    search_s: float = 0.0          # fixed variant: replay + every measurement (untuned too)
    measured: int = 0
    faithful_search_s: float = 0.0  # replay + the transferred candidates' measurements only
    untuned_s: float = 0.0          # the untuned kernels' measurements (fixed variant only)

    @property
    def reused(self) -> list:
        """Kernels identical to a source kernel (the reuse guard)."""
        return [k for k in self.kernels if k.reused_from]

    @property
    def transferred(self) -> list:
        """Kernels that are really transferred: no identical source kernel."""
        return [k for k in self.kernels if not k.reused_from]

    def to_dict(self) -> dict:
        return {"model": self.model, "sources": self.sources, "search_s": self.search_s,
                "faithful_search_s": self.faithful_search_s, "untuned_s": self.untuned_s,
                "measured": self.measured, "kernels": [k.to_dict() for k in self.kernels],
                "reused": [[k.name, k.reused_from] for k in self.reused]}

    def database(self, variant: str) -> Any:
        """A MetaSchedule MemoryDatabase holding the chosen schedule of each kernel for
        ``variant`` (kernels left untuned are absent)."""
        if variant not in VARIANTS:
            raise ConfigurationError("variant", f"expected one of {VARIANTS}, got {variant!r}")
        mem = ms.database.MemoryDatabase()
        for k in self.kernels:
            rec = k.fixed_record if variant == "fixed" else k.faithful_record
            if rec is not None:
                mem.commit_workload(rec.workload.mod)
                mem.commit_tuning_record(rec)
        return mem


def tuned_sources(db: Any, target: Any, model: ImportedModel,
                  kernels: Sequence[Kernel] | None = None) -> list[Source]:
    """The kernels of a source model that have a successful record on ``target``."""
    database = MSDatabase(db, target)
    out = []
    for k in kernels if kernels is not None else extract_kernels(model, target):
        key = database.key_of(k.mod)
        # an empty trace is an untuned measurement (transfer-tuning's baseline): nothing to
        # transfer
        best = next((r for r in db.best(key, database.hw, k=8) if _has_steps(r)), None)
        if best is not None:
            out.append(Source(model.spec, k.name, k.klass, best,
                              database.index.workload_of_key(key)))
    return out


def _has_steps(rec: Any) -> bool:
    trace = rec.config.get("trace") if isinstance(rec.config, dict) else None
    return bool(trace and trace[0])


def class_coverage(target_kernels: Sequence[Kernel], sources: Sequence[Source]) -> float:
    """Share of the target's work (flops x calls; calls when flops are unknown) in kernels
    whose class has a tuned source kernel."""
    classes = {s.klass for s in sources}

    def work(k: Kernel) -> float:
        return (k.flops or 1.0) * k.weight
    total = sum(work(k) for k in target_kernels) or 1.0
    return sum(work(k) for k in target_kernels if k.klass in classes) / total


def select_sources(target_kernels: Sequence[Kernel], by_model: dict[str, list[Source]],
                   n: int = 1) -> list[str]:
    """The ``n`` source models with the highest class coverage (module docstring)."""
    def score(name: str) -> tuple[float, int]:
        srcs = by_model[name]
        classes = {k.klass for k in target_kernels}
        return class_coverage(target_kernels, srcs), sum(s.klass in classes for s in srcs)
    return sorted(by_model, key=lambda m: score(m), reverse=True)[:max(1, n)]


def _apply(trace: Any, mod: Any) -> Any:
    """Replay ``trace`` verbatim on ``mod`` (postprocessing steps included); the schedule's
    module, or None when a step does not apply."""
    try:
        sch = tvm.s_tir.Schedule(mod)
        trace.apply_to_schedule(sch, remove_postproc=False)
        return sch
    except Exception as exc:  # noqa: BLE001 - TVM raises ScheduleError / TVMError variants
        log.debug("trace does not apply: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return None


def transfer(model: ImportedModel, sources: Sequence[ImportedModel], target: Any, db: Any, *,
             select: int | None = None, build_timeout: float = 60.0, run_timeout: float = 30.0,
             runs: int = 3, kernels: Sequence[str] | None = None,
             progress: Callable[[int, int], Any] | None = None) -> TransferReport:
    """Transfer-tune ``model`` from the tuned ``sources`` (see the module docstring).
    ``select`` keeps only the best-covering ``select`` sources (default: pool all);
    ``kernels`` restricts the transfer to those task names (default: every kernel)."""
    require_device(target)
    load_intrinsics_for(target)
    all_kernels = extract_kernels(model, target)
    if kernels is not None:
        missing = sorted(set(kernels) - {k.name for k in all_kernels})
        if missing:
            raise ConfigurationError("kernels", f"{model.spec} has no kernel {missing[0]!r}")
    kernels = [k for k in all_kernels if kernels is None or k.name in kernels]
    by_model = {}
    for src in sources:
        if src.spec == model.spec:
            raise ConfigurationError("from", f"{src.spec} is the model being transfer-tuned")
        by_model[src.spec] = tuned_sources(db, target, src)
        if not by_model[src.spec]:
            log.warning("%s has no tuned kernel on this target: nothing to transfer from it",
                        src.spec)
    chosen = select_sources(kernels, by_model, select) if select else list(by_model)
    pool = [s for name in chosen for s in by_model[name]]
    report = TransferReport(model=model.spec, sources=chosen)
    database = MSDatabase(db, target, runner=TRANSFER_RUNNER, session=f"transfer:{model.spec}")

    # the timed phase starts here, as in the paper: replaying the traces is part of the
    # search, then every candidate is built and measured
    t0 = time.perf_counter()
    # candidates: (kernel index, label, schedule or None for untuned)
    cands: list[tuple[int, str, Any]] = []
    by_key = {}
    for s in pool:
        by_key.setdefault(s.record.workload_key, f"{s.model}/{s.kernel}")
    for i, k in enumerate(kernels):
        database.register(k.name, k.mod)
        choice = KernelChoice(k.name, k.klass, k.weight)
        choice.reused_from = by_key.get(database.key_of(k.mod), "")
        if choice.reused_from:
            log.warning("%s: kernel %s is identical to source kernel %s (same structural "
                        "hash): a database hit, left out of transfer figures", model.spec,
                        k.name, choice.reused_from)
        report.kernels.append(choice)
        cands.append((i, "", tvm.s_tir.Schedule(k.mod)))   # the untuned kernel
        seen = set()
        for s in pool:
            if s.klass != k.klass:
                continue
            trace = MSRecord.from_json(to_ms_json(s.record), s.workload).trace
            text = str(trace)
            if text in seen:            # the same schedule from two sources: measure once
                continue
            seen.add(text)
            choice.candidates += 1
            cands.append((i, f"{s.model}/{s.kernel}", _apply(trace, k.mod)))

    builder = RetryingBuilder(max_workers=target_cores(target), timeout_sec=build_timeout)
    runner = local_runner(run_timeout, runs)
    # the untuned kernels are measured in their own phase, so the faithful variant's
    # search time (which never uses them) can leave them out
    untuned = [(i, label, sch) for i, label, sch in cands if sch is not None and not label]
    moved = [(i, label, sch) for i, label, sch in cands if sch is not None and label]
    todo = moved + untuned
    total = len(cands)
    done = total - len(todo)   # failed replays count as measured-invalid at once
    if progress:
        progress(done, total)
    chunk = 2 * target_cores(target) * 4
    parts = ([moved[k:k + chunk] for k in range(0, len(moved), chunk)]
             + [untuned[k:k + chunk] for k in range(0, len(untuned), chunk)])
    t_untuned = None
    try:
        for part in parts:
            if t_untuned is None and part and not part[0][1]:
                t_untuned = time.perf_counter()  # the first untuned chunk
            args = [ArgInfo.from_entry_func(sch.mod, remove_preproc=True) for _, _, sch in part]
            built = builder.build([BuilderInput(sch.mod, target) for _, _, sch in part])
            dev = "cuda" if str(target.kind.name) == "cuda" else "cpu"
            run_in = [RunnerInput(b.artifact_path, dev, a)
                      for b, a in zip(built, args) if b.error_msg is None]
            futures = iter(runner.run(run_in))
            for (i, label, sch), b, a in zip(part, built, args):
                r_err, secs = None, None
                if b.error_msg is None:
                    res = next(futures).result()
                    r_err, secs = res.error_msg, res.run_secs
                error_no, reason = classify(b.error_msg, r_err,
                                            None if secs is None else list(secs))
                run_secs = [float(s) for s in secs] if (secs and not error_no) else [1e10]
                k = kernels[i]
                wl = database.commit_workload(k.mod)
                rec = MSRecord(trace=sch.trace, workload=wl, run_secs=run_secs, target=target,
                               args_info=a)
                origin = f"transfer from {label}" if label else "untuned"
                err = (b.error_msg or r_err or "")[-2000:]
                database.commit(rec, error_no=error_no, reason=reason,
                                message=f"{origin}: {err}" if err else origin)
                _choose(report.kernels[i], label, rec, None if error_no else
                        sum(run_secs) / len(run_secs))
                if b.artifact_path:   # what MetaSchedule's RemoveBuildArtifact does
                    shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
            done += len(part)
            if progress:
                progress(done, total)
    finally:
        builder.shutdown()
    t_end = time.perf_counter()
    report.search_s = t_end - t0
    report.untuned_s = 0.0 if t_untuned is None else t_end - t_untuned
    report.faithful_search_s = report.search_s - report.untuned_s
    report.measured = len(todo)
    for c in report.kernels:
        fix_choice(c)
    return report


def fix_choice(c: KernelChoice) -> None:
    """The fixed variant's choice: the fastest transfer only if it beats the measured
    untuned kernel (an unmeasurable untuned kernel leaves the transfer in place)."""
    c.fixed_s, c.fixed_from, c.fixed_record = c.untuned_s, "", None
    if c.faithful_s is not None and (c.untuned_s is None or c.faithful_s < c.untuned_s):
        c.fixed_s, c.fixed_from, c.fixed_record = c.faithful_s, c.faithful_from, c.faithful_record


def _choose(c: KernelChoice, label: str, rec: Any, secs: float | None) -> None:
    if secs is None:
        return
    if not label:
        c.untuned_s = secs
        return
    c.valid += 1
    if c.faithful_s is None or secs < c.faithful_s:
        c.faithful_s, c.faithful_from, c.faithful_record = secs, label, rec


def speedup_share(s_tt: float, s_full: float) -> float:
    """% of max speedup, improvement-normalised: (S_TT - 1) / (S_full - 1) x 100."""
    if not (math.isfinite(s_tt) and math.isfinite(s_full)) or s_full <= 1:
        return float("nan")
    return 100.0 * (s_tt - 1) / (s_full - 1)
