"""Compile a Relax model (untuned, or with the best records of the database) and time it."""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .env import require_tvm
from .importer import ImportedModel

log = logging.getLogger(__name__)


@dataclass
class Latency:
    """End-to-end latency of one build, in seconds (median over ``runs`` timed runs)."""
    median: float
    runs: list = field(default_factory=list)
    compile_s: float = 0.0

    @property
    def spread(self) -> float:
        return (max(self.runs) - min(self.runs)) if self.runs else 0.0


def compile_model(model: ImportedModel, target: Any, database: Any = None) -> Any:
    """A Relax VM executable of ``model``.  With ``database`` (an ``MSDatabase`` or any
    MetaSchedule database) the tuned kernels are applied and the others get TVM's default
    lowering; without it every kernel is untuned (the same pipeline with an empty database,
    so both builds differ only in the schedules)."""
    require_tvm()
    from tvm.s_tir import meta_schedule as ms

    db = database if database is not None else ms.database.MemoryDatabase()
    with target:
        return ms.relax_integration.compile_relax(db, model.mod, target, params=None)


def _device(target: Any) -> Any:
    import tvm
    return tvm.cuda(0) if str(target.kind.name) == "cuda" else tvm.cpu(0)


def run(exe: Any, model: ImportedModel, target: Any, inputs: Sequence[np.ndarray] | None = None
        ) -> list[np.ndarray]:
    """Run the executable once on ``inputs`` (default: the model's example inputs)."""
    import tvm
    from tvm import relax

    from .env import require_device
    require_device(target)
    dev = _device(target)
    vm = relax.VirtualMachine(exe, dev)
    args = [tvm.runtime.tensor(np.ascontiguousarray(a), dev) for a in (inputs or model.inputs)]
    out = vm["main"](*args)
    return _flatten(out)


def _flatten(out: Any) -> list[np.ndarray]:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    return [a for o in out for a in _flatten(o)]


def measure(exe: Any, model: ImportedModel, target: Any, *, runs: int = 10,
            warmup: int = 1) -> Latency:
    """Median end-to-end latency over ``runs`` timed calls (each a separate
    ``time_evaluator`` repeat, after ``warmup`` untimed calls)."""
    import tvm
    from tvm import relax

    from .env import require_device
    require_device(target)
    dev = _device(target)
    vm = relax.VirtualMachine(exe, dev)
    args = [tvm.runtime.tensor(np.ascontiguousarray(a), dev) for a in model.inputs]
    for _ in range(max(0, warmup)):
        vm["main"](*args)
    timer = vm.time_evaluator("main", dev, number=1, repeat=max(1, runs))
    res = timer(*args)
    samples = [float(s) for s in res.results]
    return Latency(median=statistics.median(samples), runs=samples)


def build_and_measure(model: ImportedModel, target: Any, database: Any = None, *,
                      runs: int = 10) -> tuple[Any, Latency]:
    t0 = time.perf_counter()
    exe = compile_model(model, target, database)
    compile_s = time.perf_counter() - t0
    lat = measure(exe, model, target, runs=runs)
    lat.compile_s = compile_s
    return exe, lat
