"""The VTA layers of a deployed network: which configuration each runs, and running it.

Configuration selection (``select_config``) has AutoTVM's ``ApplyHistoryBest`` semantics on
the records database: the successful measured or imported record of the layer's task with
the lowest mean cost wins; its entity is applied as AutoTVM applies it.  Costs are ranked
within one kind of cost at a time, most trustworthy first: boards (``pynq/...`` measured
with the deploy's token scheme and profile), then tsim with the deploy's token scheme,
profile and current timing model (its exact runner label), then tsim records of other
schemes or an older timing model (their costs are not comparable with the current ones),
then imported logs (``import``, e.g. TopHub); fsim wall times are never ranked (they are no
hardware time).  Imported records whose time was withheld (a log shipped
without its times, cost 0) come last, in log order — AutoTVM would apply them too.  A layer of a network differs from the tuned task in its
epilogue: the bias is loaded into the accumulator buffer and the shift/clip are arbitrary
(``requant``), so a tuned configuration may not fit any more; the winner is checked to
compile with the layer's own epilogue, and the next best is tried when it does not.  With no
usable record the layer runs a default configuration: the first index of the space that
compiles (AutoTVM's fallback likewise takes the first value of every knob), reported as
``fallback``.

The tuning task of a layer is the layer's shape with the tuning template's epilogue
(``shift_clip``): its database key is the TopHub/AutoTVM key, so records imported from
TopHub or tuned with ``vtatune tune`` apply.

``VtaLayer`` is one compiled layer: its program, packed weights and bias prepared once, and
``run(x_packed)`` writing the packed activation straight into the program's data region
(``measure.runners.run_packed``) on fsim, tsim or a board runner.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..compiler import packing
from ..compiler.program import Program, compile_program
from ..compiler.sweep import verdict
from ..db.records import split_workload_key, workload_key
from ..errors import ConfigurationError, VtatuneError
from ..hardware.config import HwConfig
from ..measure.base import Runner
from ..measure.runners import packed_output_shape, run_packed, runner_for
from ..task import VtaTask
from ..workloads.workload import CONV2D, DENSE, Workload

#: runner kinds whose costs rank configurations, most trustworthy first
SOURCE_ORDER = ("pynq", "tsim", "tsim-other", "import")
#: the last tier: imported records without a time (a log shipped with its times withheld)
WITHHELD = "import (time withheld)"
TUNED = "tuned"
FALLBACK = "fallback"


class NoValidConfigError(VtatuneError):
    """No configuration of a layer's space compiles with its epilogue."""


def tuning_task(wl: Workload, hw: HwConfig, **task_options: Any) -> VtaTask:
    """The tuning task of a network layer: its shape with the template's epilogue, so its
    key is the AutoTVM/TopHub key of that shape."""
    return VtaTask.create(dataclasses.replace(wl, epilogue="shift_clip", requant=None),
                          hw, **task_options)


def task_keys(task: VtaTask) -> list[str]:
    """The database keys of ``task``'s records: its AutoTVM key, and for ``conv2d_packed.vta``
    the older 8-argument signature of the same operator (the layout given twice), which
    TopHub's 4x8 ResNet-18 records use (``workloads.autotvm.SIGNATURES``)."""
    keys = [task.key]
    name, args = split_workload_key(task.key)
    if name == CONV2D and len(args) == 7:
        keys.append(workload_key(name, args[:6] + [args[5]] + args[6:]))
    return keys


@dataclass
class ConfigChoice:
    """The configuration a layer runs and where it came from."""

    index: int
    knobs: dict
    kind: str                        # TUNED or FALLBACK
    record: dict | None = None       # the chosen record: runner, source, cost_s, ...
    skipped: list = field(default_factory=list)  # better records that did not compile
    note: str = ""

    def to_dict(self) -> dict:
        return {"index": self.index, "knobs": dict(self.knobs), "kind": self.kind,
                "record": self.record, "skipped": list(self.skipped), "note": self.note}


def _record_summary(rec: Any) -> dict:
    cost = rec.mean_cost
    return {"runner": rec.runner, "source": rec.source,
            "cost_s": cost if cost != float("inf") else None,
            "config_index": rec.config_index, "session": rec.session,
            "timestamp": rec.timestamp}


