"""The float ``Graph`` of a Relax module, and a numpy executor of float graphs.

``graph_from_relax`` reads the ``main`` function of a module that ``load_model`` made (torch
``from_exported_program`` or the ONNX frontend, weights bound as constants) in two passes:

1. Every binding becomes a primitive (conv2d, matmul, add, clamp, max_pool2d, mean over H and
   W, reshape) or a constant: operations on constants only (``reshape`` / ``permute_dims`` of
   a weight, the ONNX frontend's ``isnan``/``where`` around Clip's bounds) are evaluated in
   numpy; tuples and ``TupleGetItem`` are resolved to what they hold.  An operation outside
   the table becomes an *unsupported* primitive: it is an error only if the output depends
   on it (the torch frontend's ``zeros_like`` beside a max pool is dead code).
2. The primitives that the output depends on are lowered to graph nodes:

   ====================================== ===============================================
   Relax                                  graph
   ====================================== ===============================================
   ``nn.conv2d`` (NCHW, OIHW, dilation 1) ``conv2d``
   ``add(conv/dense, constant)``          folded into the node's ``bias`` (per channel)
   ``add(a, b)`` of two computed tensors  ``add``
   ``nn.relu``, ``clip(0, 6)``,           the ``act`` of the conv2d/dense/add it follows,
   ``maximum(x, 0)``, ``minimum(x, 6)``   when that node's output has no other reader
   ``nn.max_pool2d``                      ``max_pool2d``
   ``mean`` over H, W /                   ``global_avg_pool`` (with the ``reshape`` /
   ``nn.adaptive_avg_pool2d`` to 1x1      ``flatten`` / ``squeeze`` to (N, C) after it)
   ``matmul(x, W)`` (W constant)          ``dense`` (weight ``W.T``)
   ====================================== ===============================================

   ``maximum``/``minimum`` are also recognised as ``call_tir`` of the ONNX frontend's
   ``maximum``/``minimum`` kernels (its Clip).  A ``flatten`` of an (N, C, H, W) tensor with
   H*W > 1 read by a ``matmul`` (a Linear on a flattened feature map, the toy model) becomes a
   ``conv2d`` whose kernel covers the whole map (weight ``W.T`` reshaped to (O, C, H, W), no
   padding, output (N, O, 1, 1)) followed by a ``global_avg_pool`` of its 1x1 output, which is
   the flatten (exact in float and integer arithmetic).

Every other operation, or a supported one with attributes outside the table (dilation,
asymmetric padding, ``ceil_mode``, a non-constant weight, a ReLU whose input is read twice),
raises ``ConfigurationError("model", ...)`` naming the operation and its binding.

``run_float`` executes a float graph in float64 numpy (im2col convolutions on BLAS).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .graph import Graph, Node

# ----------------------------------------------------------------------------- first pass


@dataclass(eq=False)
class _Prim:
    """One operation of ``main`` the output may depend on (first pass)."""

    kind: str  # input conv2d matmul add clamp max_pool2d mean reshape unsupported
    args: list = field(default_factory=list)   # _Prim or np.ndarray (a constant)
    attrs: dict = field(default_factory=dict)
    where: str = ""               # "binding lv12 (relax.nn.conv2d)" for messages
    shape: tuple[int, ...] = ()   # Relax output shape
    index: int = 0


_FOLD = {  # operations on constants, evaluated in numpy
    "relax.isnan": lambda a, at: np.isnan(a[0]),
    "relax.where": lambda a, at: np.where(a[0], a[1], a[2]),
    "relax.add": lambda a, at: a[0] + a[1],
    "relax.subtract": lambda a, at: a[0] - a[1],
    "relax.multiply": lambda a, at: a[0] * a[1],
    "relax.divide": lambda a, at: a[0] / a[1],
    "relax.negative": lambda a, at: -a[0],
    "relax.sqrt": lambda a, at: np.sqrt(a[0]),
    "relax.maximum": lambda a, at: np.maximum(a[0], a[1]),
    "relax.minimum": lambda a, at: np.minimum(a[0], a[1]),
    "relax.permute_dims": lambda a, at: np.transpose(
        a[0], None if at.axes is None else [int(v) for v in at.axes]),
}
_SHAPE_OPS = ("relax.reshape", "relax.flatten", "relax.squeeze", "relax.expand_dims")
_SUPPORTED = ("relax.nn.conv2d", "relax.add", "relax.nn.relu", "relax.nn.relu6", "relax.clip",
              "relax.maximum", "relax.minimum", "relax.nn.max_pool2d", "relax.mean",
              "relax.nn.adaptive_avg_pool2d", "relax.matmul", "relax.permute_dims",
              *_SHAPE_OPS)


def _shape_of(ty: Any) -> tuple[int, ...] | None:
    shape = getattr(ty, "shape", None)
    values = getattr(shape, "values", None)
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):  # symbolic dimension
        return None


def _unsupported(where: str, why: str, shape=(), args=()) -> _Prim:
    """An operation outside the table; its tensor operands are kept so that every
    unsupported operation the output depends on can be listed."""
    prims: list[_Prim] = []
    for a in args:
        for x in (a if isinstance(a, tuple) else (a,)):
            if isinstance(x, _Prim):
                prims.append(x)
    return _Prim("unsupported", prims, attrs={"why": why}, where=where, shape=shape or ())


class _Reader:
    """The first pass over ``main``."""

    def __init__(self, mod: Any):
        from ..backends.tvm.env import require_tvm

        require_tvm()
        from tvm import relax

        self.relax = relax
        self.mod = mod
        self.env: dict[Any, Any] = {}
        self.count = 0

    def value(self, expr: Any, where: str) -> Any:
        relax = self.relax
        if isinstance(expr, relax.Var):
            if expr not in self.env:
                raise ConfigurationError("model", f"{where}: reads {expr.name}, which is not "
                                                  "bound before it")
            return self.env[expr]
        if isinstance(expr, relax.Tuple):
            return tuple(self.value(f, where) for f in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            tup = self.value(expr.tuple_value, where)
            if not isinstance(tup, tuple):
                raise ConfigurationError("model", f"{where}: TupleGetItem of a non-tuple")
            return tup[int(expr.index)]
        if isinstance(expr, relax.ShapeExpr):
            return tuple(int(v) for v in expr.values)
        if isinstance(expr, relax.Call):
            return self.call(expr, f"{where}, nested")
        inner = getattr(expr, "value", None)
        if inner is not None and hasattr(inner, "numpy"):  # a constant tensor
            return inner.numpy()
        if isinstance(inner, (bool, int, float, np.number)):  # FloatImm, IntImm
            return np.asarray(inner)
        if inner is not None and hasattr(inner, "value"):  # PrimValue(FloatImm)
            return self.value(inner, where)
        raise ConfigurationError("model", f"{where}: cannot read an argument of type "
                                          f"{type(expr).__name__}")

    def read(self) -> Any:
        relax = self.relax
        try:
            func = self.mod["main"]
        except Exception:  # noqa: BLE001 - tvm raises its own error types
            raise ConfigurationError("model", "the module has no function 'main'") from None
        if not isinstance(func, relax.Function):
            raise ConfigurationError("model", "'main' is not a Relax function")
        for p in func.params:
            shape = _shape_of(p.ty)
            dtype = str(getattr(p.ty, "dtype", "?"))
            if shape is None:
                raise ConfigurationError("model", f"input {p.name!r} has no static tensor shape "
                                                  f"({p.ty}); give the model a fixed shape")
            if not dtype.startswith("float"):
                raise ConfigurationError("model", f"input {p.name!r} is {dtype}: only float "
                                                  "tensor inputs (images, features) are "
                                                  "supported")
            self.env[p] = _Prim("input", attrs={"name": str(p.name)}, where=f"input {p.name}",
                                shape=shape, index=-1)
        body = func.body
        for block in body.blocks:
            for b in block.bindings:
                self.count += 1
                if not isinstance(b, relax.VarBinding):
                    where = f"binding {b.var.name}"
                    self.env[b.var] = _unsupported(where, f"{type(b).__name__} is not supported")
                    continue
                where = f"binding {b.var.name}"
                v = b.value
                if isinstance(v, relax.Call):
                    out = self.call(v, where, _shape_of(b.var.ty))
                else:
                    out = self.value(v, where)
                if isinstance(out, _Prim) and out.index == 0:
                    out.index = self.count
                self.env[b.var] = out
        return self.value(body.body, "the function's result")

    # ------------------------------------------------------------------ one call
    def call(self, call: Any, where: str, shape: tuple[int, ...] | None = None) -> Any:
        import tvm

        op = call.op
        if isinstance(op, tvm.ir.Op):
            name = str(op.name)
        else:
            name = f"call of {getattr(op, 'name_hint', op)}"
        shape = shape or ()
        if name == "relax.call_tir":
            kname = str(getattr(call.args[0], "name_hint", "?"))
            return self.call_tir(call, f"{where} (call_tir {kname})", shape)
        where = f"{where} ({name})"
        args = [self.value(a, where) for a in call.args]
        attrs = call.attrs
        tensors = [a for a in args if isinstance(a, _Prim)]
        if not tensors and not any(isinstance(a, tuple) and any(isinstance(t, _Prim) for t in a)
                                   for a in args):
            folded = self.fold(name, args, attrs, shape)
            if folded is not None:
                return folded
            return _unsupported(where, f"{name} of constants is not supported", shape)
        if name == "relax.nn.conv2d":
            return self.conv2d(args, attrs, where, shape)
        if name == "relax.add":
            return _Prim("add", args[:2], where=where, shape=shape)
        if name in ("relax.nn.relu", "relax.nn.relu6", "relax.clip"):
            lo, hi = {"relax.nn.relu": (0.0, math.inf),
                      "relax.nn.relu6": (0.0, 6.0)}.get(name, (None, None))
            if name == "relax.clip":
                lo, hi = float(np.asarray(args[1])), float(np.asarray(args[2]))
            return _Prim("clamp", [args[0]], {"lo": lo, "hi": hi}, where, shape)
        if name in ("relax.maximum", "relax.minimum"):
            return self.min_max(name.split(".")[-1], args, where, shape)
        if name == "relax.nn.max_pool2d":
            return self.max_pool2d(args, attrs, where, shape)
        if name == "relax.mean":
            x = args[0]
            nd = len(x.shape)
            axes = sorted(int(a) % nd for a in (attrs.axis or range(nd)))
            if nd != 4 or axes != [2, 3]:
                return _unsupported(where, f"mean over axes {axes} of a {nd}-D tensor (only "
                                           "the mean over H and W of NCHW is supported)",
                                    shape, args)
            return _Prim("mean", [x], {"keepdims": bool(attrs.keepdims)}, where, shape)
        if name == "relax.nn.adaptive_avg_pool2d":
            layout = str(attrs.layout)
            if layout != "NCHW" or len(shape) != 4 or shape[2:] != (1, 1):
                return _unsupported(where, f"adaptive_avg_pool2d to {shape[2:]} in {layout} "
                                           "(only the global pool to 1x1 in NCHW)", shape, args)
            return _Prim("mean", [args[0]], {"keepdims": True}, where, shape)
        if name in _SHAPE_OPS:
            if not isinstance(args[0], _Prim) or not shape:
                return _unsupported(where, f"{name} without a static shape", shape, args)
            return _Prim("reshape", [args[0]], where=where, shape=shape)
        if name == "relax.matmul":
            x, w = args[0], args[1]
            if not isinstance(x, _Prim) or not isinstance(w, np.ndarray) or w.ndim != 2:
                return _unsupported(where, "matmul is supported as x @ W with a constant 2-D "
                                           "W (a Linear layer)", shape, args)
            return _Prim("matmul", [x, w], where=where, shape=shape)
        return _unsupported(where, f"{name} is not supported", shape, args)

    def fold(self, name: str, args: list, attrs: Any, shape) -> np.ndarray | None:
        if name in _FOLD:
            return np.asarray(_FOLD[name]([np.asarray(a) for a in args], attrs))
        if name in _SHAPE_OPS and shape:
            return np.asarray(args[0]).reshape(shape)
        return None

    def call_tir(self, call: Any, where: str, shape) -> Any:
        """The ONNX frontend's Clip: ``call_tir`` of a TIR ``maximum``/``minimum`` kernel."""
        gv = call.args[0]
        kname = str(getattr(gv, "name_hint", ""))
        base = re.sub(r"\d+$", "", kname)
        args = self.value(call.args[1], where)
        args = list(args) if isinstance(args, tuple) else [args]
        if base in ("maximum", "minimum"):
            try:
                text = self.mod[gv].script()
            except Exception:  # noqa: BLE001
                text = ""
            marker = "T.max(" if base == "maximum" else "T.min("
            blocks = [ln for ln in text.splitlines()
                      if "T.sblock(" in ln and not ln.strip().startswith("#")]
            if marker in text and len(blocks) == 1:
                return self.min_max(base, args, where, shape)
        return _unsupported(where, f"call_tir of the TIR function {kname!r} is not supported",
                            shape, args)

    def min_max(self, which: str, args: list, where: str, shape) -> Any:
        tensors = [a for a in args if isinstance(a, _Prim)]
        consts = [a for a in args if isinstance(a, np.ndarray)]
        if len(args) != 2 or len(tensors) != 1 or len(consts) != 1 or consts[0].size != 1:
            return _unsupported(where, f"{which} is supported only against a scalar constant "
                                       "(a clamp)", shape, args)
        c = float(consts[0].reshape(()))
        lo, hi = (c, math.inf) if which == "maximum" else (-math.inf, c)
        return _Prim("clamp", [tensors[0]], {"lo": lo, "hi": hi}, where, shape)

    def conv2d(self, args: list, attrs: Any, where: str, shape) -> _Prim:
        x, w = args[0], args[1]
        if not isinstance(x, _Prim) or not isinstance(w, np.ndarray) or w.ndim != 4:
            return _unsupported(where, "conv2d needs a computed input and a constant 4-D "
                                       "weight", shape, args)
        layouts = (str(attrs.data_layout), str(attrs.kernel_layout),
                   str(attrs.out_layout or attrs.data_layout))
        if layouts != ("NCHW", "OIHW", "NCHW"):
            return _unsupported(where, f"conv2d layouts {layouts} (only NCHW/OIHW/NCHW)",
                                shape, args)
        if any(int(d) != 1 for d in attrs.dilation):
            return _unsupported(where, f"conv2d dilation {tuple(attrs.dilation)} (only 1)",
                                shape, args)
        pad = _pad2(attrs.padding)
        if pad is None:
            return _unsupported(where, f"asymmetric conv2d padding {tuple(attrs.padding)}",
                                shape, args)
        stride = tuple(int(s) for s in attrs.strides)
        stride = stride * 2 if len(stride) == 1 else stride
        return _Prim("conv2d", [x, w], {"stride": stride, "pad": pad,
                                        "groups": int(attrs.groups)}, where, shape)

    def max_pool2d(self, args: list, attrs: Any, where: str, shape) -> _Prim:
        x = args[0]
        if str(attrs.layout) != "NCHW" or bool(attrs.ceil_mode) or \
                any(int(d) != 1 for d in attrs.dilation):
            return _unsupported(where, "max_pool2d supported in NCHW, without ceil_mode or "
                                       "dilation", shape, args)
        pad = _pad2(attrs.padding)
        if pad is None:
            return _unsupported(where, f"asymmetric max_pool2d padding {tuple(attrs.padding)}",
                                shape, args)
        k = tuple(int(v) for v in attrs.pool_size)
        s = tuple(int(v) for v in attrs.strides)
        return _Prim("max_pool2d", [x], {"kernel": k * (3 - len(k)), "stride": s * (3 - len(s)),
                                         "pad": pad}, where, shape)


