"""The network graph that vtatune quantizes, partitions and deploys.

A ``Graph`` is a list of ``Node`` in topological order (every input of a node comes earlier)
and the name of the output node.  Tensors are NCHW (images) or (N, features); every node has
one output whose shape is ``Node.shape``.  The same classes hold the float graph that the
frontend reads from a Relax module (``quantized=False``) and the integer graph that the
quantizer makes of it (``quantized=True``).

Float ops (``params`` float32):

============== ======== =============================================================
op             inputs   attrs / params
============== ======== =============================================================
input          -        (the network's input; ``shape``)
conv2d         x        stride (sh, sw), pad (ph, pw), groups, act; weight (O, I/g, KH, KW), bias (O,)
dense          x (N, I) act; weight (O, I), bias (O,)
max_pool2d     x        kernel (kh, kw), stride (sh, sw), pad (ph, pw) (padding never wins)
add            a, b     act
global_avg_pool x       mean over H and W -> (N, C) (the flatten included)
============== ======== =============================================================

``act`` is ``"none"``, ``"relu"`` or ``"relu6"`` (a following ReLU/ReLU6/clip(0, 6) fused in).

Integer semantics (quantized graph) — the one definition that ``reference.py`` implements in
numpy and the deployed module implements with VTA and LLVM; both must match it bit for bit.
Every tensor is int8 with a power-of-two scale: real value = q * 2**-frac (``Node.frac``).

* ``input``: the caller quantizes: q = clip(floor(x * 2**frac + 0.5), -127, 127)
  (``quantize_input``).
* ``conv2d`` / ``dense``: params weight int8, bias int32; attrs shift >= 0, lo, hi.
  acc = sum of int8 * int8 products in int32; v = acc + bias (int32, wrapping);
  v = v >> shift (arithmetic); q = clip(v, lo, hi) as int8.  (lo = 0 when act is relu or
  relu6, else -127; hi = 127, or min(127, round(6 * 2**frac)) for relu6.  The bias carries
  the rounding term 2**(shift-1).)  This is VTA's epilogue ``requant`` (``Requant(shift,
  lo, hi)``), so a layer on VTA and the same layer on the CPU give the same bytes.
* ``max_pool2d``: max over the window; padding is never the max (pad value -128); frac kept.
* ``add``: attrs shift_a, shift_b, shift, lo, hi: v = (a << shift_a) + (b << shift_b) in
  int32; v = (v + (2**(shift-1) if shift > 0 else 0)) >> shift; q = clip(v, lo, hi).
* ``global_avg_pool``: s = sum over H, W in int32; q = floor((s + HW // 2) / HW) with HW =
  H * W (floor division; |q| <= 127 holds); frac kept.

The output of the network is the output node's int8 tensor; ``dequantize`` gives reals.

Ranges (``check_quantized``): every ``shift`` is in 0..31 (an int32 shift), ``shift_a`` and
``shift_b`` in 0..23 (an int8 shifted left stays inside int32), lo <= hi within int8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError

OPS = ("input", "conv2d", "dense", "max_pool2d", "add", "global_avg_pool")
ACTS = ("none", "relu", "relu6")


@dataclass
class Node:
    name: str
    op: str
    inputs: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    frac: int | None = None  # quantized graph: the output's scale exponent

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigurationError("op", f"node {self.name!r}: unknown op {self.op!r}; "
                                           f"known: {', '.join(OPS)}")


@dataclass
class Graph:
    nodes: list[Node]
    output: str
    quantized: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for n in self.nodes:
            if n.name in seen:
                raise ConfigurationError("nodes", f"two nodes are named {n.name!r}")
            missing = [i for i in n.inputs if i not in seen]
            if missing:
                raise ConfigurationError("nodes", f"node {n.name!r} reads {missing} before "
                                                  "they are computed (not in topological order)")
            seen.add(n.name)
        if self.output not in seen:
            raise ConfigurationError("output", f"no node named {self.output!r}")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "input"]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]


def quantize_input(x: np.ndarray, frac: int) -> np.ndarray:
    """A float input as the quantized graph's int8 input (module docstring)."""
    q = np.floor(np.asarray(x, dtype=np.float64) * 2.0 ** frac + 0.5)
    return np.clip(q, -127, 127).astype(np.int8)


def dequantize(q: np.ndarray, frac: int) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * 2.0 ** -frac


#: attribute -> (lowest, highest) value a quantized graph may hold (module docstring)
_RANGES = {"shift": (0, 31), "shift_a": (0, 23), "shift_b": (0, 23),
           "lo": (-128, 127), "hi": (-128, 127)}


def check_quantized(graph: Graph) -> None:
    """Refuse a quantized graph whose integer attributes leave their ranges (the field is
    the attribute's name), so neither the reference nor the deployed module meets them."""
    if not graph.quantized:
        raise ConfigurationError("graph", f"graph {graph.name or '?'} is not quantized")
    for n in graph.nodes:
        for key, (lo, hi) in _RANGES.items():
            if key not in n.attrs:
                continue
            v = n.attrs[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ConfigurationError(key, f"node {n.name!r} ({n.op}): {key} = {v!r} is "
                                              f"outside {lo}..{hi}")
        if "lo" in n.attrs and "hi" in n.attrs and n.attrs["lo"] > n.attrs["hi"]:
            raise ConfigurationError("lo", f"node {n.name!r}: lo {n.attrs['lo']} > hi "
                                           f"{n.attrs['hi']}")