def default_config(task: VtaTask, wl_requant: Workload, hw: HwConfig, *,
                   sync: str | None = None, profile: str | None = None,
                   limit: int | None = None) -> tuple[int, dict]:
    """The first index of ``task``'s space whose configuration compiles with the layer's
    epilogue (``NoValidConfigError`` if none among the first ``limit``)."""
    sync, profile = sync or task.sync, profile or task.profile
    space = task.space
    n = space.size if limit is None else min(space.size, limit)
    for index in range(n):
        knobs = space.get(index).knobs
        if verdict(wl_requant, knobs, hw, profile, sync)[0]:
            return index, knobs
    raise NoValidConfigError(f"no configuration of {wl_requant.name or wl_requant.spec} "
                             f"compiles on {hw.name} (first {n} of {space.size} tried)")


def _tier(name: str, task: VtaTask):
    """(runner prefix for ``db.best``, label filter) of one tier of ``SOURCE_ORDER``."""
    if name == "pynq":  # pynq/<bitstream>/<clock>/<sync>/<profile>
        return "pynq", lambda label: label.endswith(f"/{task.sync}/{task.profile}")
    if name == "tsim":
        return runner_for("tsim").label(task), lambda label: True
    if name == "tsim-other":
        current = runner_for("tsim").label(task)
        return "tsim", lambda label: label != current
    if name == "import":
        return "import", lambda label: True
    raise ConfigurationError("sources", f"unknown source {name!r}; known: "
                                        f"{', '.join(SOURCE_ORDER)}")


def select_config(db: Any, task: VtaTask, wl_requant: Workload, hw: HwConfig, *,
                  sync: str | None = None, profile: str | None = None,
                  sources: Sequence[str] = SOURCE_ORDER, limit: int = 50) -> ConfigChoice:
    """The configuration a network layer runs (module docstring): the best record of
    ``task.key`` on ``hw`` that compiles with ``wl_requant``'s epilogue, boards' costs first,
    then tsim's, then imported ones (``sources``: tiers of ``SOURCE_ORDER``, in order; at
    most ``limit`` records each); else the default configuration, as ``FALLBACK``."""
    sync, profile = sync or task.sync, profile or task.profile
    skipped: list[dict] = []
    tried: set[int] = set()
    searched = []
    if db is not None:
        keys = task_keys(task)
        tiers = []
        for name in sources:
            prefix, keep = _tier(name, task)
            recs = [r for key in keys
                    for r in db.best(key, hw.name, k=4 * limit, runner_prefix=prefix)
                    if keep(r.runner)]
            recs.sort(key=lambda r: r.mean_cost)  # stable: the primary key's first on ties
            tiers.append((name, recs[:limit]))
        if "import" in sources:  # imported lines whose time was withheld (cost 0): log order
            tiers.append((WITHHELD, [r for key in keys
                                     for r in db.records(key, hw.name, source="imported")
                                     if r.ok and r.mean_cost == float("inf")][:limit]))
        for prefix, recs in tiers:
            searched.append(f"{len(recs)} {prefix}")
            for rec in recs:
                try:
                    entity, _ = task.space.apply_entity(rec.config)
                except ConfigurationError as exc:
                    skipped.append({**_record_summary(rec), "reason": f"not a point of the "
                                    f"space: {exc}"})
                    continue
                if entity.index in tried:
                    continue
                tried.add(entity.index)
                ok, _, reason, message = verdict(wl_requant, entity.knobs, hw, profile, sync)
                if not ok:
                    skipped.append({**_record_summary(rec), "index": entity.index,
                                    "reason": f"does not compile with the requant epilogue: "
                                              f"{reason}: {message}"})
                    continue
                note = (f"best {prefix} record" if prefix != WITHHELD else
                        "first imported record in log order (its time was withheld, so it "
                        "is ranked after every timed record)")
                if skipped:
                    note += f" after {len(skipped)} better record(s) that do not fit"
                return ConfigChoice(entity.index, dict(entity.knobs), TUNED, _record_summary(rec),
                                    skipped, note)
    index, knobs = default_config(task, wl_requant, hw, sync=sync, profile=profile)
    if db is None:
        why = "no records database"
    elif skipped:
        why = f"no record compiles with the requant epilogue ({len(skipped)} tried)"
    else:
        why = f"no successful record of this layer on {hw.name} ({', '.join(searched)})"
    return ConfigChoice(index, dict(knobs), FALLBACK, None, skipped,
                        f"{why}: default configuration (first valid index)")