def _pad2(padding: Any) -> tuple[int, int] | None:
    p = [int(v) for v in padding]
    if len(p) == 1:
        return p[0], p[0]
    if len(p) == 2:
        return p[0], p[1]
    if len(p) == 4 and p[0] == p[2] and p[1] == p[3]:
        return p[0], p[1]
    return None


# ---------------------------------------------------------------------------- second pass
@dataclass
class _Low:
    """A lowered primitive: the node holding its value, the node a following bias or
    activation folds into, and how Relax sees the node's tensor."""

    node: Node
    target: Node
    view: str = "t"  # t: as is; pooled: (N, C) seen as (N, C, 1, 1); flat: (N,C,H,W) as (N, CHW)


_ACT_OF = {(-math.inf, math.inf): "none", (0.0, math.inf): "relu", (0.0, 6.0): "relu6"}


class _Lowerer:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[Node] = []
        self.names: set[str] = set()
        self.counters: dict[str, int] = {}
        self.low: dict[int, _Low] = {}
        self.clamp: dict[str, tuple[float, float]] = {}  # node -> interval (becomes act)
        self.where: dict[str, str] = {}
        self.clamp_where: dict[str, str] = {}
        self.consumers: dict[int, int] = {}

    def new(self, op: str, inputs, shape, attrs=None, params=None, where="", name=None) -> Node:
        if name is None or name in self.names:
            k = self.counters.get(op, 0)
            while f"{op}_{k}" in self.names:
                k += 1
            self.counters[op] = k + 1
            name = f"{op}_{k}"
        node = Node(name, op, tuple(inputs), tuple(int(s) for s in shape), dict(attrs or {}),
                    dict(params or {}))
        self.nodes.append(node)
        self.names.add(name)
        self.where[name] = where
        return node

    def tensor(self, p: Any, user: _Prim, view: str = "t") -> _Low:
        if not isinstance(p, _Prim):
            raise ConfigurationError("model", f"{user.where}: expected a computed tensor "
                                              "operand, got a constant")
        lo = self.low[id(p)]
        if view == "t" and lo.view != "t":
            what = ("a global pool's (N, C, 1, 1) result" if lo.view == "pooled"
                    else "a flattened feature map")
            raise ConfigurationError("model", f"{user.where}: reads {what} ({p.where}); only a "
                                              "reshape to (N, C) (pool) or a matmul (flatten) "
                                              "may read it")
        return lo

    def foldable(self, p: _Prim, ops: tuple[str, ...]) -> _Low | None:
        """The lowering of ``p`` when a bias/activation may fold into its target node."""
        lo = self.low[id(p)]
        if self.consumers.get(id(p), 0) != 1 or lo.target.op not in ops:
            return None
        return lo

    def lower(self, prims: list[_Prim], out: _Prim) -> Graph:
        for p in prims:
            self.low[id(p)] = getattr(self, "_" + p.kind)(p)
        lo = self.low[id(out)]
        if lo.view != "t":
            raise ConfigurationError("model", f"the output ({out.where}) is a "
                                              f"{lo.view} view of {lo.node.name}; reshape it")
        for node in self.nodes:
            if node.op in ("conv2d", "dense", "add"):
                interval = self.clamp.get(node.name, (-math.inf, math.inf))
                act = _ACT_OF.get(interval)
                if act is None:
                    raise ConfigurationError("model", f"{self.clamp_where[node.name]}: clamp to "
                                                      f"[{interval[0]}, {interval[1]}] is neither "
                                                      "ReLU nor ReLU6")
                node.attrs["act"] = act
        return Graph(self.nodes, lo.node.name, quantized=False, name=self.name)

    # one method per primitive kind
    def _input(self, p: _Prim) -> _Low:
        n = self.new("input", (), p.shape, where=p.where, name=p.attrs["name"])
        return _Low(n, n)

    def _conv2d(self, p: _Prim) -> _Low:
        x = self.tensor(p.args[0], p)
        w = np.asarray(p.args[1], dtype=np.float32)
        groups = p.attrs["groups"]
        c = x.node.shape[1]
        if groups < 1 or c % groups or w.shape[0] % groups or w.shape[1] * groups != c:
            raise ConfigurationError("model", f"{p.where}: weight {w.shape} does not fit "
                                              f"{c} input channels in {groups} groups")
        n = self.new("conv2d", [x.node.name], p.shape,
                     {"stride": p.attrs["stride"], "pad": p.attrs["pad"], "groups": groups,
                      "act": "none"},
                     {"weight": w, "bias": np.zeros(w.shape[0], np.float32)}, p.where)
        return _Low(n, n)

    def _matmul(self, p: _Prim) -> _Low:
        x = self.tensor(p.args[0], p, view="any")
        w = np.asarray(p.args[1], dtype=np.float32)  # (I, O)
        if x.view == "flat":
            nb, c, h, wd = x.node.shape
            if w.shape[0] != c * h * wd:
                raise ConfigurationError("model", f"{p.where}: weight {w.shape} does not fit "
                                                  f"{c * h * wd} features")
            o = w.shape[1]
            conv = self.new("conv2d", [x.node.name], (nb, o, 1, 1),
                            {"stride": (1, 1), "pad": (0, 0), "groups": 1, "act": "none"},
                            {"weight": np.ascontiguousarray(w.T.reshape(o, c, h, wd)),
                             "bias": np.zeros(o, np.float32)}, p.where)
            pool = self.new("global_avg_pool", [conv.name], (nb, o), where=p.where)
            return _Low(pool, conv)
        if x.view != "t" or len(x.node.shape) != 2 or x.node.shape[1] != w.shape[0]:
            raise ConfigurationError("model", f"{p.where}: matmul of {x.node.shape} by "
                                              f"{w.shape} (a Linear on (N, I) is supported)")
        n = self.new("dense", [x.node.name], p.shape, {"act": "none"},
                     {"weight": np.ascontiguousarray(w.T),
                      "bias": np.zeros(w.shape[1], np.float32)}, p.where)
        return _Low(n, n)

    def _add(self, p: _Prim) -> _Low:
        a, b = p.args
        if isinstance(a, np.ndarray):
            a, b = b, a
        if isinstance(b, np.ndarray):  # a bias
            lo = self.foldable(a, ("conv2d", "dense"))
            if lo is None or lo.target.name in self.clamp:
                raise ConfigurationError("model", f"{p.where}: adds a constant to {a.where}, "
                                                  "which is not a conv2d/dense output read only "
                                                  "by this add (a bias that cannot be folded)")
            bias = _channel_vector(b, p.shape, lo.target.params["bias"].shape[0])
            if bias is None:
                raise ConfigurationError("model", f"{p.where}: constant of shape {b.shape} is "
                                                  "not a per-channel bias")
            lo.target.params["bias"] = (lo.target.params["bias"] + bias).astype(np.float32)
            return lo
        la, lb = self.tensor(a, p), self.tensor(b, p)
        if la.node.shape != lb.node.shape:
            raise ConfigurationError("model", f"{p.where}: add of shapes {la.node.shape} and "
                                              f"{lb.node.shape} (broadcasting is not supported)")
        n = self.new("add", [la.node.name, lb.node.name], la.node.shape, {"act": "none"},
                     where=p.where)
        return _Low(n, n)

    def _clamp(self, p: _Prim) -> _Low:
        x = p.args[0]
        lo = self.foldable(x, ("conv2d", "dense", "add"))
        if lo is None:
            src = self.low[id(x)].target
            why = ("its input is read by other operations too"
                   if self.consumers.get(id(x), 0) != 1 else
                   f"its input is a {src.op}, not a conv2d/dense/add")
            raise ConfigurationError("model", f"{p.where}: an activation that cannot be fused "
                                              f"({why}; {x.where})")
        old = self.clamp.get(lo.target.name, (-math.inf, math.inf))
        self.clamp_where[lo.target.name] = p.where
        self.clamp[lo.target.name] = (max(old[0], float(p.attrs["lo"])) + 0.0,
                                      min(old[1], float(p.attrs["hi"])) + 0.0)
        return lo

    def _max_pool2d(self, p: _Prim) -> _Low:
        x = self.tensor(p.args[0], p)
        n = self.new("max_pool2d", [x.node.name], p.shape, dict(p.attrs), where=p.where)
        return _Low(n, n)

    def _mean(self, p: _Prim) -> _Low:
        x = self.tensor(p.args[0], p)
        nb, c = x.node.shape[:2]
        n = self.new("global_avg_pool", [x.node.name], (nb, c), where=p.where)
        return _Low(n, n, "pooled" if p.attrs["keepdims"] else "t")

    def _reshape(self, p: _Prim) -> _Low:
        x = self.low[id(p.args[0])]
        shape = tuple(p.shape)
        ns = x.node.shape
        if x.view == "pooled":
            if shape == ns:
                return _Low(x.node, x.target)
            if shape == ns + (1, 1):
                return x
        elif x.view == "flat":
            if shape == (ns[0], int(np.prod(ns[1:]))):
                return x
        else:
            if shape == ns:
                return x
            if len(ns) == 4 and shape == (ns[0], ns[1] * ns[2] * ns[3]):
                if ns[2] * ns[3] == 1:  # a flatten of a 1x1 map: the identity pool
                    n = self.new("global_avg_pool", [x.node.name], shape, where=p.where)
                    return _Low(n, n)
                return _Low(x.node, x.target, "flat")
        raise ConfigurationError("model", f"{p.where}: reshape of {ns} to {shape} is not "
                                          "supported (only the flatten after a pool or before a "
                                          "Linear)")

    def _unsupported(self, p: _Prim) -> _Low:  # pragma: no cover - rejected before lowering
        raise ConfigurationError("model", f"{p.where}: {p.attrs['why']}")


