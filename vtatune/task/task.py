"""The VTA tuning task: one workload on one hardware configuration, compiled with one
dependence-token scheme and one compiler profile (AutoTVM's ``Task``).

A ``VtaTask`` is built once (``VtaTask.create``) and handed to every consumer — tuning
session, measurement workers, database look-ups, replay, sweep — so the workload is
resolved, the hardware validated, the space built and the database key computed in one
place.  It pickles with its full ``HwConfig`` (a configuration built in memory, e.g. a
timing variant, travels to worker processes as it is, not as a name to re-load).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

from ..compiler.ir import check_sync
from ..compiler.profiles import DEFAULT_PROFILE, check_profile
from ..db.records import TuningRecord, workload_key
from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from ..space import ConfigEntity, ConfigSpace, space_for
from ..workloads.autotvm import autotvm_input, load_hw
from ..workloads.suites import resolve_workload
from ..workloads.workload import Workload

#: The dependence-token scheme a task compiles with unless told otherwise: the single-pass
#: scheme of the TVM 0.7-era stack that produced the published board times (22-55 % faster
#: there than v0.14's two-pass stream), shown correct and race-free on every configuration
#: of the ResNet-18 and DeepBench suites it was run on (docs/compiler.md, Token schemes).
#: ``sync="tvm-0.14"`` gives the v0.14 stream byte for byte.
DEFAULT_SYNC = "single"


@dataclass(frozen=True)
class VtaTask:
    """A bound workload, its hardware, its token scheme and compiler profile; everything
    else derives from them."""

    workload: Workload
    hw: HwConfig
    sync: str = DEFAULT_SYNC
    profile: str = DEFAULT_PROFILE

    def __post_init__(self) -> None:
        if not isinstance(self.hw, HwConfig):
            raise ConfigurationError("hw", f"expected a HwConfig, got {type(self.hw).__name__}")
        if not isinstance(self.workload, Workload):
            raise ConfigurationError("workload",
                                     f"expected a Workload, got {type(self.workload).__name__}")
        check_sync(self.sync)
        check_profile(self.profile)
        object.__setattr__(self, "workload", self.workload.bind(self.hw))

    @classmethod
    def create(cls, workload: Any, hw: HwConfig | str | None = None, *,
               sync: str = DEFAULT_SYNC, profile: str = DEFAULT_PROFILE) -> "VtaTask":
        """From a suite name, spec string, AutoTVM input or ``Workload``; ``hw`` is a
        ``HwConfig``, a shipped name or a JSON file (default: the AutoTVM input's
        ``-model=``, else the default configuration)."""
        check_sync(sync)
        check_profile(profile)
        wl, hwc = resolve_workload(workload, None if hw is None else load_hw(hw))
        return cls(wl, hwc, sync, profile)

    # ------------------------------------------------------------------ derived
    @property
    def name(self) -> str:
        return self.workload.name or self.workload.spec

    @property
    def template(self) -> str:
        return self.workload.template

    @property
    def flops(self) -> float:
        return float(self.workload.flops)

    @cached_property
    def space(self) -> ConfigSpace:
        return space_for(self.workload, self.hw)

    @cached_property
    def autotvm_input(self) -> list:
        """``[target_str, task_name, args, {}]`` as AutoTVM logs it."""
        return autotvm_input(self.workload, self.hw)

    @property
    def tvm_target(self) -> str:
        return self.autotvm_input[0]

    @cached_property
    def key(self) -> str:
        """The database's ``workload_key``: AutoTVM's ``[task_name, args]``."""
        _, task_name, args, _ = self.autotvm_input
        return workload_key(task_name, args)

    def config(self, index: int) -> ConfigEntity:
        return self.space.get(index)

    # ------------------------------------------------------------------ records
    def record(self, config: ConfigEntity | Mapping[str, Any], *, costs: Sequence[float] = (),
               error_no: int = 0, all_cost: float = 0.0, timestamp: float | None = None,
               **fields: Any) -> TuningRecord:
        """A database record of ``config`` (an entity or its AutoTVM JSON dict) of this task;
        further keyword arguments are record fields (``source``, ``runner``, ``reason`` ...)."""
        if isinstance(config, ConfigEntity):
            config = config.to_json_dict()
        fields.setdefault("workload_name", self.workload.name or "")
        fields.setdefault("config_index",
                          config.get("index") if isinstance(config, Mapping) else None)
        return TuningRecord(backend="vta", workload_key=self.key, target=self.tvm_target,
                            hw=self.hw.name, config=config, costs=list(costs),
                            error_no=int(error_no), all_cost=all_cost,
                            timestamp=time.time() if timestamp is None else timestamp, **fields)

    def __getstate__(self) -> dict:
        # caches are rebuilt on the other side (smaller pickles, nothing stale)
        return {"workload": self.workload, "hw": self.hw, "sync": self.sync,
                "profile": self.profile}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
