"""The deployed network as one Relax module: CPU nodes as Relax integer ops, VTA layers as
calls of registered packed functions, compiled with LLVM and run in the Relax VM.

* CPU nodes implement ``graph.py``'s integer semantics with Relax ops: ``conv2d`` (int8,
  ``out_dtype`` int32) + bias, ``right_shift``, ``clip``, ``astype`` int8; ``dense`` likewise
  with ``matmul``; ``max_pool2d`` as the maximum of strided slices of the input padded with
  -128; ``add`` with ``left_shift``, the rounding term and ``right_shift``; the global
  average pool as an int32 ``sum`` and ``floor_divide``.
* VTA nodes are ``R.call_dps_packed("vtatune.network.<model>.<node>", [x], out_ty=...)`` on
  tensors in VTA's packed layouts (``NCHW{B}n{BI}c``, dense ``(N/B, I/BI, B, BI)``); the
  registered function runs the node's ``VtaLayer``.
* Layouts.  A tensor lives in the layout its producer writes (VTA: packed; the input and CPU
  convolutions: NCHW).  Pooling and residual adds are layout-agnostic: they run packed when an
  input already is, so a chain of VTA layers with adds in between never leaves the packed
  layout, and the global average pool turns the packed activation straight into the dense
  layer's packed input.  A conversion (``reshape`` + ``permute_dims``, channel padding/slicing
  when a channel count does not divide the block) is emitted at most once per tensor and
  layout (memoized), where the NCHW region and the packed region meet.
* Timing.  Each node's ops and each conversion form their own dataflow block followed by an
  impure call of a marker function that records the time; the VTA functions record their
  own start and end.  ``NetworkModule.run`` returns the output and that timeline.
"""
from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..hardware.config import HwConfig
from .graph import Graph, Node
from .layers import LayerTiming, VtaLayer
from .partition import Placement, round_up

NCHW = "nchw"
PACKED = "packed"
_LAYOUT_AGNOSTIC = ("add", "max_pool2d", "global_avg_pool")
_BUILDS = itertools.count()


@dataclass
class Event:
    """One stretch of the network's run, in host time (``time.perf_counter`` seconds)."""

    name: str                 # node name, or "<tensor> nchw→packed" for a conversion
    kind: str                 # "cpu", "layout" or "vta"
    op: str
    start: float
    end: float
    layout: str = ""
    timing: LayerTiming | None = None   # VTA events: the layer call's timing

    @property
    def wall_s(self) -> float:
        return self.end - self.start


@dataclass
class Conversion:
    """A layout conversion of one tensor, emitted once."""

    tensor: str
    src: str
    dst: str
    shape: tuple      # the logical (NCHW or (N, C)) shape
    elements: int     # elements of the packed form (padding included)


def _tensor_type(shape, dtype="int8"):
    from tvm import relax
    return relax.TensorType(tuple(int(s) for s in shape), dtype)


