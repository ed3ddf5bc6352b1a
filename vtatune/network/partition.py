"""Partitioning of a quantized graph: which node runs on VTA, which on the CPU, and why.

Every ``conv2d`` and ``dense`` node that one of VTA's templates can compute becomes a VTA
layer: a ``Workload`` with the ``requant`` epilogue (the node's bias, shift and clip, fused as
ALU instructions, vta-spec §6.8), bound to the hardware configuration.  Everything else runs
on the CPU (compiled with LLVM), each decision with a reason a user can read:

* a batch that is not a multiple of the hardware's ``BATCH``;
* input channels that are not a multiple of ``BLOCK_IN`` (ResNet's first convolution, with
  3 input channels, stays on the CPU as in VTA's own flow);
* a depthwise convolution, or a group convolution whose channels per group do not divide
  into blocks (group convolutions that fit use ``group_conv2d_packed.vta``);
* padding the template cannot express (rows unpadded, columns padded);
* pooling, residual adds and the input (no VTA template on PYNQ, vta-spec §6.7).

Output channels that are not a multiple of ``BLOCK_OUT`` (a 1000-class classifier on a
16-wide block) do not send a layer to the CPU: its weights and bias get zero rows up to the
next multiple, VTA computes the padded layer and the result is sliced ("padded 1000→1008").
The padded channels hold clip(0 >> shift) and are never read: the slice drops them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from ..workloads.workload import CONV2D, DENSE, GROUP_CONV2D, Requant, Workload, WorkloadError
from .graph import Graph, Node

VTA = "vta"
CPU = "cpu"

_CPU_ONLY = {
    "input": "the network's input (quantized on the host)",
    "max_pool2d": "max pooling has no VTA template; the CPU runs it (LLVM)",
    "add": "residual add: VTA's ALU-only add template is not available on PYNQ "
           "(vta-spec §6.7); the CPU runs it (LLVM)",
    "global_avg_pool": "global average pooling has no VTA template; the CPU runs it (LLVM)",
}


@dataclass(frozen=True)
class Placement:
    """Where one node of the quantized graph runs, and why."""

    node: str
    op: str
    where: str                       # VTA or CPU
    reason: str
    workload: Workload | None = None  # VTA: bound to hw, epilogue requant, padded channels
    out_channels: int | None = None   # conv2d / dense: the node's own output channels

    @property
    def on_vta(self) -> bool:
        return self.where == VTA

    @property
    def padded_out_channels(self) -> int | None:
        """The channel count VTA computes when the node's was padded, else None."""
        if self.workload is None or self.workload.out_channels == self.out_channels:
            return None
        return self.workload.out_channels

    def to_dict(self) -> dict:
        d = {"node": self.node, "op": self.op, "where": self.where, "reason": self.reason}
        if self.workload is not None:
            d["workload"] = self.workload.spec
            d["template"] = self.workload.template
        if self.padded_out_channels is not None:
            d["padded"] = [self.out_channels, self.padded_out_channels]
        return d


def round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _cpu(node: Node, reason: str, out_channels: int | None = None) -> Placement:
    return Placement(node.name, node.op, CPU, reason, None, out_channels)


def _requant(node: Node) -> Requant:
    a = node.attrs
    return Requant(int(a["shift"]), int(a.get("lo", -127)), int(a.get("hi", 127)))


