"""The bit-exact integer executor of a quantized graph, in numpy.

It implements the integer semantics that ``graph.py`` defines, step by step and nothing more:
the convolution's products are accumulated in int64 by ``compiler.reference.conv2d_nchw``
and then wrapped to int32 (what a 32-bit accumulator holds), the bias add wraps in int32,
shifts are arithmetic, clips are to ``lo``/``hi``.  VTA layers and the CPU (LLVM) parts of a
deployed network must reproduce its bytes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..compiler.reference import conv2d_nchw
from ..errors import ConfigurationError
from .frontend import bind_inputs
from .frontend import max_pool2d as _max_pool2d
from .graph import Graph, Node, check_quantized


def wrap32(v: np.ndarray) -> np.ndarray:
    """``v`` modulo 2**32 as int32 (two's complement), returned as int64 for further math."""
    return np.asarray(v, dtype=np.int64).astype(np.int32).astype(np.int64)


def requant(acc: np.ndarray, bias: np.ndarray, shift: int, lo: int, hi: int) -> np.ndarray:
    """The conv2d/dense epilogue: ((int32 acc + bias) wrapping) >> shift, clipped, int8.
    ``bias`` broadcasts along axis 1 (channels)."""
    a = wrap32(acc)
    shape = (1, -1) + (1,) * (a.ndim - 2)
    v = wrap32(a + np.asarray(bias, dtype=np.int64).reshape(shape))
    v = v >> int(shift)
    return np.clip(v, int(lo), int(hi)).astype(np.int8)


def _check(node: Node, names: tuple[str, ...]) -> None:
    missing = [k for k in names if k not in node.attrs]
    if missing:
        raise ConfigurationError("graph", f"node {node.name!r} ({node.op}) has no {missing} "
                                          "attributes: is the graph quantized?")
    if "shift" in names and int(node.attrs["shift"]) < 0:
        raise ConfigurationError("shift", f"node {node.name!r}: shift "
                                          f"{node.attrs['shift']} < 0")


def _conv2d(node: Node, x: np.ndarray) -> np.ndarray:
    _check(node, ("shift", "lo", "hi"))
    a, p = node.attrs, node.params
    acc = conv2d_nchw(x, np.asarray(p["weight"]), tuple(a.get("stride", (1, 1))),
                      tuple(a.get("pad", (0, 0))), int(a.get("groups", 1)))
    return requant(acc, p["bias"], a["shift"], a["lo"], a["hi"])


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    _check(node, ("shift", "lo", "hi"))
    a, p = node.attrs, node.params
    acc = x.astype(np.int64) @ np.asarray(p["weight"]).astype(np.int64).T
    return requant(acc, p["bias"], a["shift"], a["lo"], a["hi"])


def _add(node: Node, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _check(node, ("shift_a", "shift_b", "shift", "lo", "hi"))
    a = node.attrs
    shift = int(a["shift"])
    v = wrap32((x.astype(np.int64) << int(a["shift_a"])) + (y.astype(np.int64) << int(a["shift_b"])))
    v = wrap32(v + ((1 << (shift - 1)) if shift > 0 else 0)) >> shift
    return np.clip(v, int(a["lo"]), int(a["hi"])).astype(np.int8)


def _global_avg_pool(x: np.ndarray) -> np.ndarray:
    hw = x.shape[2] * x.shape[3]
    s = wrap32(x.astype(np.int64).sum(axis=(2, 3)))
    return ((s + hw // 2) // hw).astype(np.int8)  # floor division; |q| <= 127


def run_int(qgraph: Graph, q_input: Any, *,
            keep: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Execute the quantized graph on int8 input(s) (``graph.quantize_input``): the output's
    int8 tensor, or every node's (``keep``).  ``q_input`` is an array (one input), a list
    (in input order) or a dict by input name."""
    if not qgraph.quantized:
        raise ConfigurationError("graph", f"graph {qgraph.name or '?'} is not quantized: "
                                          "quantize it first (network.quantize.quantize)")
    check_quantized(qgraph)
    vals: dict[str, np.ndarray] = dict(bind_inputs(qgraph, q_input, "q_input", np.int8))
    for n in qgraph.nodes:
        if n.op == "input":
            continue
        ins = [vals[i] for i in n.inputs]
        if n.op == "conv2d":
            v = _conv2d(n, ins[0])
        elif n.op == "dense":
            v = _dense(n, ins[0])
        elif n.op == "max_pool2d":
            a = n.attrs
            v = _max_pool2d(ins[0], a["kernel"], a["stride"], a.get("pad", (0, 0)), -128)
            v = v.astype(np.int8)
        elif n.op == "add":
            v = _add(n, ins[0], ins[1])
        elif n.op == "global_avg_pool":
            v = _global_avg_pool(ins[0])
        else:  # pragma: no cover - Node checks the op
            raise ConfigurationError("op", f"node {n.name!r}: no integer executor for {n.op!r}")
        vals[n.name] = v
    return vals if keep else vals[qgraph.output]
