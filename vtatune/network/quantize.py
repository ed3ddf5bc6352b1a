"""Post-training int8 quantization of a float graph with power-of-two scales.

Every tensor gets one scale 2**-frac (per tensor, no zero point).  Calibration runs the float
graph on the calibration inputs and takes, per node, the largest |value| m over all of them:

* activations: frac = the largest integer with m * 2**frac <= 127 (an all-zero tensor gets
  ``ZERO_FRAC``: its scale is free);
* weights (per tensor): frac_w likewise from max |W|; q = clip(floor(W * 2**frac_w + 0.5),
  -127, 127);
* conv2d / dense: the accumulator has frac_in + frac_w; shift = frac_in + frac_w - frac_out,
  and when that is negative frac_out is lowered to frac_in + frac_w (shift 0: the output
  keeps every bit the accumulator has).  The int32 bias is floor(b * 2**(frac_in + frac_w) +
  0.5) plus the rounding term 2**(shift-1) (shift > 0);
* lo/hi from ``act``: lo = 0 for relu/relu6 else -127; hi = 127, or min(127, round(6 *
  2**frac_out)) for relu6;
* add: both operands are aligned to the finer scale f = max(frac_a, frac_b) (shift_a =
  f - frac_a, shift_b = f - frac_b), shift = f - frac_out (frac_out lowered to f if
  negative);
* max_pool2d and global_avg_pool keep their input's frac (the calibrated range of their
  output is not used: their integer result is in their input's scale).

``compare`` measures what the quantization costs on given inputs: top-1 agreement of the
float and the integer network (argmax over the last axis) and the error of the dequantized
output against the float output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .frontend import bind_inputs, run_float
from .graph import Graph, Node, dequantize, quantize_input

QMAX = 127
ZERO_FRAC = 7  # the frac of a tensor that is zero on every calibration input
_INT32 = (-(1 << 31), (1 << 31) - 1)


def frac_for(m: float) -> int:
    """The largest integer ``f`` with ``m * 2**f <= 127`` (``ZERO_FRAC`` for m == 0)."""
    m = float(m)
    if not math.isfinite(m) or m < 0:
        raise ConfigurationError("calibration_inputs", f"a tensor's max |value| is {m}")
    if m == 0.0:
        return ZERO_FRAC
    f = math.floor(math.log2(QMAX / m))
    while m * 2.0 ** (f + 1) <= QMAX:
        f += 1
    while m * 2.0 ** f > QMAX:
        f -= 1
    return f


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, int]:
    """``(int8 weights in [-127, 127], frac_w)`` with one power-of-two scale."""
    w = np.asarray(w, dtype=np.float64)
    m = float(np.max(np.abs(w))) if w.size else 0.0
    fw = 0 if m == 0.0 else frac_for(m)
    q = np.clip(np.floor(w * 2.0 ** fw + 0.5), -QMAX, QMAX).astype(np.int8)
    return q, fw


def act_bounds(act: str, frac: int) -> tuple[int, int]:
    """``(lo, hi)`` of the integer clip that implements ``act`` at scale 2**-frac."""
    if act == "none":
        return -QMAX, QMAX
    if act == "relu":
        return 0, QMAX
    if act == "relu6":
        return 0, min(QMAX, round(6 * 2.0 ** frac))
    raise ConfigurationError("act", f"unknown activation {act!r}")


def calibrate(graph: Graph, calibration_inputs: list[Any]) -> dict[str, float]:
    """max |value| of every node's float output over the calibration inputs."""
    if graph.quantized:
        raise ConfigurationError("graph", "the graph is already quantized")
    if not isinstance(calibration_inputs, (list, tuple)) or not calibration_inputs:
        raise ConfigurationError("calibration_inputs", "expected a non-empty list of inputs")
    peak: dict[str, float] = {}
    for x in calibration_inputs:
        vals = run_float(graph, x, keep=True)
        for name, v in vals.items():
            m = float(np.max(np.abs(v))) if v.size else 0.0
            if not math.isfinite(m):
                raise ConfigurationError("calibration_inputs", f"node {name!r} is not finite "
                                                               f"({m}) on a calibration input")
            peak[name] = max(peak.get(name, 0.0), m)
    return peak


def _bias(node: Node, b: np.ndarray, frac_acc: int, shift: int) -> np.ndarray:
    q = np.floor(np.asarray(b, dtype=np.float64) * 2.0 ** frac_acc + 0.5)
    q = q + ((1 << (shift - 1)) if shift > 0 else 0)
    if q.size and (q.min() < _INT32[0] or q.max() > _INT32[1]):
        raise ConfigurationError("calibration_inputs", f"node {node.name!r}: the bias does not "
                                                       f"fit int32 at frac {frac_acc}")
    return q.astype(np.int32)