# ---------------------------------------------------------------------- execution
@dataclass
class LayerTiming:
    """One call of a VTA layer."""

    vta_s: float | None     # VTA time: tsim's simulated latency or the board's time (fsim: None)
    wall_s: float           # host wall time of the call (simulation included)
    cycles: int | None = None
    start: float = 0.0      # time.perf_counter() at the call's start


def pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` with zero rows appended along axis 0 up to ``rows``."""
    if a.shape[0] == rows:
        return a
    out = np.zeros((rows,) + a.shape[1:], dtype=a.dtype)
    out[:a.shape[0]] = a
    return out


def packed_input_shape(wl: Workload, hw: HwConfig) -> tuple[int, ...]:
    """The packed layout of a layer's input: (N/B, C/BI, H, W, B, BI), dense (N/B, I/BI, B, BI)."""
    lead = (wl.batch // hw.batch, wl.in_channels // hw.block_in)
    if wl.template == DENSE:
        return lead + (hw.batch, hw.block_in)
    return lead + (wl.height, wl.width, hw.batch, hw.block_in)


class VtaLayer:
    """One network layer compiled for VTA (see the module docstring).

    ``weight`` int8 (O, I/groups, KH, KW) or dense (O, I) and ``bias`` int32 (O,) are the
    node's own; when the workload's output channels were padded they get zero rows here."""

    def __init__(self, name: str, workload: Workload, knobs: dict, hw: HwConfig,
                 weight: np.ndarray, bias: np.ndarray, *, target: Runner | str = "fsim",
                 sync: str | None = None, profile: str | None = None,
                 choice: ConfigChoice | None = None, program: Program | None = None):
        from ..compiler.profiles import DEFAULT_PROFILE
        from ..task import DEFAULT_SYNC
        if workload.epilogue != "requant":
            raise ConfigurationError("workload", f"layer {name}: a network layer has the "
                                                 f"requant epilogue, got {workload.epilogue!r}")
        self.name, self.hw, self.choice = name, hw, choice
        self.workload = workload.bind(hw)
        self.runner = runner_for(target)
        self.program = program or compile_program(self.workload, knobs, hw,
                                                  sync=sync or DEFAULT_SYNC,
                                                  profile=profile or DEFAULT_PROFILE)
        wl = self.workload
        o = wl.out_channels
        weight = pad_rows(np.asarray(weight, dtype=np.int8), o)
        bias = pad_rows(np.asarray(bias, dtype=np.int32), o)
        if wl.template == DENSE:
            kernel = packing.pack_dense_weight(weight, hw)
        else:
            kernel = packing.pack_kernel(weight, hw)
        self.constants = {"kernel": kernel, "bias": packing.pack_bias(bias, hw, wl.batch)}
        self.in_shape = packed_input_shape(wl, hw)
        self.out_shape = packed_output_shape(self.program)
        self.timings: list[LayerTiming] = []

    @property
    def knobs(self) -> dict:
        return self.program.knobs

    def run(self, x_packed: np.ndarray) -> tuple[np.ndarray, LayerTiming]:
        """The layer on one packed int8 activation; the packed int8 output and its timing."""
        x = np.asarray(x_packed)
        if x.shape != self.in_shape or x.dtype != np.int8:
            raise ConfigurationError("data", f"layer {self.name}: expected packed int8 "
                                             f"{self.in_shape}, got {x.dtype} {x.shape}")
        t0 = time.perf_counter()
        ex = run_packed(self.program, {"data": x, **self.constants}, self.runner)
        wall = time.perf_counter() - t0
        kind = getattr(self.runner, "kind", "")
        vta = None if kind == "fsim" else float(ex.cost)
        cycles = ex.extra.get("cycles") if kind == "tsim" else None
        timing = LayerTiming(vta, wall, cycles, t0)
        self.timings.append(timing)
        return ex.output, timing

    def time_only(self) -> float | None:
        """The VTA time of one call without computing the data (tsim skips the data path:
        its timing does not depend on the data; a board runs zeros); None on fsim."""
        kind = getattr(self.runner, "kind", "")
        if kind == "fsim":
            return None
        x = np.zeros(self.in_shape, dtype=np.int8)
        ex = run_packed(self.program, {"data": x, **self.constants}, self.runner,
                        functional=False)
        return float(ex.cost)
