"""Pruner's draft-then-verify search (Qiao et al., ASPLOS 2025) on MetaSchedule, for llvm and
(up to measurement, without a GPU here) cuda.

Two parts (docs/pruner.md):

* **Draft model** (``draft_latency``): a symbol-based analytic latency of a scheduled TIR
  PrimFunc, the CPU analogue of Pruner's PSA.  Per buffer store (one per leaf block), from the
  loop nest alone (no features learned, nothing fitted per task):
  compute time = FLOPs x reuse penalty x register penalty / (peak per core x effective cores x
  vector-lane use), memory time = estimated DRAM bytes / measured bandwidth, and the program's
  latency is the sum over stores of max(compute, memory).  ``HostParams`` (peak FLOP/s per core,
  DRAM bandwidth, vector width, vector registers, L2 size) are measured on the host once by a
  tiny micro-benchmark and cached.
* **GPU draft model** (cuda targets; docs/pruner-cuda.md): PSA's GPU formulas
  (``gpu_store_terms``, ``gpu_draft_latency``) over thread-bound TIR (blockIdx / threadIdx /
  vthread loops, shared and local scopes), with ``GpuParams`` from a datasheet table keyed by
  CUDA arch (``GPU_TABLE``, ``gpu_params``); the target's own limits take precedence.
  ``draft_latency``, ``store_latency``, ``DraftCostModel`` and ``PrunerSearch`` dispatch on the
  parameter type (``GpuParams`` for a cuda target); the llvm path is unchanged.
* **Draft-then-verify search** (``PrunerSearch``, a ``PySearchStrategy``): every
  ``refresh`` (2) rounds an inner MetaSchedule ``EvolutionarySearch`` scored by the draft model
  (``DraftCostModel``; 2 GA generations) drafts ``draft_size`` (512) candidates, its own
  ε-greedy share of random samples included; each round the learned model (the cost model the
  task scheduler passes: MetaSchedule's XGB) scores only the unmeasured drafted candidates and
  the best ``batch`` are measured, with an ε-greedy share (0.1) drawn at random from the pool.
  ``learned_calls`` lists, per round, how many candidates the learned model scored.

``CountingCostModel`` wraps any cost model and counts its predictions per round, so the stock
evolutionary search's learned-model calls can be compared.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .env import require_tvm

tvm = require_tvm()
import tvm_ffi
from tvm import tirx
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir import stmt as sstmt

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- host parameters
@dataclass
class HostParams:
    """What the draft model knows of the machine.  ``peak_flops`` is per core, fp32, with full
    vector lanes; ``vector_bits`` and ``vector_regs`` come from the ISA (AVX-512: 512, 32)."""
    peak_flops: float = 50e9
    dram_bw: float = 10e9
    vector_bits: int = 256
    vector_regs: int = 16
    l2_bytes: int = 1 << 20
    cores: int = 1
    cpu: str = ""

    def lanes(self, bits: int) -> int:
        return max(1, self.vector_bits // max(1, bits))


def _cpu_flags() -> set:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _l2_bytes() -> int:
    base = pathlib.Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in sorted(base.glob("index*")):
            if (idx / "level").read_text().strip() == "2":
                text = (idx / "size").read_text().strip().upper()
                mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
                return int(text.rstrip("KMB")) * mult
    except (OSError, ValueError):
        pass
    return 1 << 20


def measure_host(cores: int | None = None) -> HostParams:
    """Micro-benchmarks (about 1 s): fp32 matrix product (numpy's BLAS on all cores; best of
    5, divided by the cores) for the peak, a 64 MiB copy (bytes read + written, best of 5) for
    the bandwidth; ISA width and registers from the CPU flags, L2 size from sysfs."""
    cores = int(cores or os.cpu_count() or 1)
    n = 512
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    peak = 2.0 * n ** 3 / best / cores
    src = np.ones(8 << 20)           # 64 MiB of float64
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    bw = 2.0 * src.nbytes / best
    flags = _cpu_flags()
    bits = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    regs = 32 if bits == 512 else 16
    cpu = ""
    try:
        cpu = str(tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")())
    except Exception as exc:  # noqa: BLE001
        log.debug("no LLVM host CPU name: %s", exc)
    return HostParams(peak_flops=peak, dram_bw=bw, vector_bits=bits, vector_regs=regs,
                      l2_bytes=_l2_bytes(), cores=cores, cpu=cpu)


def _cache_path() -> pathlib.Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "vtatune" / "pruner-host.json"


def host_params(cores: int | None = None, *, refresh: bool = False) -> HostParams:
    """The host's parameters, measured once and cached in ``~/.cache/vtatune/pruner-host.json``
    (``cores`` overrides the cached core count, e.g. a target's ``num-cores``)."""
    path = _cache_path()
    hp = None
    if not refresh and path.exists():
        try:
            hp = HostParams(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            hp = None
    if hp is None:
        hp = measure_host()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(hp), indent=1))
        except OSError:
            pass
    if cores:
        hp = HostParams(**{**asdict(hp), "cores": int(cores)})
    return hp