def _channel_vector(b: np.ndarray, out_shape: tuple[int, ...],
                    channels: int) -> np.ndarray | None:
    """``b`` as a (channels,) vector if it broadcasts along axis 1 of ``out_shape`` only."""
    b = np.asarray(b, dtype=np.float64)
    nd = len(out_shape)
    if b.ndim > nd or nd < 2:
        return None
    full = b.reshape((1,) * (nd - b.ndim) + b.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1) or full.shape[1] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float32)


def graph_from_relax(mod: Any, name: str = "") -> Graph:
    """The float graph of the ``main`` function of a Relax module (module docstring)."""
    reader = _Reader(mod)
    out = reader.read()
    if isinstance(out, tuple):
        if len(out) != 1:
            raise ConfigurationError("model", f"the model returns {len(out)} outputs; one "
                                              "output is supported")
        out = out[0]
    if not isinstance(out, _Prim):
        raise ConfigurationError("model", "the model's output is a constant")
    # the primitives the output depends on, in binding order
    seen: dict[int, _Prim] = {}
    stack = [out]
    while stack:
        p = stack.pop()
        if id(p) in seen:
            continue
        seen[id(p)] = p
        stack.extend(a for a in p.args if isinstance(a, _Prim))
    prims = sorted(seen.values(), key=lambda p: p.index)
    bad = [p for p in prims if p.kind == "unsupported"]
    if bad:
        more = f" (and {len(bad) - 1} more: {', '.join(p.where for p in bad[1:4])}" \
               f"{'...' if len(bad) > 4 else ''})" if len(bad) > 1 else ""
        raise ConfigurationError("model", f"{bad[0].where}: {bad[0].attrs['why']}{more}; "
                                          f"supported: {', '.join(_SUPPORTED)}")
    lowerer = _Lowerer(name)
    for p in prims:
        for a in p.args:
            if isinstance(a, _Prim):
                lowerer.consumers[id(a)] = lowerer.consumers.get(id(a), 0) + 1
    lowerer.consumers[id(out)] = lowerer.consumers.get(id(out), 0) + 1
    return lowerer.lower(prims, out)