def quantize(graph: Graph, calibration_inputs: list[Any]) -> Graph:
    """The int8 graph (``quantized=True``) of a float graph (module docstring)."""
    peak = calibrate(graph, calibration_inputs)
    frac: dict[str, int] = {}
    nodes: list[Node] = []
    for n in graph.nodes:
        attrs = dict(n.attrs)
        params: dict[str, np.ndarray] = {}
        fo = frac_for(peak[n.name])
        if n.op in ("conv2d", "dense"):
            fi = frac[n.inputs[0]]
            wq, fw = quantize_weight(n.params["weight"])
            shift = fi + fw - fo
            if shift < 0:
                fo, shift = fi + fw, 0
            act = attrs.get("act", "none")
            lo, hi = act_bounds(act, fo)
            attrs.update(act=act, shift=shift, lo=lo, hi=hi, frac_w=fw)
            params = {"weight": wq, "bias": _bias(n, n.params["bias"], fi + fw, shift)}
        elif n.op == "add":
            fa, fb = frac[n.inputs[0]], frac[n.inputs[1]]
            f = max(fa, fb)
            if f - min(fa, fb) > 23:  # 127 << 24 no longer fits int32
                raise ConfigurationError("calibration_inputs", f"node {n.name!r}: operand "
                                                               f"scales 2**-{fa} and 2**-{fb} "
                                                               "are too far apart")
            shift = f - fo
            if shift < 0:
                fo, shift = f, 0
            act = attrs.get("act", "none")
            lo, hi = act_bounds(act, fo)
            attrs.update(act=act, shift_a=f - fa, shift_b=f - fb, shift=shift, lo=lo, hi=hi)
        elif n.op in ("max_pool2d", "global_avg_pool"):
            fo = frac[n.inputs[0]]
        frac[n.name] = fo
        nodes.append(Node(n.name, n.op, n.inputs, n.shape, attrs, params, frac=fo))
    return Graph(nodes, graph.output, quantized=True, name=graph.name)


@dataclass
class QuantReport:
    """Float vs quantized network on a set of inputs."""

    inputs: int                 # arrays compared
    rows: int                   # output rows (inputs x batch) compared for top-1
    top1_agree: int             # rows whose argmax agrees
    max_abs_error: float        # max |dequantized - float| over all outputs
    rel_rms_error: float        # RMS(dequantized - float) / RMS(float)
    float_max_abs: float        # max |float output| (the scale the errors compare to)
    output_frac: int
    node_errors: dict[str, float] = field(default_factory=dict)  # rel. RMS per node

    @property
    def top1(self) -> float:
        return self.top1_agree / self.rows if self.rows else 0.0

    def worst_nodes(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.node_errors.items(), key=lambda kv: -kv[1])[:k]

    def summary(self) -> str:
        return (f"top-1 agreement {self.top1_agree}/{self.rows} ({self.top1:.0%}); output "
                f"max |error| {self.max_abs_error:.3g} (float output max |y| "
                f"{self.float_max_abs:.3g}), relative RMS error {self.rel_rms_error:.1%}; "
                f"output scale 2**-{self.output_frac}; {self.inputs} inputs")

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "rows": self.rows, "top1_agree": self.top1_agree,
                "top1": self.top1, "max_abs_error": self.max_abs_error,
                "rel_rms_error": self.rel_rms_error, "float_max_abs": self.float_max_abs,
                "output_frac": self.output_frac, "node_errors": dict(self.node_errors)}


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(v)))) if v.size else 0.0


def compare(graph: Graph, qgraph: Graph, inputs: list[Any]) -> QuantReport:
    """Run the float graph and the integer graph (inputs quantized with ``quantize_input``)
    on every input; see ``QuantReport``."""
    from .reference import run_int

    if graph.quantized or not qgraph.quantized:
        raise ConfigurationError("graph", "compare(float graph, quantized graph, inputs)")
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise ConfigurationError("inputs", "expected a non-empty list of inputs")
    if [n.name for n in graph.nodes] != [n.name for n in qgraph.nodes]:
        raise ConfigurationError("qgraph", "the quantized graph is not quantize(graph)")
    out_frac = qgraph.node(qgraph.output).frac
    diffs: dict[str, list[np.ndarray]] = {n.name: [] for n in graph.nodes}
    refs: dict[str, list[np.ndarray]] = {n.name: [] for n in graph.nodes}
    agree = rows = 0
    for x in inputs:
        xs = bind_inputs(graph, x)
        fl = run_float(graph, xs, keep=True)
        qx = {k: quantize_input(v, qgraph.node(k).frac) for k, v in xs.items()}
        qv = run_int(qgraph, qx, keep=True)
        for n in qgraph.nodes:
            d = dequantize(qv[n.name], n.frac)
            diffs[n.name].append((d - fl[n.name]).ravel())
            refs[n.name].append(fl[n.name].ravel())
        f_out = fl[graph.output]
        q_out = qv[qgraph.output]
        agree += int(np.sum(np.argmax(f_out, axis=-1) == np.argmax(q_out, axis=-1)))
        rows += int(np.prod(f_out.shape[:-1])) if f_out.ndim > 1 else 1
    node_errors = {}
    for name, parts in diffs.items():
        d, r = np.concatenate(parts), np.concatenate(refs[name])
        node_errors[name] = _rms(d) / _rms(r) if _rms(r) > 0 else _rms(d)
    d_out = np.concatenate(diffs[graph.output])
    r_out = np.concatenate(refs[graph.output])
    return QuantReport(inputs=len(inputs), rows=rows, top1_agree=agree,
                       max_abs_error=float(np.max(np.abs(d_out))),
                       rel_rms_error=node_errors[graph.output],
                       float_max_abs=float(np.max(np.abs(r_out))), output_frac=int(out_frac),
                       node_errors=node_errors)