# ----------------------------------------------------------------------------- TIR analysis
@dataclass
class Loop:
    key: int                 # the loop variable's handle
    extent: int
    kind: str                # serial, parallel, vectorized, unrolled, thread
    unroll: int = 0          # pragma_auto_unroll_max_step annotation
    tag: str = ""            # thread loops: blockIdx.x, threadIdx.y, vthread.x, ...


@dataclass
class Access:
    buffer: str
    bits: int
    size: int                # elements of the whole buffer
    loops: frozenset         # keys of the loops its indices depend on
    last: frozenset          # keys of the loops its last index depends on
    scope: str = "global"    # storage scope: global, shared, local, ...
    #: GPU stores only: loop key -> step of the flattened (row-major) element address when
    #: that loop's variable goes from 0 to 1, every other variable 0
    strides: dict = field(default_factory=dict)


@dataclass
class StoreFeature:
    """One buffer store (a leaf block's statement): what the draft model reads."""
    loops: list
    ops: int
    write: Access
    reads: list
    reduce: frozenset = field(default_factory=frozenset)


_ARITH = tuple(getattr(tirx, n) for n in ("Add", "Sub", "Mul", "Div", "Mod", "FloorDiv",
                                          "FloorMod", "Min", "Max") if hasattr(tirx, n))
#: tvm 0.27: ``tirx.BufferLoad`` is a constructor function returning an ``ir.TensorLoad``
_LOAD = getattr(tvm.ir, "TensorLoad", None) or tirx.BufferLoad


def _load_buffer(ld: Any) -> Any:
    return ld.source if hasattr(ld, "source") else ld.buffer


_KINDS = {int(tirx.ForKind.PARALLEL): "parallel", int(tirx.ForKind.VECTORIZED): "vectorized",
          int(tirx.ForKind.UNROLLED): "unrolled", int(tirx.ForKind.THREAD_BINDING): "thread"}


def _int(e: Any, default: int = 1) -> int:
    return int(e.value) if isinstance(e, tirx.IntImm) else default


def _vars(e: Any) -> list:
    return list(tirx.analysis.undefined_vars(e))


def _scope(buf: Any) -> str:
    try:
        return str(buf.scope()) or "global"
    except Exception:  # noqa: BLE001
        return "global"


class _NotAffine(Exception):
    pass


def _eval(e: Any, env: dict, exprs: dict) -> int:
    """Integer value of an index expression: loop variables from ``env`` (absent = 0), block
    iter vars through their bindings."""
    if isinstance(e, tirx.IntImm):
        return int(e.value)
    if isinstance(e, tirx.Var):
        k = e.__chandle__()
        if k in env:
            return env[k]
        b = exprs.get(k)
        return _eval(b, env, exprs) if b is not None else 0
    if isinstance(e, tirx.Cast):
        return _eval(e.value, env, exprs)
    if isinstance(e, _ARITH):
        a, b = _eval(e.a, env, exprs), _eval(e.b, env, exprs)
        if isinstance(e, tirx.Add):
            return a + b
        if isinstance(e, tirx.Sub):
            return a - b
        if isinstance(e, tirx.Mul):
            return a * b
        if isinstance(e, tirx.Min):
            return min(a, b)
        if isinstance(e, tirx.Max):
            return max(a, b)
        if b == 0:
            return 0
        if isinstance(e, tirx.FloorDiv):
            return a // b
        if isinstance(e, tirx.FloorMod):
            return a % b
        if isinstance(e, tirx.Div):
            return int(a / b)
        if isinstance(e, tirx.Mod):
            return int(math.fmod(a, b))
    raise _NotAffine(type(e).__name__)