def load_graph(spec: str) -> tuple[Graph, list[np.ndarray], np.ndarray | None]:
    """``(float graph, example inputs, float framework output or None)`` of a model spec (a
    zoo name with options or an ``.onnx`` path, see ``load_model``)."""
    from ..backends.tvm.importer import load_model

    model = load_model(spec)
    return graph_from_relax(model.mod, name=model.spec), list(model.inputs), model.reference


# ------------------------------------------------------------------------------ execution
def bind_inputs(graph: Graph, x: Any, field: str = "x",
                dtype: Any = None) -> dict[str, np.ndarray]:
    """The graph's input tensors from one array (a single-input graph), a sequence (in input
    order) or a mapping by input name; the batch may differ from the graph's, the rest of
    the shape may not."""
    nodes = graph.inputs
    if isinstance(x, Mapping):
        arrays = dict(x)
    elif isinstance(x, (list, tuple)):
        if len(x) != len(nodes):
            raise ConfigurationError(field, f"{len(x)} arrays for {len(nodes)} graph inputs")
        arrays = {n.name: a for n, a in zip(nodes, x)}
    else:
        if len(nodes) != 1:
            raise ConfigurationError(field, f"the graph has {len(nodes)} inputs; pass a list")
        arrays = {nodes[0].name: x}
    out = {}
    for n in nodes:
        if n.name not in arrays:
            raise ConfigurationError(field, f"no array for the graph input {n.name!r}")
        a = np.asarray(arrays[n.name])
        if dtype is not None and a.dtype != dtype:
            raise ConfigurationError(field, f"input {n.name!r} is {a.dtype}, expected "
                                            f"{np.dtype(dtype).name}")
        if a.ndim != len(n.shape) or a.shape[1:] != tuple(n.shape[1:]):
            raise ConfigurationError(field, f"input {n.name!r} has shape {a.shape}, expected "
                                            f"(batch,) + {tuple(n.shape[1:])}")
        out[n.name] = a
    return out


