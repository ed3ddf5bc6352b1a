"""The tuning tasks of a network: one per distinct VTA layer shape.

``vtatune tune MODEL`` tunes these, then ``vtatune deploy MODEL`` runs the network with the
best configurations found.  A task is the layer's shape with the template's own epilogue
(``layers.tuning_task``), so its key is the AutoTVM/TopHub key of that shape and the layers
that share a shape (ResNet-18's C2 occurs four times) share one task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..hardware.config import HwConfig
from ..task import VtaTask
from .layers import tuning_task
from .partition import Placement, partition


@dataclass
class NetworkTask:
    task: VtaTask
    layers: list[str] = field(default_factory=list)  # the graph nodes with this shape

    @property
    def flops(self) -> float:
        """Of all the layers that share the task."""
        return float(self.task.flops) * len(self.layers)


def network_tasks(spec_or_graph: Any, hw: HwConfig | str | None = None, *,
                  batch: int | None = None, sync: str | None = None,
                  profile: str | None = None) -> tuple[list[NetworkTask], list[Placement], str]:
    """(tasks in the order of their first layer, every node's placement, model name) of a
    model spec (``resnet18:res=224``, an ``.onnx`` path) or a ``Graph``."""
    from ..compiler.profiles import DEFAULT_PROFILE
    from ..task import DEFAULT_SYNC
    from .deploy import load_quantized
    hw = hw if isinstance(hw, HwConfig) else HwConfig.load(hw)
    qg, _, model = load_quantized(spec_or_graph, batch)
    placements = partition(qg, hw)
    tasks: dict[str, NetworkTask] = {}
    for p in placements:
        if not p.on_vta:
            continue
        task = tuning_task(p.workload, hw, sync=sync or DEFAULT_SYNC,
                           profile=profile or DEFAULT_PROFILE)
        tasks.setdefault(task.key, NetworkTask(task)).layers.append(p.node)
    return list(tasks.values()), placements, model