class _Analyzer:
    def __init__(self) -> None:
        self.stores: list[StoreFeature] = []
        self.exprs: dict = {}           # block iter var -> its binding expression

    def stmt(self, s: Any, loops: list, bind: dict, reduce: frozenset) -> None:
        if isinstance(s, tirx.For):
            ann = s.annotations
            unroll = _int(ann["pragma_auto_unroll_max_step"], 0) \
                if "pragma_auto_unroll_max_step" in ann else 0
            tb = s.thread_binding
            loop = Loop(s.loop_var.__chandle__(), max(1, _int(s.extent, 16)),
                        _KINDS.get(int(s.kind), "serial"), unroll,
                        str(tb.thread_tag) if tb is not None else "")
            self.stmt(s.body, loops + [loop], bind, reduce)
        elif isinstance(s, sstmt.SBlockRealize):
            blk = s.block
            bind = dict(bind)
            red = set(reduce)
            for iv, val in zip(blk.iter_vars, s.iter_values):
                keys = set()
                for v in _vars(val):
                    k = v.__chandle__()
                    keys |= bind.get(k, {k})
                bind[iv.var.__chandle__()] = frozenset(keys)
                self.exprs[iv.var.__chandle__()] = val
                if int(iv.iter_type) == 2:      # CommReduce
                    red |= keys
            self.stmt(blk.body, loops, bind, frozenset(red))
        elif isinstance(s, tirx.SeqStmt):
            for c in s.seq:
                self.stmt(c, loops, bind, reduce)
        elif isinstance(s, tirx.BufferStore):
            self.stores.append(self.store(s, loops, bind, reduce))
        elif isinstance(s, tirx.IfThenElse):
            self.stmt(s.then_case, loops, bind, reduce)
            if s.else_case is not None:
                self.stmt(s.else_case, loops, bind, reduce)
        elif hasattr(s, "body"):        # LetStmt, AttrStmt, DeclBuffer, AllocBuffer, ...
            self.stmt(s.body, loops, bind, reduce)

    def access(self, buf: Any, indices: list, bind: dict, loops: list | None = None) -> Access:
        def keys(exprs: list) -> frozenset:
            out = set()
            for e in exprs:
                for v in _vars(e):
                    k = v.__chandle__()
                    out |= bind.get(k, {k})
            return frozenset(out)
        size = 1
        for d in buf.shape:
            size *= _int(d, 64)
        acc = Access(str(buf.name), int(tvm.runtime.DataType(str(buf.dtype)).bits), size,
                     keys(list(indices)), keys(list(indices)[-1:]), _scope(buf))
        if loops and any(lp.kind == "thread" for lp in loops):     # GPU code: address steps
            shape = [_int(d, 64) for d in buf.shape]
            mults = [_prod(shape[i + 1:]) for i in range(len(shape))]

            def addr(env: dict) -> int:
                return sum(_eval(e, env, self.exprs) * m for e, m in zip(indices, mults))
            try:
                base = addr({})
                acc.strides = {lp.key: addr({lp.key: 1}) - base for lp in loops
                               if lp.key in acc.loops}
            except _NotAffine:
                acc.strides = {}
        return acc

    def store(self, s: Any, loops: list, bind: dict, reduce: frozenset) -> StoreFeature:
        loads: list = []
        ops = [0]

        def expr(e: Any) -> None:
            if isinstance(e, _LOAD):
                loads.append(e)
                return                      # index arithmetic is not compute
            if isinstance(e, _ARITH):
                ops[0] += 1
                expr(e.a)
                expr(e.b)
            elif isinstance(e, tirx.Cast):
                expr(e.value)
            elif isinstance(e, tirx.Select):
                expr(e.true_value)
                expr(e.false_value)
            elif isinstance(e, tvm.ir.Call):
                ops[0] += 1
                for a in e.args:
                    expr(a)
        expr(s.value)
        live = {lp.key for lp in loops}
        return StoreFeature(loops=loops, ops=ops[0],
                            write=self.access(s.buffer, s.indices, bind, loops),
                            reads=[self.access(_load_buffer(ld), ld.indices, bind, loops)
                                   for ld in loads],
                            reduce=frozenset(k for k in reduce if k in live))


def analyze(func: Any) -> list[StoreFeature]:
    """The store features of a PrimFunc (or of the ``main``/only function of an IRModule)."""
    if isinstance(func, tvm.IRModule):
        funcs = [f for _, f in func.functions.items() if isinstance(f, tirx.PrimFunc)]
        func = funcs[0]
    a = _Analyzer()
    a.stmt(func.body, [], {}, frozenset())
    return a.stores


