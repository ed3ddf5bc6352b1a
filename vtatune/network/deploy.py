"""Deploy a whole quantized network: VTA layers with tuned configurations, the rest on the CPU,
checked bit for bit against the int8 reference, with a per-layer report.

``deploy(spec_or_graph, hw=..., target=..., db=...)``:

1. load (``frontend.load_graph``) and quantize (``quantize.quantize``) a model spec such as
   ``resnet18:res=64`` — or take a ``Graph`` (quantized, or quantized here);
2. partition (``partition.py``), select every VTA layer's configuration from the records
   database (``layers.select_config``: tuned, or the default configuration as fallback) and
   compile it; a layer none of whose configurations compiles goes to the CPU, reported;
3. build the Relax module (``relax_build.py``), run it on a seeded input and compare the
   output with ``reference.run_int`` byte for byte;
4. report: where each node ran and why, each VTA layer's configuration (index, tuned or
   fallback, the record it came from) and time (tsim's simulated latency or the board's time;
   fsim has no hardware time), each CPU node's time measured on this host and a Cortex-A9
   estimate, totals, the gain of each tuned configuration over the default one (timing
   targets), and a Chrome trace of the run on request.

Cortex-A9 estimate: the only published CPU figure of VTA's flow on the PYNQ-Z1's ARM core is
TopHub's ``arm_cpu`` time of ResNet-18's first convolution (3→64, 7×7, stride 2, 224×224:
118.0 M multiply-accumulates in 107 ms, vta-spec §8.2), i.e. ``A9_OPS_PER_S`` ≈ 1.10 G
MAC/s.  Every CPU op is charged its operation count at that rate: a convolution or dense
its MACs, a pooling window or an add one operation per input element read, a layout
conversion one per element moved.  This is a first-order estimate (elementwise work is
memory-bound on the A9 and likely slower per element than a tuned convolution's MAC), not a
measurement.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, VtatuneError
from ..hardware.config import HwConfig
from ..measure.runners import runner_for
from .graph import Graph, Node, check_quantized, quantize_input
from .layers import (
    FALLBACK,
    TUNED,
    NoValidConfigError,
    VtaLayer,
    default_config,
    select_config,
    tuning_task,
)
from .partition import on_cpu, partition

log = logging.getLogger(__name__)

#: TopHub arm_cpu (PYNQ-Z1 Cortex-A9) ResNet-18 C1: 3->64, 7x7/2 at 224x224 in 107 ms
A9_REFERENCE_MACS = 112 * 112 * 64 * 3 * 7 * 7
A9_REFERENCE_S = 0.107
A9_OPS_PER_S = A9_REFERENCE_MACS / A9_REFERENCE_S
A9_METHOD = (f"operation count / {A9_OPS_PER_S / 1e9:.2f} G op/s, the rate of TopHub's "
             f"arm_cpu time of ResNet-18's first convolution on the PYNQ-Z1 Cortex-A9 "
             f"({A9_REFERENCE_MACS / 1e6:.1f} M MACs in {A9_REFERENCE_S * 1e3:.0f} ms, "
             "vta-spec §8.2); convolutions count MACs, pools/adds one op per input element, "
             "layout conversions one per element moved")


class DeployMismatchError(VtatuneError):
    """The deployed network's output is not the int8 reference's, byte for byte."""


@dataclass
class LayerReport:
    """One VTA layer of the deployed network."""

    node: str
    op: str
    workload: str
    template: str
    reason: str
    config: dict                       # ConfigChoice.to_dict()
    vta_s: float | None = None         # tsim latency / board time of the call (fsim: None)
    cycles: int | None = None
    host_s: float | None = None        # host wall time of the call (simulation included)
    default_index: int | None = None
    default_vta_s: float | None = None
    gops: float | None = None

    @property
    def gain(self) -> float | None:
        """Default configuration's time / this configuration's time."""
        if self.vta_s and self.default_vta_s:
            return self.default_vta_s / self.vta_s
        return None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["gain"] = self.gain
        return d


@dataclass
class CpuReport:
    """One CPU node, or one layout conversion, of the deployed network."""

    name: str
    op: str
    kind: str                  # "cpu" or "layout"
    layout: str
    reason: str
    ops: int                   # operation count (MACs for conv2d/dense)
    host_s: float              # measured on this host
    a9_est_s: float            # Cortex-A9 estimate (A9_METHOD)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DeployReport:
    model: str
    hw: str
    target: str
    batch: int
    seed: int
    input_shape: tuple
    output_shape: tuple
    bit_exact: bool
    mismatches: int
    max_abs_diff: int
    placements: list[dict]
    layers: list[LayerReport]
    cpu: list[CpuReport]
    host_s: float                      # wall time of the whole run here (simulators included)
    build_s: dict = field(default_factory=dict)
    float_check: dict | None = None    # float vs dequantized output, when the model gave one
    events: list = field(default_factory=list, repr=False)
    vta_time_meaning: str = ""
    host: str = ""

    # ------------------------------------------------------------------ totals
    @property
    def vta_s(self) -> float | None:
        """Total VTA time (None when the target gives no hardware time: fsim)."""
        ts = [lay.vta_s for lay in self.layers]
        return None if not ts or any(t is None for t in ts) else float(sum(ts))

    @property
    def cpu_host_s(self) -> float:
        return float(sum(c.host_s for c in self.cpu))

    @property
    def cpu_a9_est_s(self) -> float:
        return float(sum(c.a9_est_s for c in self.cpu))

    @property
    def tuned_layers(self) -> int:
        return sum(lay.config["kind"] == TUNED for lay in self.layers)

    def totals(self) -> dict:
        vta = self.vta_s
        default = [lay.default_vta_s for lay in self.layers]
        default_total = (float(sum(default)) if default and all(d is not None for d in default)
                         else None)
        return {
            "vta_s": vta,
            "vta_default_s": default_total,
            "vta_gain": (default_total / vta) if vta and default_total else None,
            "cpu_host_s": self.cpu_host_s,
            "cpu_a9_est_s": self.cpu_a9_est_s,
            "end_to_end_host_s": self.host_s,
            "end_to_end_vta_plus_host_cpu_s": None if vta is None else vta + self.cpu_host_s,
            "end_to_end_vta_plus_a9_est_s": None if vta is None else vta + self.cpu_a9_est_s,
        }

    def to_dict(self) -> dict:
        return {"model": self.model, "hw": self.hw, "target": self.target, "batch": self.batch,
                "seed": self.seed, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "bit_exact": self.bit_exact,
                "mismatches": self.mismatches, "max_abs_diff": self.max_abs_diff,
                "vta_time_meaning": self.vta_time_meaning, "cpu_host": self.host,
                "a9_method": A9_METHOD, "placements": self.placements,
                "layers": [lay.to_dict() for lay in self.layers],
                "cpu": [c.to_dict() for c in self.cpu], "totals": self.totals(),
                "build_s": self.build_s, "float_check": self.float_check}

    # ------------------------------------------------------------------ trace
    def chrome_trace(self) -> dict:
        """A ``chrome://tracing`` JSON object: the run as measured here (process 1: VTA
        layers with their VTA time — fsim: the simulator's wall time, labelled — and CPU
        segments with this host's time, one after the other as they ran) and, when the
        target gives VTA times, the modelled board run (process 2: VTA time + Cortex-A9
        estimate of the CPU segments)."""
        by_layer = {lay.node: lay for lay in self.layers}
        by_cpu = {c.name: c for c in self.cpu}
        out = [{"ph": "M", "pid": 1, "name": "process_name",
                "args": {"name": f"{self.model} on {self.target} (CPU: this host, measured)"}},
               {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "VTA"}},
               {"ph": "M", "pid": 1, "tid": 2, "name": "thread_name", "args": {"name": "CPU"}}]
        modelled = self.vta_s is not None
        if modelled:
            out += [{"ph": "M", "pid": 2, "name": "process_name",
                     "args": {"name": f"{self.model}: modelled PYNQ run (VTA time + Cortex-A9 "
                                      "estimate of the CPU part)"}},
                    {"ph": "M", "pid": 2, "tid": 1, "name": "thread_name", "args": {"name": "VTA"}},
                    {"ph": "M", "pid": 2, "tid": 2, "name": "thread_name",
                     "args": {"name": "CPU (Cortex-A9 estimate)"}}]
        t1 = t2 = 0.0
        for e in self.events:
            if e.kind == "vta":
                lay = by_layer[e.name]
                dur = lay.vta_s if lay.vta_s is not None else lay.host_s
                args = {"op": e.op, "workload": lay.workload, "config": lay.config["index"],
                        "config_kind": lay.config["kind"],
                        "time": "VTA time" if lay.vta_s is not None else
                        "host wall time of the call (the target gives no hardware time)"}
                out.append({"ph": "X", "pid": 1, "tid": 1, "name": e.name, "cat": "vta",
                            "ts": t1 * 1e6, "dur": dur * 1e6, "args": args})
                t1 += dur
                if modelled:
                    out.append({"ph": "X", "pid": 2, "tid": 1, "name": e.name, "cat": "vta",
                                "ts": t2 * 1e6, "dur": lay.vta_s * 1e6, "args": args})
                    t2 += lay.vta_s
            else:
                c = by_cpu.get(e.name)
                if c is None:
                    continue
                args = {"op": c.op, "layout": c.layout, "ops": c.ops}
                out.append({"ph": "X", "pid": 1, "tid": 2, "name": c.name, "cat": c.kind,
                            "ts": t1 * 1e6, "dur": c.host_s * 1e6, "args": args})
                t1 += c.host_s
                if modelled:
                    out.append({"ph": "X", "pid": 2, "tid": 2, "name": c.name, "cat": c.kind,
                                "ts": t2 * 1e6, "dur": c.a9_est_s * 1e6, "args": args})
                    t2 += c.a9_est_s
        return {"traceEvents": out, "displayTimeUnit": "ms",
                "otherData": {"model": self.model, "hw": self.hw, "target": self.target,
                              "a9_method": A9_METHOD}}

    def write_trace(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.chrome_trace(), f)

    # ------------------------------------------------------------------ text
    def format(self) -> str:
        def ms(v):
            return "-" if v is None else f"{v * 1e3:.3f}"
        tot = self.totals()
        lines = [f"{self.model} on {self.target} ({self.hw}), batch {self.batch}, seed {self.seed}: "
                 f"output {tuple(self.output_shape)} "
                 + ("bit-exact with the int8 reference" if self.bit_exact else
                    f"DIFFERS from the int8 reference in {self.mismatches} bytes "
                    f"(max |diff| {self.max_abs_diff})")]
        lines.append(f"VTA time: {self.vta_time_meaning}")
        lines.append("")
        lines.append(f"{'VTA layer':<22} {'workload':<34} {'config':>8} {'kind':<8} "
                     f"{'from':<8} {'VTA ms':>9} {'GOPS':>6} {'default ms':>10} {'gain':>6}")
        for lay in self.layers:
            gain = "-" if lay.gain is None else f"{lay.gain:.2f}x"
            gops = "-" if lay.gops is None else f"{lay.gops:.1f}"
            lines.append(f"{lay.node:<22} {lay.workload.split(';')[0]:<34} "
                         f"{lay.config['index']:>8} {lay.config['kind']:<8} "
                         f"{_source(lay.config.get('record')):<8} {ms(lay.vta_s):>9} "
                         f"{gops:>6} {ms(lay.default_vta_s):>10} {gain:>6}")
        if any(lay.config.get("record") and lay.config["record"]["cost_s"] is None
               for lay in self.layers):
            lines.append("(import*: an imported record whose time was withheld, applied in "
                         "log order after every timed record)")
        lines.append("")
        lines.append(f"{'CPU segment':<34} {'op':<16} {'layout':<7} {'Mops':>9} "
                     f"{'host ms':>9} {'A9 est ms':>10}")
        for c in self.cpu:
            lines.append(f"{c.name:<34} {c.op:<16} {c.layout:<7} {c.ops / 1e6:>9.3f} "
                         f"{c.host_s * 1e3:>9.3f} {c.a9_est_s * 1e3:>10.3f}")
        lines.append("")
        cpu_reasons = [p for p in self.placements
                       if p["where"] == "cpu" and p["op"] in ("conv2d", "dense")]
        for p in cpu_reasons:
            lines.append(f"on the CPU: {p['node']}: {p['reason']}")
        for p in self.placements:
            if "padded" in p:
                lines.append(f"padded: {p['node']}: {p['padded'][0]}→{p['padded'][1]} output channels")
        lines.append(f"VTA layers: {len(self.layers)} ({self.tuned_layers} tuned, "
                     f"{len(self.layers) - self.tuned_layers} fallback)")
        lines.append(f"VTA total: {ms(tot['vta_s'])} ms"
                     + ("" if tot["vta_default_s"] is None else
                        f" (default configurations: {ms(tot['vta_default_s'])} ms, "
                        f"gain {tot['vta_gain']:.2f}x; the default is the first valid "
                        "configuration, AutoTVM's untuned fallback: a weak baseline)"))
        lines.append(f"CPU total: {ms(tot['cpu_host_s'])} ms measured on this host ({self.host}); "
                     f"Cortex-A9 estimate {ms(tot['cpu_a9_est_s'])} ms")
        lines.append(f"  (A9 estimate: {A9_METHOD})")
        if tot["end_to_end_vta_plus_a9_est_s"] is not None:
            lines.append(f"end to end: VTA + A9 estimate {ms(tot['end_to_end_vta_plus_a9_est_s'])} ms; "
                         f"VTA + this host's CPU {ms(tot['end_to_end_vta_plus_host_cpu_s'])} ms")
        lines.append(f"host wall time of the run: {ms(self.host_s)} ms (simulation included); "
                     f"build: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.build_s.items()))
        if self.float_check:
            fc = self.float_check
            top1 = fc.get("top1_agreement")
            lines.append("float vs quantized (same input): "
                         + ("" if top1 is None else f"top-1 agreement {top1:.2f}, ")
                         + f"max |error| {fc['max_abs_error']:.4g} (float outputs up to "
                         f"{fc['float_max_abs']:.4g})")
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def _source(record: dict | None) -> str:
    """Where a layer's configuration came from, in a word: the record's runner kind
    (``import*``: imported without a time), or ``default``."""
    if not record:
        return "default"
    kind = (record.get("runner") or record.get("source") or "?").split("/")[0]
    return kind + ("*" if record.get("cost_s") is None else "")


def op_count(node: Node, graph: Graph) -> int:
    """Operations of a CPU node (A9 estimate): MACs of conv2d/dense, one per input element
    read of pools and adds."""
    if node.op == "conv2d":
        wt = node.params["weight"]
        n, o, oh, ow = node.shape
        return int(n * o * oh * ow * int(np.prod(wt.shape[1:])))
    if node.op == "dense":
        n, o = node.shape
        return int(n * o * node.params["weight"].shape[1])
    if node.op == "max_pool2d":
        kh, kw = node.attrs["kernel"]
        return int(np.prod(node.shape)) * int(kh) * int(kw)
    if node.op == "add":
        return 2 * int(np.prod(node.shape))
    if node.op == "global_avg_pool":
        return int(np.prod(graph.node(node.inputs[0]).shape))
    return 0


def _host_name() -> str:
    import platform
    try:
        import tvm
        cpu = tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")()
    except (ImportError, ValueError, AttributeError):  # tvm is checked where it is needed
        cpu = platform.processor() or "?"
    return f"{platform.machine()} {cpu}, LLVM-compiled Relax VM"


def _with_batch(spec: str, batch: int | None) -> str:
    if batch is None:
        return spec
    name, _, opts = spec.partition(":")
    parts = [p for p in opts.split(",") if p and not p.strip().startswith("batch=")]
    return f"{name}:{','.join(parts + [f'batch={batch}'])}"


def _single_input(g: Graph, model: str) -> None:
    if len(g.inputs) != 1:
        raise ConfigurationError("model", f"{model} has {len(g.inputs)} inputs; deploy runs "
                                          "single-input networks")


def load_quantized(spec_or_graph: Any, batch: int | None = None, calib: int = 4, seed: int = 0):
    """(quantized graph, float graph or None, model name) of a model spec or a ``Graph``
    (calibrated on ``calib`` seeded inputs; a quantized graph is taken as it is)."""
    if isinstance(spec_or_graph, Graph):
        g = spec_or_graph
        _single_input(g, g.name or "network")
        if batch is not None and g.inputs and g.inputs[0].shape[0] != batch:
            raise ConfigurationError("batch", f"graph {g.name or '?'} has batch "
                                              f"{g.inputs[0].shape[0]}, not {batch}")
        if g.quantized:
            return g, None, g.name or "network"
        from .quantize import quantize
        return quantize(g, _calibration(g, calib, seed)), g, g.name or "network"
    if not isinstance(spec_or_graph, str):
        raise ConfigurationError("model", f"expected a model spec or a Graph, got "
                                          f"{type(spec_or_graph).__name__}")
    from .frontend import load_graph
    from .quantize import quantize
    onnx = spec_or_graph.lower().endswith(".onnx")
    spec = spec_or_graph if onnx else _with_batch(spec_or_graph, batch)
    graph, example, _ = load_graph(spec)
    _single_input(graph, spec)
    if batch is not None and graph.inputs[0].shape[0] != batch:
        raise ConfigurationError("batch", f"{spec} has batch {graph.inputs[0].shape[0]}, "
                                          f"not {batch} (an ONNX model's batch is its own)")
    qg = quantize(graph, _calibration(graph, calib, seed, example))
    if not qg.name:
        qg.name = spec
    return qg, graph, spec


def _calibration(g: Graph, calib: int, seed: int, example: Any = None) -> list:
    """``calib`` seeded standard-normal inputs (the example input first, when given)."""
    shape = tuple(g.inputs[0].shape)
    rng = np.random.default_rng(seed + 1000)
    out = []
    if example is not None:
        out.append(np.asarray(example[0] if isinstance(example, (tuple, list)) else example,
                              dtype=np.float32))
    while len(out) < max(1, calib):
        out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def _float_check(float_graph: Graph | None, x: np.ndarray, q_out: np.ndarray,
                 frac: int | None) -> dict | None:
    """The float graph's output on the same input vs the dequantized deployed output."""
    if float_graph is None or frac is None:
        return None
    from .frontend import run_float
    ref = np.asarray(run_float(float_graph, x), dtype=np.float64)
    deq = q_out.astype(np.float64) * 2.0 ** -frac
    if ref.shape != deq.shape:
        return None
    out = {"max_abs_error": float(np.abs(ref - deq).max()),
           "mean_abs_error": float(np.abs(ref - deq).mean()),
           "float_max_abs": float(np.abs(ref).max())}
    if ref.ndim == 2:
        out["top1_agreement"] = float(np.mean(ref.argmax(1) == deq.argmax(1)))
    return out