def packed_shape(shape: tuple, hw: HwConfig) -> tuple:
    """The packed layout of a logical NCHW / (N, C) shape (channels padded to the block)."""
    B, BL = hw.batch, hw.block_out
    if len(shape) == 4:
        n, c, h, w = shape
        return (n // B, round_up(c, BL) // BL, h, w, B, BL)
    n, c = shape
    return (n // B, round_up(c, BL) // BL, B, BL)


class NetworkModule:
    """A quantized graph built into one Relax module and a VM (see the module docstring)."""

    def __init__(self, graph: Graph, placements: list[Placement], layers: dict[str, VtaLayer],
                 hw: HwConfig, *, name: str | None = None, target: Any = None):
        if hw.block_in != hw.block_out:
            raise ConfigurationError("hw", f"{hw.name}: BLOCK_IN {hw.block_in} != BLOCK_OUT "
                                           f"{hw.block_out}: one packed layout cannot serve both")
        self.graph, self.hw = graph, hw
        self.placements = {p.node: p for p in placements}
        missing = [n.name for n in graph.nodes if n.name not in self.placements]
        if missing:
            raise ConfigurationError("placements", f"no placement for nodes {missing}")
        for node, p in self.placements.items():
            if p.on_vta and node not in layers:
                raise ConfigurationError("layers", f"VTA node {node} has no VtaLayer")
        self.layers = layers
        base = re.sub(r"[^A-Za-z0-9_]", "_", name or graph.name or "network")
        k = next(_BUILDS)
        self.model = base if k == 0 else f"{base}_{k}"
        self.prefix = f"vtatune.network.{self.model}"
        self.layout: dict[str, str] = {}          # node -> layout its output is computed in
        self.conversions: list[Conversion] = []
        self._marks: list[tuple[int, float]] = []
        self._calls: list[tuple[str, float, float, LayerTiming]] = []
        self._mark_names: dict[int, tuple[str, str, str, str]] = {}
        self._funcs: list[str] = []
        try:
            self.mod = self._build()
            self.target = target if target is not None else host_target()
            import tvm
            from tvm import relax
            t0 = time.perf_counter()
            self.executable = tvm.compile(self.mod, target=self.target)
            self.compile_s = time.perf_counter() - t0
            self.vm = relax.VirtualMachine(self.executable, tvm.cpu())
        except BaseException:
            self.close()  # the caller never gets this object: unregister here
            raise

    # ------------------------------------------------------------------ building
    def _build(self):
        from tvm import relax

        g, hw = self.graph, self.hw
        bb = relax.BlockBuilder()
        params = [relax.Var(n.name, _tensor_type(n.shape)) for n in g.inputs]
        vals: dict[tuple[str, str], Any] = {}
        self._register_marker()
        mark_ids = itertools.count()
        packable = all(n.shape[0] % hw.batch == 0 for n in g.nodes)

        def marker(value, name, kind, op, layout):
            i = next(mark_ids)
            self._mark_names[i] = (name, kind, op, layout)
            bb.emit(relax.Call(relax.ExternFunc(self.prefix + ".mark"),
                               [value, relax.prim_value(i)], ty_args=[relax.ObjectType()]))

        def get(name: str, layout: str):
            if (name, layout) in vals:
                return vals[(name, layout)]
            node = g.node(name)
            src_layout = NCHW if layout == PACKED else PACKED
            src = vals[(name, src_layout)]
            with bb.dataflow():
                if layout == PACKED:
                    out = bb.emit_output(self._to_packed(bb, src, node.shape), name_hint=f"{_safe(name)}_p")
                else:
                    out = bb.emit_output(self._to_nchw(bb, src, node.shape), name_hint=f"{_safe(name)}_n")
            marker(out, f"{name} {src_layout}→{layout}", "layout", "layout", layout)
            ps = packed_shape(node.shape, hw)
            self.conversions.append(Conversion(name, src_layout, layout, tuple(node.shape),
                                               int(np.prod(ps))))
            vals[(name, layout)] = out
            return out

        with bb.function("main", params, pure=False):
            marker(params[0], "start", "start", "start", NCHW)
            for p, n in zip(params, g.inputs):
                vals[(n.name, NCHW)] = p
                self.layout[n.name] = NCHW
            for node in g.nodes:
                if node.op == "input":
                    continue
                pl = self.placements[node.name]
                if pl.on_vta:
                    x = get(node.inputs[0], PACKED)
                    layer = self.layers[node.name]
                    fname = f"{self.prefix}.{node.name}"
                    self._register_layer(fname, node.name, layer)
                    with bb.dataflow():
                        out = bb.emit_output(relax.call_dps_packed(
                            fname, [x], out_ty=_tensor_type(layer.out_shape)), name_hint=_safe(node.name))
                    vals[(node.name, PACKED)] = out
                    self.layout[node.name] = PACKED
                    continue
                layout = NCHW
                if (packable and node.op in _LAYOUT_AGNOSTIC
                        and any(self.layout[i] == PACKED for i in node.inputs)):
                    layout = PACKED
                xs = [get(i, layout) for i in node.inputs]
                with bb.dataflow():
                    out = bb.emit_output(self._cpu_op(bb, node, xs, layout), name_hint=_safe(node.name))
                marker(out, node.name, "cpu", node.op, layout)
                vals[(node.name, layout)] = out
                self.layout[node.name] = layout
            result = get(g.output, NCHW)
            bb.emit_func_output(result)
        return bb.get()

    def _register_marker(self) -> None:
        import tvm
        marks = self._marks

        def mark(_value, i):
            marks.append((int(i), time.perf_counter()))
        name = self.prefix + ".mark"
        tvm.register_global_func(name, mark, override=True)
        self._funcs.append(name)

    def _register_layer(self, fname: str, node: str, layer: VtaLayer) -> None:
        import tvm
        calls = self._calls

        def run(x, out):
            t0 = time.perf_counter()
            y, timing = layer.run(x.numpy())
            out.copyfrom(y)
            calls.append((node, t0, time.perf_counter(), timing))
        tvm.register_global_func(fname, run, override=True)
        self._funcs.append(fname)

    # ------------------------------------------------------------------ layouts
    def _to_packed(self, bb, x, shape):
        from tvm.relax import op as O
        B, BL = self.hw.batch, self.hw.block_out
        c = shape[1]
        cp = round_up(c, BL)
        if cp != c:
            pad = [0, 0] * len(shape)
            pad[3] = cp - c
            x = bb.emit(O.nn.pad(x, pad, pad_value=0))
        if len(shape) == 4:
            n, _, h, w = shape
            x = bb.emit(O.reshape(x, (n // B, B, cp // BL, BL, h, w)))
            return O.permute_dims(x, [0, 2, 4, 5, 1, 3])
        n = shape[0]
        x = bb.emit(O.reshape(x, (n // B, B, cp // BL, BL)))
        return O.permute_dims(x, [0, 2, 1, 3])

    def _to_nchw(self, bb, x, shape):
        from tvm.relax import op as O
        BL = self.hw.block_out
        c = shape[1]
        cp = round_up(c, BL)
        if len(shape) == 4:
            n, _, h, w = shape
            x = bb.emit(O.permute_dims(x, [0, 4, 1, 5, 2, 3]))
            y = O.reshape(x, (n, cp, h, w))
        else:
            n = shape[0]
            x = bb.emit(O.permute_dims(x, [0, 2, 1, 3]))
            y = O.reshape(x, (n, cp))
        if cp != c:
            y = O.strided_slice(bb.emit(y), axes=[1], begin=[0], end=[c])
        return y

    # ------------------------------------------------------------------ CPU ops
    def _cpu_op(self, bb, node: Node, xs: list, layout: str):
        from tvm import relax
        from tvm.relax import op as O
        a = node.attrs

        def i32(v):
            return relax.const(int(v), "int32")

        def requant(v, shift, lo, hi):
            if shift:
                v = bb.emit(O.right_shift(v, i32(shift)))
            v = bb.emit(O.clip(v, relax.prim_value(int(lo)), relax.prim_value(int(hi))))
            return O.astype(v, "int8")

        if node.op == "conv2d":
            wt = np.asarray(node.params["weight"], dtype=np.int8)
            bias = np.asarray(node.params["bias"], dtype=np.int32)
            sh, sw = a.get("stride", (1, 1))
            ph, pw = a.get("pad", (0, 0))
            acc = bb.emit(O.nn.conv2d(xs[0], relax.const(wt), strides=(int(sh), int(sw)),
                                      padding=(int(ph), int(pw)), groups=int(a.get("groups", 1)),
                                      out_dtype="int32"))
            v = bb.emit(O.add(acc, relax.const(bias.reshape(1, -1, 1, 1))))
            return requant(v, a["shift"], a.get("lo", -127), a.get("hi", 127))
        if node.op == "dense":
            wt = np.asarray(node.params["weight"], dtype=np.int8)
            bias = np.asarray(node.params["bias"], dtype=np.int32)
            x32 = bb.emit(O.astype(xs[0], "int32"))
            acc = bb.emit(O.matmul(x32, relax.const(np.ascontiguousarray(wt.T).astype(np.int32))))
            v = bb.emit(O.add(acc, relax.const(bias.reshape(1, -1))))
            return requant(v, a["shift"], a.get("lo", -127), a.get("hi", 127))
        if node.op == "add":
            va = bb.emit(O.astype(xs[0], "int32"))
            vb = bb.emit(O.astype(xs[1], "int32"))
            if a.get("shift_a", 0):
                va = bb.emit(O.left_shift(va, i32(a["shift_a"])))
            if a.get("shift_b", 0):
                vb = bb.emit(O.left_shift(vb, i32(a["shift_b"])))
            v = bb.emit(O.add(va, vb))
            shift = int(a.get("shift", 0))
            if shift:
                v = bb.emit(O.add(v, i32(1 << (shift - 1))))
            return requant(v, shift, a.get("lo", -127), a.get("hi", 127))
        if node.op == "max_pool2d":
            kh, kw = (int(v) for v in a["kernel"])
            sh, sw = (int(v) for v in a.get("stride", (kh, kw)))
            ph, pw = (int(v) for v in a.get("pad", (0, 0)))
            x = xs[0]
            h, w = self.graph.node(node.inputs[0]).shape[2:4]
            oh, ow = node.shape[2], node.shape[3]
            if ph or pw:
                pad = [0, 0] * (6 if layout == PACKED else 4)
                pad[4:8] = [ph, ph, pw, pw]
                x = bb.emit(O.nn.pad(x, pad, pad_value=-128))
            best = None
            for i in range(kh):
                for j in range(kw):
                    s = bb.emit(O.strided_slice(x, axes=[2, 3], begin=[i, j],
                                                end=[i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1],
                                                strides=[sh, sw]))
                    best = s if best is None else bb.emit(O.maximum(best, s))
            return best
        if node.op == "global_avg_pool":
            h, w = self.graph.node(node.inputs[0]).shape[2:4]
            hw_ = int(h) * int(w)
            s = bb.emit(O.sum(bb.emit(O.astype(xs[0], "int32")), axis=[2, 3]))
            q = bb.emit(O.floor_divide(bb.emit(O.add(s, i32(hw_ // 2))), i32(hw_)))
            return O.astype(q, "int8")
        raise ConfigurationError("op", f"node {node.name}: no CPU lowering of {node.op!r}")

    # ------------------------------------------------------------------ running
    def run(self, *inputs: np.ndarray) -> tuple[np.ndarray, list[Event]]:
        """The network on int8 NCHW inputs: its int8 output and the timeline of the run."""
        import tvm
        if len(inputs) != len(self.graph.inputs):
            raise ConfigurationError("inputs", f"the network takes {len(self.graph.inputs)} "
                                               f"input(s), got {len(inputs)}")
        args = []
        for x, n in zip(inputs, self.graph.inputs):
            x = np.asarray(x)
            if x.dtype != np.int8 or tuple(x.shape) != tuple(n.shape):
                raise ConfigurationError("inputs", f"input {n.name}: expected int8 "
                                                   f"{tuple(n.shape)}, got {x.dtype} {x.shape}")
            args.append(tvm.runtime.tensor(np.ascontiguousarray(x)))
        self._marks.clear()
        self._calls.clear()
        out = self.vm["main"](*args).numpy()
        return out, self._timeline()

    def _timeline(self) -> list[Event]:
        items = [(t, 0, i) for i, t in self._marks] + [(c[1], 1, c) for c in self._calls]
        items.sort(key=lambda it: it[0])
        events: list[Event] = []
        prev = None
        for t, kind, payload in items:
            if kind == 0:
                name, k, op, layout = self._mark_names[payload]
                if k != "start":
                    events.append(Event(name, k, op, prev if prev is not None else t, t, layout))
                prev = t
            else:
                node, t0, t1, timing = payload
                op = self.graph.node(node).op
                events.append(Event(node, "vta", op, t0, t1, PACKED, timing))
                prev = t1
        return events

    def close(self) -> None:
        """Unregister this module's packed functions."""
        import tvm_ffi
        for name in self._funcs:
            tvm_ffi.remove_global_func(name)  # a name already gone is no error
        self._funcs.clear()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def host_target():
    """LLVM for this host's CPU (``mcpu`` from LLVM's host name, never hard-coded)."""
    import tvm
    mcpu = tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")()
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu})


def build_network(graph: Graph, placements: list[Placement], layers: dict[str, VtaLayer],
                  hw: HwConfig, *, name: str | None = None, target: Any = None) -> NetworkModule:
    """Build and compile the Relax module of ``graph`` as partitioned (``NetworkModule``)."""
    return NetworkModule(graph, placements, layers, hw, name=name, target=target)