def _prod(xs: Any) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def store_latency(f: StoreFeature, hp: HostParams | GpuParams) -> tuple[float, float]:
    """(compute seconds, memory seconds) of one store (the GPU model's for ``GpuParams``)."""
    if isinstance(hp, GpuParams):
        terms = gpu_store_terms(f, hp)
        return terms.compute, terms.memory
    loops = f.loops
    iters = _prod(lp.extent for lp in loops)
    flops = iters * max(1, f.ops)
    lanes = hp.lanes(f.write.bits)
    # thread imbalance: parallel iterations spread over the cores
    par = _prod(lp.extent for lp in loops if lp.kind == "parallel")
    cores = min(hp.cores, par / math.ceil(par / hp.cores)) if par > 1 else 1.0
    # vector-lane use: an innermost vectorized loop fills extent/ceil(extent/lanes)/lanes of
    # the lanes; a gather (vector loop not in an access's last index) halves it; scalar = 1/lanes
    inner = loops[-1] if loops else None
    if inner is not None and inner.kind == "vectorized":
        v = inner.extent
        lane_use = v / (math.ceil(v / lanes) * lanes)
        for acc in [f.write] + f.reads:
            if inner.key in acc.loops and inner.key not in acc.last:
                lane_use *= 0.5
    else:
        lane_use = 1.0 / lanes
    # register tile: the loops inside the innermost reduction loop (for a reduction), else
    # the innermost loop
    red_depth = max((i for i, lp in enumerate(loops) if lp.key in f.reduce), default=None)
    region = loops[red_depth + 1:] if red_depth is not None else loops[-1:]
    vec = inner.kind == "vectorized" if inner is not None else False

    def in_region(acc: Access, also: frozenset | None = None) -> int:
        return _prod(lp.extent for lp in region
                     if lp.key in acc.loops and (also is None or lp.key in also))
    w_elems = in_region(f.write)
    regs = math.ceil(w_elems / (lanes if vec else 1))
    reads = [r for r in f.reads if r.buffer != f.write.buffer]
    for r in reads:
        regs += math.ceil(in_region(r, f.write.loops) / (lanes if vec else 1))
    reg_penalty = max(1.0, regs / hp.vector_regs)
    # data reuse inside the register tile: loads per arithmetic vector instruction
    tile_iters = _prod(lp.extent for lp in region)
    arith = tile_iters * max(1, f.ops) / (lanes if vec else 1)
    loads = sum(math.ceil(in_region(r) / (lanes if vec and inner.key in r.last else 1))
                for r in reads)
    if red_depth is None:
        loads += math.ceil(w_elems / (lanes if vec else 1))     # stores each iteration
    reuse_penalty = 1.0 + loads / max(1.0, arith)
    # explicit unrolling of a small inner tile removes loop overhead
    unroll = max((lp.unroll for lp in loops), default=0)
    overhead = 1.0 if (unroll and tile_iters <= unroll) or tile_iters >= 8 else 1.25
    compute = flops * reuse_penalty * reg_penalty * overhead / (hp.peak_flops * cores * lane_use)
    # DRAM traffic: the tile of the outermost loop level whose footprint fits in L2, reloaded
    # for every iteration of the loops outside it
    accs = {}
    for acc in [f.write] + f.reads:
        accs.setdefault(acc.buffer, acc)
    traffic = None
    for depth in range(len(loops) + 1):
        inside = loops[depth:]
        fp = sum(min(acc.size, _prod(lp.extent for lp in inside if lp.key in acc.loops))
                 * acc.bits / 8 for acc in accs.values())
        if fp <= hp.l2_bytes or depth == len(loops):
            traffic = fp * _prod(lp.extent for lp in loops[:depth])
            break
    memory = traffic / hp.dram_bw
    return compute, memory


def draft_latency(func: Any, hp: HostParams | GpuParams) -> float:
    """The draft model's latency estimate (seconds) of a scheduled PrimFunc or IRModule: the
    CPU model for ``HostParams``, the GPU one (``gpu_draft_latency``) for ``GpuParams``."""
    if isinstance(hp, GpuParams):
        return gpu_draft_latency(func, hp)
    stores = analyze(func)
    if not stores:
        return math.inf
    return sum(max(store_latency(f, hp)) for f in stores)


# ----------------------------------------------------------------------------- GPU (CUDA)
#: Vendor datasheet values per CUDA arch (one representative board each; nothing measured).
#: peak_flops: FP32 FLOP/s without tensor cores, at boost clock (CUDA cores x 2 x clock);
#: dram_bw: bytes/s; shared memory and registers per SM, L2: the architecture whitepapers /
#: the CUDA C++ Programming Guide's compute-capability table.  docs/pruner-cuda.md lists the
#: sources.  PSA's own table (Pruner's ``psamodel_params``) has A100-40GB 19490 GFLOP/s,
#: 1555 GB/s, 108 SMs; T4 8141/320/40; TITAN V 14900/651/80.
GPU_TABLE: dict = {
    "sm_70": {"name": "TITAN V", "sms": 80, "peak_flops": 14.9e12, "dram_bw": 652.8e9,
              "shared_memory_per_sm": 96 << 10, "l2_bytes": 4608 << 10},
    "sm_75": {"name": "Tesla T4", "sms": 40, "peak_flops": 8.1e12, "dram_bw": 320e9,
              "shared_memory_per_sm": 64 << 10, "l2_bytes": 4 << 20},
    "sm_80": {"name": "A100-SXM4-40GB", "sms": 108, "peak_flops": 19.5e12, "dram_bw": 1555e9,
              "shared_memory_per_sm": 164 << 10, "l2_bytes": 40 << 20},
    "sm_86": {"name": "GeForce RTX 3090", "sms": 82, "peak_flops": 35.6e12, "dram_bw": 936e9,
              "shared_memory_per_sm": 100 << 10, "l2_bytes": 6 << 20},
}