def conv2d_float(x: np.ndarray, w: np.ndarray, stride=(1, 1), pad=(0, 0), groups: int = 1
                 ) -> np.ndarray:
    """NCHW x OIHW convolution in float64 by im2col and a (batched) matrix product."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    ph, pw = pad
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]  # (n, c, oh, ow, kh, kw)
    g, og = groups, o // groups
    cols = win.reshape(n, g, cg, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, g, oh * ow, cg * kh * kw)
    wm = w.reshape(g, og, cg * kh * kw).transpose(0, 2, 1)
    out = np.matmul(cols, wm)  # (n, g, oh*ow, og)
    return out.transpose(0, 1, 3, 2).reshape(n, o, oh, ow)


def max_pool2d(x: np.ndarray, kernel, stride, pad, pad_value) -> np.ndarray:
    """Max pool over NCHW windows; padding with ``pad_value`` (never the max)."""
    h, w = x.shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value) \
        if ph or pw else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw][:, :, :oh, :ow].max(axis=(4, 5))


def _act(v: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        return np.maximum(v, 0.0)
    if act == "relu6":
        return np.clip(v, 0.0, 6.0)
    return v


def run_float(graph: Graph, x: Any, *,
              keep: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Execute the float graph in float64: the output (or every node's output, ``keep``)."""
    if graph.quantized:
        raise ConfigurationError("graph", f"graph {graph.name or '?'} is quantized: run it "
                                          "with network.reference.run_int")
    vals: dict[str, np.ndarray] = {k: v.astype(np.float64)
                                   for k, v in bind_inputs(graph, x).items()}
    for n in graph.nodes:
        if n.op == "input":
            continue
        ins = [vals[i] for i in n.inputs]
        a = n.attrs
        if n.op == "conv2d":
            v = conv2d_float(ins[0], n.params["weight"], a.get("stride", (1, 1)),
                             a.get("pad", (0, 0)), int(a.get("groups", 1)))
            v = v + np.asarray(n.params["bias"], np.float64).reshape(1, -1, 1, 1)
            v = _act(v, a.get("act", "none"))
        elif n.op == "dense":
            v = ins[0] @ np.asarray(n.params["weight"], np.float64).T
            v = _act(v + np.asarray(n.params["bias"], np.float64), a.get("act", "none"))
        elif n.op == "max_pool2d":
            v = max_pool2d(ins[0], a["kernel"], a["stride"], a.get("pad", (0, 0)), -np.inf)
        elif n.op == "add":
            v = _act(ins[0] + ins[1], a.get("act", "none"))
        elif n.op == "global_avg_pool":
            v = ins[0].mean(axis=(2, 3))
        else:  # pragma: no cover - Node checks the op
            raise ConfigurationError("op", f"node {n.name!r}: no float executor for {n.op!r}")
        vals[n.name] = v
    return vals if keep else vals[graph.output]