# ---------------------------------------------------------------------- deploy
def deploy(spec_or_graph: Any, *, hw: HwConfig | str | None = None, target: Any = "fsim",
           db: Any = None, batch: int | None = None, calib: int = 4, seed: int = 0,
           gains: bool | None = None, trace: str | None = None,
           sync: str | None = None, profile: str | None = None) -> DeployReport:
    """Deploy a model (spec such as ``resnet18:res=64``, or a ``Graph``) on ``target``
    (``fsim``, ``tsim``, ``pynq://HOST:PORT``) and check it (module docstring).  ``db``: a
    records database or its URL (None: every layer runs the default configuration);
    ``gains``: time the default configuration of every tuned layer too (default: on timing
    targets); ``trace``: write a Chrome trace there."""
    from ..compiler.profiles import DEFAULT_PROFILE
    from ..task import DEFAULT_SYNC
    from .relax_build import build_network
    sync, profile = sync or DEFAULT_SYNC, profile or DEFAULT_PROFILE
    hw = hw if isinstance(hw, HwConfig) else HwConfig.load(hw)
    runner = runner_for(target)
    time_source, meaning = _time_source(runner)
    timing = time_source is not None
    gains = timing if gains is None else bool(gains and timing)
    opened = None
    if isinstance(db, str):
        from ..db import open_db
        db = opened = open_db(db, readonly=True)
    try:
        build_s: dict[str, float] = {}
        t0 = time.perf_counter()
        qg, float_graph, model = load_quantized(spec_or_graph, batch, calib, seed)
        check_quantized(qg)  # before anything is built from it
        build_s["load+quantize"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        placements = partition(qg, hw)
        layers: dict[str, VtaLayer] = {}
        choices = {}
        for i, p in enumerate(placements):
            if not p.on_vta:
                continue
            node = qg.node(p.node)
            task = tuning_task(p.workload, hw, sync=sync, profile=profile)
            try:
                choice = select_config(db, task, p.workload, hw, sync=sync, profile=profile)
            except NoValidConfigError as exc:
                placements[i] = on_cpu(p, f"{p.reason}; but {exc}: runs on the CPU")
                continue
            log.info("layer %s: %s config %d (%s)", p.node, choice.kind, choice.index, choice.note)
            layers[p.node] = VtaLayer(p.node, p.workload, choice.knobs, hw,
                                      node.params["weight"], node.params["bias"], target=runner,
                                      sync=sync, profile=profile, choice=choice)
            choices[p.node] = (task, choice)
        build_s["configs+compile"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        net = build_network(qg, placements, layers, hw, name=model)
        build_s["relax"] = time.perf_counter() - t0
        try:
            inp = qg.inputs[0]  # one input (load_quantized)
            xf = np.random.default_rng(seed).standard_normal(inp.shape).astype(np.float32)
            xq = quantize_input(xf, inp.frac if inp.frac is not None else 0)
            t0 = time.perf_counter()
            out, events = net.run(xq)
            host_s = time.perf_counter() - t0
        finally:
            net.close()
        from .reference import run_int
        ref = np.asarray(run_int(qg, xq))
        if ref.shape != out.shape:
            raise DeployMismatchError(f"output shape {out.shape} is not the reference's "
                                      f"{ref.shape}")
        diff = np.abs(out.astype(np.int32) - ref.astype(np.int32))
        mismatches, max_diff = int((diff != 0).sum()), int(diff.max(initial=0))
        report = _report(qg, hw, runner, model, xq, out, placements, layers, choices, events,
                         host_s, build_s, mismatches, max_diff, seed, gains, sync, profile,
                         timing, meaning)
        report.float_check = _float_check(float_graph, xf, out, qg.node(qg.output).frac)
        if trace:
            report.write_trace(trace)
        return report
    finally:
        if opened is not None:
            opened.close()


def _time_source(runner: Any) -> tuple[str | None, str]:
    """What a target's VTA time is: (``"tsim"`` / ``"pynq"`` or None when it has none, the
    sentence the report prints).  A board server's backend decides for ``pynq://``."""
    kind = getattr(runner, "kind", "")
    if kind == "fsim":
        return None, "none (fsim is a functional simulator: no hardware time)"
    if kind == "tsim":
        return "tsim", "tsim's simulated latency of each layer call (cycle model)"
    if kind == "pynq":
        infos = runner.board_infos(tolerate_unreachable=True)
        backend = next(iter(infos.values())).get("backend") or "pynq"
        if backend == "fsim":
            return None, (f"none (the board server of {runner.target} runs the fsim backend: "
                          "its times are simulator wall times, not hardware times)")
        if backend == "tsim":
            return "tsim", (f"tsim's simulated latency, from the board server of "
                            f"{runner.target} (tsim backend)")
        return "pynq", f"board time: {runner.cost_meaning}"
    return kind, f"{kind}: {getattr(runner, 'cost_meaning', '')}"


def _report(qg, hw, runner, model, xq, out, placements, layers, choices, events, host_s,
            build_s, mismatches, max_diff, seed, gains, sync, profile, timing,
            meaning) -> DeployReport:
    kind = getattr(runner, "kind", "")
    vta_events = {e.name: e for e in events if e.kind == "vta"}
    default_cache: dict = {}
    layer_reports = []
    for p in placements:
        if not p.on_vta:
            continue
        task, choice = choices[p.node]
        ev = vta_events.get(p.node)
        t = ev.timing if ev is not None else None
        rep = LayerReport(p.node, p.op, p.workload.spec, p.workload.template, p.reason,
                          choice.to_dict(), vta_s=None if t is None or not timing else t.vta_s,
                          cycles=None if t is None or not timing else t.cycles,
                          host_s=None if t is None else t.wall_s)
        if rep.vta_s:
            rep.gops = p.workload.flops / rep.vta_s / 1e9
        if gains:
            if choice.kind == FALLBACK:
                rep.default_index, rep.default_vta_s = choice.index, rep.vta_s
            else:
                key = p.workload.shape  # the timing depends on the shape and knobs only
                if key not in default_cache:
                    index, knobs = default_config(task, p.workload, hw, sync=sync, profile=profile)
                    dl = VtaLayer(p.node + "@default", p.workload, knobs, hw,
                                  qg.node(p.node).params["weight"], qg.node(p.node).params["bias"],
                                  target=runner, sync=sync, profile=profile)
                    log.info("layer %s: timing the default configuration %d", p.node, index)
                    default_cache[key] = (index, dl.time_only())
                rep.default_index, rep.default_vta_s = default_cache[key]
        layer_reports.append(rep)
    pl_by = {p.node: p for p in placements}
    cpu = []
    for e in events:
        if e.kind == "cpu":
            node = qg.node(e.name)
            ops = op_count(node, qg)
            cpu.append(CpuReport(e.name, e.op, "cpu", e.layout, pl_by[e.name].reason, ops,
                                 e.wall_s, ops / A9_OPS_PER_S))
        elif e.kind == "layout":
            tensor = e.name.split(" ")[0]
            shape = qg.node(tensor).shape
            ops = int(np.prod(shape))
            cpu.append(CpuReport(e.name, "layout", "layout", e.layout,
                                 "layout conversion at the NCHW / packed boundary (once per tensor)",
                                 ops, e.wall_s, ops / A9_OPS_PER_S))
    return DeployReport(model, hw.name, getattr(runner, "target", None) or kind, int(xq.shape[0]),
                        seed, tuple(xq.shape), tuple(out.shape), mismatches == 0, mismatches,
                        max_diff, [p.to_dict() for p in placements], layer_reports, cpu, host_s,
                        build_s, None, events, meaning, _host_name())