@dataclass
class GpuParams:
    """What the GPU draft model knows of the device.  Defaults: A100-SXM4-40GB (sm_80).
    Used by the formulas: ``sms``, ``peak_flops``, ``dram_bw``, ``warp_size``,
    ``sm_partitions`` (4 warp schedulers per SM), ``active_blocks_per_sm`` (1) and
    ``register_cap`` (128) -- the last three are PSA's constants -- and ``sector_bytes``
    (coalescing); ``max_threads_per_block`` and ``max_shared_memory_per_block`` (the 48 KiB of
    static shared memory every arch gives without opt-in) reject kernels the device cannot
    launch.  ``shared_memory_per_sm``, ``registers_per_sm`` and ``l2_bytes`` are recorded but
    not used (PSA models neither occupancy limits nor the L2)."""
    name: str = "A100-SXM4-40GB"
    arch: str = "sm_80"
    sms: int = 108
    peak_flops: float = 19.5e12
    dram_bw: float = 1555e9
    warp_size: int = 32
    max_threads_per_block: int = 1024
    max_shared_memory_per_block: int = 48 << 10
    shared_memory_per_sm: int = 164 << 10
    registers_per_sm: int = 65536
    l2_bytes: int = 40 << 20
    sm_partitions: int = 4
    active_blocks_per_sm: int = 1
    register_cap: int = 128
    sector_bytes: int = 32


def _arch_number(arch: str) -> int:
    digits = "".join(ch for ch in str(arch) if ch.isdigit())
    return int(digits) if digits else 0


def gpu_params(target: Any = None, *, arch: str | None = None, **overrides: Any) -> GpuParams:
    """The datasheet row of the target's CUDA arch (``arch`` if given, else the target's
    ``arch`` attribute, else sm_80; an arch not in ``GPU_TABLE`` takes the nearest lower row),
    then the target's own ``max_threads_per_block`` (or ``max_num_threads``),
    ``max_shared_memory_per_block``, ``thread_warp_size`` and ``l2_cache_size_bytes``, then
    ``overrides``."""
    attrs: dict = {}
    if target is not None:
        try:
            attrs = dict(target.attrs)
        except Exception:  # noqa: BLE001
            attrs = {}
    want = str(arch or attrs.get("arch") or "sm_80")
    row_arch = want
    if want not in GPU_TABLE:
        lower = [a for a in GPU_TABLE if _arch_number(a) <= _arch_number(want)]
        row_arch = max(lower, key=_arch_number) if lower else "sm_80"
    row = dict(GPU_TABLE[row_arch])
    if row_arch != want:
        row["name"] = f"{row['name']} (the {row_arch} row, for {want})"
    gp = GpuParams(arch=want, **row)
    for field_name, keys in (("max_threads_per_block", ("max_threads_per_block",
                                                        "max_num_threads")),
                             ("max_shared_memory_per_block", ("max_shared_memory_per_block",)),
                             ("warp_size", ("thread_warp_size",)),
                             ("l2_bytes", ("l2_cache_size_bytes",))):
        for k in keys:
            if k in attrs and int(attrs[k]) > 0:
                setattr(gp, field_name, int(attrs[k]))
                break
    for k, v in overrides.items():
        setattr(gp, k, v)
    return gp


@dataclass
class GpuTerms:
    """PSA's terms of one store (methods.md §C.3; feature numbers in brackets)."""
    grid: int                # [8] blockIdx product
    block: int               # [9] threadIdx product
    vthread: int             # [10] vthread product (of vthreads the store's accesses use)
    flops_per_thread: float  # [0]
    flops: float             # [1]
    reg_tile: float          # [2]
    mem_per_thread: float    # [3]
    reuse: float             # [6] = 1 + [0]/[3]
    dram_bytes: float        # [5], coalescing included
    warp_eff: float          # w
    wave_eff: float          # p
    thread_penalty: float    # t = 1 + 1/[6]
    reg_penalty: float       # r
    compute: float           # seconds
    memory: float            # seconds


def _tag_extents(loops: list, prefix: str, only: frozenset | None = None) -> dict:
    """tag -> extent of the thread loops of that tag (a tag bound twice, as MetaSchedule's
    cooperative fetch does inside a threadIdx loop, is one hardware index: the largest)."""
    out: dict = {}
    for lp in loops:
        if lp.kind == "thread" and lp.tag.startswith(prefix) and (only is None or lp.key in only):
            out[lp.tag] = max(out.get(lp.tag, 1), lp.extent)
    return out


def _merged_accesses(f: StoreFeature) -> list:
    accs: dict = {}
    for acc in [f.write] + f.reads:
        if acc.buffer in accs:
            old = accs[acc.buffer]
            accs[acc.buffer] = Access(old.buffer, old.bits, old.size, old.loops | acc.loops,
                                      old.last | acc.last, old.scope,
                                      {**acc.strides, **old.strides})
        else:
            accs[acc.buffer] = acc
    return list(accs.values())


