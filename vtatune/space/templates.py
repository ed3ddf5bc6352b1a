"""The knobs of VTA's four AutoTVM templates, defined exactly as the TVM v0.14 schedules do.

Split axes are those of the packed output (and the packed reduction):

* ``conv2d_packed.vta``, ``group_conv2d_packed.vta``, ``conv2d_transpose_packed.vta``:
  ``tile_b`` (N/BATCH), ``tile_h`` (OH), ``tile_w`` (OW), ``tile_ci`` (CI/BLOCK_IN, per group
  for group conv), ``tile_co`` (CO/BLOCK_OUT), ``oc_nthread`` [1, 2], ``h_nthread`` [1, 2];
* ``dense_packed.vta``: ``tile_b`` (N/BATCH), ``tile_ci`` (IN/BLOCK_IN), ``tile_co``
  (OUT/BLOCK_OUT), ``oc_nthread`` [1, 2].
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..workloads.workload import DENSE, GROUP_CONV2D, Workload
from .config import ConfigSpace

if TYPE_CHECKING:
    from ..hardware.config import HwConfig

CONV_KNOBS = ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread")
DENSE_KNOBS = ("tile_b", "tile_ci", "tile_co", "oc_nthread")
NTHREAD_VALUES = (1, 2)


def packed_axes(workload: Workload, hw: "HwConfig") -> dict[str, int]:
    """Extent of the axis each split knob tiles (after ``bind``: batch resolved, checked)."""
    w = workload.bind(hw)
    nb = w.batch // hw.batch  # type: ignore[operator]
    co = w.out_channels // hw.block_out
    if w.template == DENSE:
        return {"tile_b": nb, "tile_ci": w.in_channels // hw.block_in, "tile_co": co}
    cin = w.in_channels // w.groups if w.template == GROUP_CONV2D else w.in_channels
    return {"tile_b": nb, "tile_h": w.out_height, "tile_w": w.out_width,
            "tile_ci": cin // hw.block_in, "tile_co": co}


def space_for(workload: Workload, hw: "HwConfig") -> ConfigSpace:
    """The AutoTVM config space of ``workload``'s template on ``hw``.

    Raises ``WorkloadError`` if the workload cannot be offloaded to ``hw`` (see
    ``Workload.bind``).
    """
    axes = packed_axes(workload, hw)
    space = ConfigSpace(name=workload.name or workload.template)
    for name, length in axes.items():
        space.define_split(name, length)
    space.define_knob("oc_nthread", NTHREAD_VALUES)
    if workload.template != DENSE:
        space.define_knob("h_nthread", NTHREAD_VALUES)
    return space