def _place_conv2d(g: Graph, node: Node, hw: HwConfig) -> Placement:
    x = g.node(node.inputs[0])
    n, c, h, w = x.shape
    weight = node.params["weight"]
    o = int(weight.shape[0])
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    sh, sw = (int(v) for v in node.attrs.get("stride", (1, 1)))
    ph, pw = (int(v) for v in node.attrs.get("pad", (0, 0)))
    groups = int(node.attrs.get("groups", 1))
    BI, BO = hw.block_in, hw.block_out
    if n % hw.batch:
        return _cpu(node, f"batch {n} is not a multiple of the hardware BATCH {hw.batch}", o)
    if groups > 1:
        cin_g, cout_g = c // groups, o // groups
        if cin_g == 1:
            return _cpu(node, f"depthwise convolution ({groups} groups of 1 channel): the "
                              f"group_conv2d template needs channels per group in multiples "
                              f"of BLOCK_IN {BI}", o)
        if cin_g % BI or cout_g % BO:
            return _cpu(node, f"group convolution with {cin_g} input / {cout_g} output channels "
                              f"per group ({groups} groups): channels per group must be "
                              f"multiples of BLOCK_IN {BI} / BLOCK_OUT {BO}", o)
        template, o_pad = GROUP_CONV2D, o
    else:
        if c % BI:
            first = " (the first convolution stays on the CPU, as in VTA's flow)" \
                if x.op == "input" else ""
            return _cpu(node, f"{c} input channels are not a multiple of BLOCK_IN {BI}{first}", o)
        template, o_pad = CONV2D, round_up(o, BO)
    if ph == 0 and pw > 0:
        return _cpu(node, f"padding (0, {pw}): the VTA template pads only when the row "
                          "padding is non-zero", o)
    try:
        wl = Workload(template, h, w, c, o_pad, kh, kw, ph, pw, sh, sw, groups, batch=n,
                      epilogue="requant", requant=_requant(node), name=node.name).bind(hw)
    except WorkloadError as exc:
        return _cpu(node, f"not offloadable: {exc}", o)
    kind = "group convolution" if groups > 1 else "convolution"
    reason = (f"{kind} {kh}x{kw}/{sh} {c}→{o}" + (f" in {groups} groups" if groups > 1 else "")
              + f" on VTA ({template})")
    if o_pad != o:
        reason += (f"; output channels padded {o}→{o_pad} (BLOCK_OUT {BO}: zero weight rows, "
                   "result sliced)")
    return Placement(node.name, node.op, VTA, reason, wl, o)


def _place_dense(g: Graph, node: Node, hw: HwConfig) -> Placement:
    x = g.node(node.inputs[0])
    if len(x.shape) != 2:
        raise ConfigurationError("shape", f"dense node {node.name!r} reads {x.name!r} of "
                                          f"shape {tuple(x.shape)}; a dense input is (N, I)")
    n, i = x.shape
    o = int(node.params["weight"].shape[0])
    BI, BO = hw.block_in, hw.block_out
    if n % hw.batch:
        return _cpu(node, f"batch {n} is not a multiple of the hardware BATCH {hw.batch}", o)
    if i % BI:
        return _cpu(node, f"{i} input features are not a multiple of BLOCK_IN {BI}", o)
    o_pad = round_up(o, BO)
    try:
        wl = Workload(DENSE, 1, 1, i, o_pad, batch=n, epilogue="requant",
                      requant=_requant(node), name=node.name).bind(hw)
    except WorkloadError as exc:
        return _cpu(node, f"not offloadable: {exc}", o)
    reason = f"dense {i}→{o} on VTA ({DENSE})"
    if o_pad != o:
        reason += (f"; output channels padded {o}→{o_pad} (BLOCK_OUT {BO}: zero weight rows, "
                   "result sliced)")
    return Placement(node.name, node.op, VTA, reason, wl, o)


def partition(qgraph: Graph, hw: HwConfig) -> list[Placement]:
    """One ``Placement`` per node of ``qgraph`` (in graph order)."""
    if not qgraph.quantized:
        raise ConfigurationError("graph", f"graph {qgraph.name or '?'} is not quantized: "
                                          "partition the output of quantize()")
    out = []
    for node in qgraph.nodes:
        if node.op == "conv2d":
            out.append(_place_conv2d(qgraph, node, hw))
        elif node.op == "dense":
            out.append(_place_dense(qgraph, node, hw))
        else:
            out.append(_cpu(node, _CPU_ONLY[node.op]))
    return out


def on_cpu(placement: Placement, reason: str) -> Placement:
    """``placement`` moved to the CPU (e.g. no configuration of its layer compiles)."""
    return Placement(placement.node, placement.op, CPU, reason, None, placement.out_channels)


def summary(placements: list[Placement]) -> dict:
    """Counts of nodes and of conv2d/dense layers per place, and the padded layers."""
    layers = [p for p in placements if p.op in ("conv2d", "dense")]
    return {"nodes": len(placements),
            "layers": len(layers),
            "vta_layers": sum(p.on_vta for p in layers),
            "cpu_layers": [p.node for p in layers if not p.on_vta],
            "padded": {p.node: [p.out_channels, p.padded_out_channels]
                       for p in layers if p.padded_out_channels is not None}}