def _coalescing(acc: Access, loops: list, inner: list, gp: GpuParams) -> float:
    """DRAM bytes fetched per byte used by a warp's access: threadIdx.x's address step s
    (elements), each thread's contiguous run u (the innermost per-thread loop indexing the
    access, if its step is 1), S = elements per 32-byte sector: 1 if s <= u (a broadcast, s = 0,
    too), else min(s, S) / min(u, S)."""
    tx = [lp for lp in loops if lp.tag == "threadIdx.x" and lp.key in acc.loops]
    if not tx or tx[-1].extent <= 1 or not acc.strides:     # no warp-wide access
        return 1.0
    s = abs(acc.strides.get(tx[-1].key, 0))
    idx = [lp for lp in inner if lp.key in acc.loops]
    run = idx[-1].extent if idx and abs(acc.strides.get(idx[-1].key, 0)) == 1 else 1
    if s <= run:
        return 1.0
    sector = max(1, gp.sector_bytes * 8 // max(1, acc.bits))
    return min(s, sector) / min(run, sector)


def gpu_store_terms(f: StoreFeature, gp: GpuParams) -> GpuTerms:
    """PSA's latency terms of one store (docs/pruner-cuda.md has the formulas).  Implemented as
    PSA: [0], [1], [3], [6], t, w, p, r, latency = max(compute, memory).  Approximated: the
    register tile [2] counts only the loops inside the outermost reduction loop, plus
    vthreads (non-reductions: only vectorized loops); DRAM bytes [5] are computed per global
    access (blocks x the threads and per-thread loops that index it), times a coalescing
    factor PSA does not have; no cache is modelled (every block reloads its inputs)."""
    loops = f.loops
    accs = _merged_accesses(f)
    used = frozenset().union(*(a.loops for a in accs)) if accs else frozenset()
    grid = _prod(_tag_extents(loops, "blockIdx").values())
    threads = _tag_extents(loops, "threadIdx")
    block = _prod(threads.values())
    # per-thread loops: everything not bound to a thread index, and the vthreads the store
    # uses (a vthread its accesses do not use is not replicated by InjectVirtualThread)
    first_red = min((i for i, lp in enumerate(loops) if lp.key in f.reduce), default=None)
    inner_pos = [(i, lp) for i, lp in enumerate(loops)
                 if lp.kind != "thread" or (lp.tag.startswith("vthread") and lp.key in used)]
    inner = [lp for _, lp in inner_pos]
    vthread = _prod(lp.extent for lp in inner if lp.kind == "thread")
    f0 = float(_prod(lp.extent for lp in inner) * max(1, f.ops))
    f1 = f0 * grid * block
    if first_red is not None:
        tile = [lp for i, lp in inner_pos if lp.kind == "thread" or i > first_red]
        reg = sum(_prod(lp.extent for lp in tile if lp.key in f.write.loops and lp.key in a.loops)
                  for a in accs)
    else:
        vec = [lp for lp in inner if lp.kind == "vectorized"]
        reg = sum(_prod(lp.extent for lp in vec if lp.key in a.loops) for a in accs)
    f3 = float(sum(_prod(lp.extent for lp in inner if lp.key in a.loops) for a in accs))
    f6 = 1.0 + f0 / max(1.0, f3)
    t = 1.0 + 1.0 / f6
    r = reg / gp.register_cap if reg >= gp.register_cap else 1.0
    warps = math.ceil(block / gp.warp_size)
    w = (block / gp.warp_size) / warps
    small = grid < gp.sms * gp.active_blocks_per_sm
    if small:
        active = min(gp.sm_partitions, warps)
        total = gp.sm_partitions * gp.sms
    else:
        active = 1
        total = gp.sms * gp.active_blocks_per_sm
    units = grid * active
    p = units / (math.ceil(units / total) * total)
    compute = f1 * t * r / (gp.peak_flops * p * w)
    dram = 0.0
    for a in accs:
        if a.scope != "global":
            continue
        th = _prod(_tag_extents(loops, "threadIdx", a.loops).values())
        per = _prod(lp.extent for lp in inner if lp.key in a.loops)
        dram += grid * th * per * a.bits / 8 * _coalescing(a, loops, inner, gp)
    return GpuTerms(grid=grid, block=block, vthread=vthread, flops_per_thread=f0, flops=f1,
                    reg_tile=float(reg), mem_per_thread=f3, reuse=f6, dram_bytes=dram,
                    warp_eff=w, wave_eff=p, thread_penalty=t, reg_penalty=r, compute=compute,
                    memory=dram / gp.dram_bw)


def shared_memory_per_block(stores: list) -> dict:
    """Bytes of shared memory per thread block, per kernel (keyed by the kernel's first
    blockIdx loop; None = unbound code).  A shared buffer's footprint is its writer's region:
    the loops that index it below the loops common to every store using it, plus thread and
    vthread loops (the buffer is shared by the block's threads), capped by its size."""
    uses: dict = {}
    for st in stores:
        for a in [st.write] + st.reads:
            if a.scope.startswith("shared"):
                uses.setdefault(a.buffer, []).append(st)
    out: dict = {}
    for name, sts in uses.items():
        writers = [st for st in sts if st.write.buffer == name]
        if not writers:
            continue
        keys = [[lp.key for lp in st.loops] for st in sts]
        prefix = 0
        while all(len(k) > prefix for k in keys) and len({k[prefix] for k in keys}) == 1:
            prefix += 1
        fp = 0
        for st in writers:
            a = st.write
            n = _prod(lp.extent for i, lp in enumerate(st.loops)
                      if lp.key in a.loops and not lp.tag.startswith("blockIdx")
                      and (i >= prefix or lp.kind == "thread"))
            fp = max(fp, min(a.size, n) * a.bits // 8)
        kernel = next((lp.key for lp in writers[0].loops if lp.tag.startswith("blockIdx")), None)
        out[kernel] = out.get(kernel, 0) + fp
    return out


def gpu_draft_latency(func: Any, gp: GpuParams) -> float:
    """PSA's program latency (seconds): Σ over stores max(compute, memory); ``inf`` for no
    stores or a kernel the device cannot launch (more threads per block than
    ``max_threads_per_block``, more shared memory than ``max_shared_memory_per_block``)."""
    stores = analyze(func)
    if not stores:
        return math.inf
    total = 0.0
    for f in stores:
        if _prod(_tag_extents(f.loops, "threadIdx").values()) > gp.max_threads_per_block:
            return math.inf
        terms = gpu_store_terms(f, gp)
        total += max(terms.compute, terms.memory)
    if any(b > gp.max_shared_memory_per_block for b in shared_memory_per_block(stores).values()):
        return math.inf
    return total


def is_gpu_target(target: Any) -> bool:
    try:
        return str(target.kind.name) == "cuda"
    except Exception:  # noqa: BLE001
        return False


def draft_params(target: Any, cores: int | None = None) -> HostParams | GpuParams:
    """The draft model's parameters for a target: datasheet ``GpuParams`` for cuda, the
    host's measured ``HostParams`` otherwise."""
    if is_gpu_target(target):
        return gpu_params(target)
    return host_params(cores)


# ----------------------------------------------------------------------------- cost models
@derived_object
class DraftCostModel(ms.cost_model.PyCostModel):
    """The draft model as a MetaSchedule cost model: score = 1 / draft latency (higher is
    better, as MetaSchedule expects); nothing is learned.  ``hp``: ``HostParams`` (llvm; the
    host's by default) or ``GpuParams`` (cuda, ``draft_params(target)``)."""

    def __init__(self, hp: HostParams | GpuParams | None = None):
        super().__init__()
        self.hp = hp or host_params()
        self.calls = 0
        self.seconds = 0.0

    def load(self, path: str) -> None:
        pass

    def save(self, path: str) -> None:
        pass

    def update(self, context: Any, candidates: list, results: list) -> None:
        pass

    def predict(self, context: Any, candidates: list) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.zeros(len(candidates), dtype="float64")
        for i, c in enumerate(candidates):
            try:
                lat = draft_latency(c.sch.mod, self.hp)
                out[i] = 0.0 if not math.isfinite(lat) or lat <= 0 else 1e-6 / lat
            except Exception as exc:  # noqa: BLE001 - an unanalysable candidate ranks last
                log.debug("draft model failed: %s", exc)
        self.calls += len(candidates)
        self.seconds += time.perf_counter() - t0
        return out


@derived_object
class CountingCostModel(ms.cost_model.PyCostModel):
    """Delegates to ``inner`` and counts the candidates it scores: ``per_round`` gets a new
    entry at every ``update`` (once per measured batch)."""

    def __init__(self, inner: Any):
        super().__init__()
        self.inner = inner
        self.per_round: list[int] = [0]
        self.seconds = 0.0

    def load(self, path: str) -> None:
        self.inner.load(path)

    def save(self, path: str) -> None:
        self.inner.save(path)

    def update(self, context: Any, candidates: list, results: list) -> None:
        self.inner.update(context, candidates, results)
        self.per_round.append(0)

    def predict(self, context: Any, candidates: list) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.predict(context, candidates)
        self.per_round[-1] += len(candidates)
        self.seconds += time.perf_counter() - t0
        return out


# ----------------------------------------------------------------------------- search strategy
#: PrunerSearch's defaults (Pruner's: K = 512 drafted, refreshed every 2 rounds, 2 draft GA
#: generations, ε = 0.1; the draft population is 1024 here instead of 1536, for 2 cores).
DEFAULTS = {"draft_size": 512, "refresh": 2, "population": 1024, "draft_generations": 2,
            "draft_eps": 0.1, "eps_greedy": 0.1}


@derived_object
class PrunerSearch(ms.search_strategy.PySearchStrategy):
    """Draft-then-verify (see the module docstring).  ``learned_calls[i]`` = candidates the
    learned model scored in round ``i``; ``draft_calls`` = draft-model evaluations."""

    def __init__(self, draft_size: int | None = None, refresh: int | None = None,
                 population: int | None = None, draft_generations: int | None = None,
                 draft_eps: float | None = None, eps_greedy: float | None = None,
                 hp: HostParams | GpuParams | None = None, seed: int | None = None):
        super().__init__()
        d = DEFAULTS
        self.draft_size = int(d["draft_size"] if draft_size is None else draft_size)
        self.refresh = int(d["refresh"] if refresh is None else refresh)
        self.population = int(d["population"] if population is None else population)
        self.draft_generations = int(d["draft_generations"] if draft_generations is None
                                     else draft_generations)
        self.draft_eps = float(d["draft_eps"] if draft_eps is None else draft_eps)
        self.eps_greedy = float(d["eps_greedy"] if eps_greedy is None else eps_greedy)
        self.hp = hp
        self.seed = seed
        self.learned_calls: list[int] = []
        self.draft = None
        self.inner = None
        self.context = None

    @property
    def draft_calls(self) -> int:
        return self.draft.calls if self.draft is not None else 0

    def _initialize_with_tune_context(self, context: Any) -> None:
        self.context = context
        if self.hp is None and is_gpu_target(context.target):
            self.hp = gpu_params(context.target)      # datasheet values of the target's arch
        cores = None
        try:
            cores = int(context.target.attrs["num-cores"])
        except Exception as exc:  # noqa: BLE001
            log.debug("target without num-cores: %s", exc)
        self.hp = host_params(cores) if self.hp is None else self.hp
        self.draft = DraftCostModel(self.hp)
        self.inner = ms.search_strategy.EvolutionarySearch(
            population_size=self.population, genetic_num_iters=self.draft_generations,
            eps_greedy=self.draft_eps)
        self.inner._initialize_with_tune_context(context)
        seed = self.seed
        if seed is None:
            try:
                seed = int(context.rand_state)
            except Exception:  # noqa: BLE001
                seed = 0
        self.rng = random.Random(seed)

    def pre_tuning(self, max_trials: int, num_trials_per_iter: int, design_spaces: list,
                   database: Any = None, cost_model: Any = None) -> None:
        self.max_trials = int(max_trials)
        self.batch = int(num_trials_per_iter)
        self.learned = cost_model
        self.database = database
        self.pool: list = []
        self.seen: set = set()
        self.given = 0
        self.round = 0
        self.inner.pre_tuning(1 << 30, self.draft_size, design_spaces, database, self.draft)

    def post_tuning(self) -> None:
        self.inner.post_tuning()

    def _refill(self) -> None:
        drafted = self.inner.generate_measure_candidates() or []
        fresh = []
        for c in drafted:
            h = int(tvm_ffi.structural_hash(c.sch.mod))
            if h not in self.seen:
                self.seen.add(h)
                fresh.append(c)
        self.pool = fresh + self.pool   # new drafts first; unmeasured old ones stay
        self.pool = self.pool[: self.draft_size]

    def generate_measure_candidates(self) -> list | None:
        if self.given >= self.max_trials:
            return None
        n = min(self.batch, self.max_trials - self.given)
        if self.round % self.refresh == 0 or len(self.pool) < n:
            self._refill()
        if not self.pool:
            return None
        # verify: the learned model scores only the drafted (and drafted-random) candidates
        if self.learned is not None:
            scores = np.asarray(self.learned.predict(self.context, self.pool), dtype="float64")
        else:
            scores = np.array([self.rng.random() for _ in self.pool])
        self.learned_calls.append(len(self.pool))
        order = list(np.argsort(-scores, kind="stable"))
        n = min(n, len(order))
        n_rand = round(n * self.eps_greedy)
        picked = order[: n - n_rand]
        rest = order[n - n_rand:]
        picked += self.rng.sample(rest, min(n_rand, len(rest)))
        out = [self.pool[i] for i in picked]
        keep = set(picked)
        self.pool = [c for i, c in enumerate(self.pool) if i not in keep]
        self.given += len(out)
        self.round += 1
        return out

    def notify_runner_results(self, measure_candidates: list, results: list) -> None:
        pass

    def clone(self) -> PrunerSearch:
        return PrunerSearch(self.draft_size, self.refresh, self.population,
                            self.draft_generations, self.draft_eps, self.eps_greedy, self.hp,
                            self.seed)
