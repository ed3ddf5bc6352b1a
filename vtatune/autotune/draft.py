"""The VTA *draft model*: an analytic latency estimate of template configurations, computed
from the hardware model without simulating (Pruner's "draft", methods.md §C.2–§C.3; the
VTA analogue of PSA asked for by issue 15 item 3).

For every configuration the template's loop structure (the same quantities as the
``"itervar"`` features, ``vtatune.autotune.features``, taken *raw*, not log-scaled) gives
per-operator totals, which the cycle model's parameters (``hw.timing``,
``vtatune.sim.timing.Timing``) turn into cycles:

* **GEMM**: every micro-op iteration is one cycle (the GEMM core's initiation interval),
  plus ``gemm_fill`` and ``insn_overhead`` per GEMM instruction and ``gemm_loop_cycles`` per
  iteration of the instruction's (outer, inner) loop; the accumulator reset is one more
  GEMM instruction per output tile.
* **ALU**: the epilogue's ALU stages (shift/clip 3, bias 4, relu 2) each touch every
  accumulator vector of a tile at ``alu_ii`` cycles per micro-op, plus ``alu_fill``.
* **Loads**: INP and WGT bytes of every reduction step and the bias (ACC) of every tile
  over the AXI read bandwidth (``bus_bytes_per_cycle``, 8 B/cycle), weights at
  ``wgt_beat_cycles`` per beat; every DMA row waits ``mem_latency`` and an INP row costs
  ``inp_row_cycles`` more (``load_pad_2d``).
* **Stores**: output bytes at ``store_beat_cycles`` per beat, ``mem_write_latency`` per row.
* **Overlap**: VTA's load, compute and store modules run concurrently only when
  dependency tokens let them; with one virtual thread the three phases of a step
  serialise (``sum``), with two the next step's loads overlap this step's compute
  (``max`` of the three totals).  A ragged thread split (tiles not divisible by the thread
  count) leaves a thread idle on the last steps: the overlapped part is scaled by
  ``1 + 1/steps_per_thread``.
* **Host**: ``host_launch_us`` plus the per-instruction / per-micro-op host cost.

Configurations whose on-chip tiles exceed an SRAM (INP, WGT, ACC; all threads' buffers)
or the micro-op buffer cannot compile: they get an infinite latency (score ``-inf``) and
rank last.  The compiler has more checks (DMA field widths, stream length); pass
``verdict=True`` to ``DraftModel.valid`` to apply the compiler's exact compile-only verdict
to a shortlist.

Nothing is fitted per task: the only inputs are the workload, the hardware configuration
and its timing parameters.  Everything is vectorised (tens of thousands of configurations
per second).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigurationError
from ..sim.timing import Timing
from ..space.indexing import digits_of
from ..workloads.workload import DENSE, Workload
from .features import _N_ALU, CONV_FEATURES, DENSE_FEATURES, _conv_features, _dense_features

if TYPE_CHECKING:
    from ..hardware.config import HwConfig
    from ..space.config import ConfigSpace


def _cols(names: Sequence[str], raw: np.ndarray) -> dict[str, np.ndarray]:
    return {n: raw[:, j] for j, n in enumerate(names)}


def draft_cycles_batch(workload: Workload, hw: HwConfig, knobs: dict,
                       timing: Timing | None = None) -> dict[str, np.ndarray]:
    """The draft model's components for many configurations (``knobs``: knob name -> array).

    Returns a dict of float arrays: ``gemm``, ``alu``, ``load``, ``store`` (accelerator
    cycles of each phase), ``accel`` (cycles after overlap), ``host_ms``, ``latency_ms``
    (``inf`` where ``sram_ok`` is False) and ``sram_ok``."""
    wl = workload.bind(hw)
    t = timing or Timing.from_hw(hw)
    k = {n: np.atleast_1d(np.asarray(v, dtype=np.float64)) for n, v in knobs.items()}
    try:
        if wl.template == DENSE:
            c = _cols(DENSE_FEATURES, _dense_features(wl, hw, k))
        else:
            c = _cols(CONV_FEATURES, _conv_features(wl, hw, k))
    except KeyError as exc:
        raise ConfigurationError("knobs",
                                 f"missing knob {exc.args[0]!r} for {wl.template}") from None
    ov, bw = float(t.insn_overhead), float(t.bus_bytes_per_cycle)
    steps, tiles = c["n_tile_steps"], c["n_tiles"]
    threads = c["threads"]
    # ---- GEMM: one micro-op iteration per cycle
    gemm_ops = c["gemm_ops_per_kernel"]                     # micro-op executions per kernel
    iters = gemm_ops / np.maximum(c["gemm_uops_per_kernel"], 1.0)  # (outer x inner) loop trips
    gemm = steps * (ov + t.gemm_fill + gemm_ops + iters * t.gemm_loop_cycles)
    if wl.template == DENSE:
        acc_vecs = c["tile_b"] * c["tile_co"]
    else:
        acc_vecs = c["tile_h"] * c["tile_w"] * c["tile_co"]
    reset = tiles * (ov + t.gemm_fill + acc_vecs)
    # ---- ALU epilogue
    n_alu = _N_ALU[wl.epilogue]
    alu = tiles * n_alu * (ov + t.alu_fill + t.alu_ii * acc_vecs)
    # ---- loads (INP, WGT per step; bias per tile) and stores
    L, Lw = float(t.mem_latency), float(t.mem_write_latency)
    if wl.template == DENSE:
        inp_rows = np.ones_like(steps)
        wgt_rows = c["tile_co"]
        out_rows = c["tile_b"]
    else:
        inp_rows = c["inp_rows"] * np.maximum(c["tile_ci"], 1.0)
        wgt_rows = c["tile_co"]
        out_rows = c["tile_co"] * c["tile_h"]
    load = (steps * (2 * ov + (inp_rows + wgt_rows) * L + inp_rows * t.inp_row_cycles)
            + c["dram_inp_bytes"] / bw + c["dram_wgt_bytes"] / bw * t.wgt_beat_cycles)
    if wl.has_bias:
        bias_bytes = c["tile_co"] * hw.block_out * hw.batch * hw.acc_elem_bytes
        load = load + tiles * (ov + L + bias_bytes / bw)
    store = tiles * (ov + out_rows * Lw) + c["dram_out_bytes"] / bw * t.store_beat_cycles
    compute = gemm + reset + alu
    serial = load + compute + store
    overlapped = np.maximum(np.maximum(load, compute), store)
    per_thread_steps = np.maximum(tiles / np.maximum(threads, 1.0), 1.0)
    overlapped = overlapped * (1.0 + c["ragged_threads"] / per_thread_steps)
    accel = np.where(threads > 1, overlapped, serial)
    uops_total = steps * c["gemm_uops_per_kernel"] + tiles * (c["reset_uops_per_kernel"] + n_alu)
    host_ms = t.host_ms(0, 0) + (c["n_insns"] * t.host_per_insn_ns + uops_total * t.host_per_uop_ns) / 1e6
    # ---- SRAM pressure: a tile that does not fit cannot compile
    sram_ok = ((c["inp_sram_frac"] <= 1.0) & (c["wgt_sram_frac"] <= 1.0)
               & (c["acc_sram_frac"] <= 1.0) & (c["uop_frac"] <= 1.0))
    latency = np.where(sram_ok, t.accel_ms(accel) + host_ms, np.inf)
    return {"gemm": gemm + reset, "alu": alu, "load": load, "store": store, "accel": accel,
            "host_ms": host_ms, "latency_ms": latency, "sram_ok": sram_ok}


class DraftModel:
    """The draft model of one space: ``score(digits)`` (higher = predicted faster; ``-inf``
    = predicted invalid), ``latency_ms(digits)``, and the compiler's verdict on demand.

    ``calls`` counts configurations scored (for the tuner's bookkeeping)."""

    def __init__(self, space: ConfigSpace, workload: Workload, hw: HwConfig,
                 profile: str | None = None, sync: str | None = None):
        self.space = space
        self.workload = workload.bind(hw)
        self.hw = hw
        self.profile = profile
        self.sync = sync
        self.timing = Timing.from_hw(hw)
        self.names = space.names
        self.tables = [np.asarray(space[n].candidates, dtype=np.float64) for n in self.names]
        self.calls = 0
        self._verdicts: dict[int, bool] = {}
        self._all: np.ndarray | None = None

    def components(self, digits: np.ndarray) -> dict[str, np.ndarray]:
        digits = np.atleast_2d(np.asarray(digits, dtype=np.int64))
        knobs = {n: t[digits[:, j]] for j, (n, t) in enumerate(zip(self.names, self.tables))}
        return draft_cycles_batch(self.workload, self.hw, knobs, self.timing)

    def latency_ms(self, digits: np.ndarray) -> np.ndarray:
        return self.components(digits)["latency_ms"]

    def score(self, digits: np.ndarray) -> np.ndarray:
        """``-log(latency)``: higher = faster; ``-inf`` where predicted invalid."""
        lat = self.latency_ms(digits)
        self.calls += len(lat)
        with np.errstate(divide="ignore"):
            return -np.log(lat)

    def score_indices(self, indices) -> np.ndarray:
        return self.score(digits_of(np.asarray(indices, dtype=np.int64), self.space.dims))

    def score_all(self) -> np.ndarray:
        """Scores of the whole space (computed once)."""
        if self._all is None:
            self._all = self.score_indices(np.arange(self.space.size, dtype=np.int64))
        return self._all

    def valid(self, indices) -> np.ndarray:
        """The compiler's exact compile-only verdict (``compiler.sweep.verdict``, memoised)."""
        from ..compiler.ir import REFERENCE_SYNC
        from ..compiler.profiles import DEFAULT_PROFILE
        from ..compiler.sweep import verdict
        out = []
        for i in np.asarray(indices, dtype=np.int64).tolist():
            v = self._verdicts.get(i)
            if v is None:
                v = verdict(self.workload, self.space.get(i).knobs, self.hw,
                            self.profile or DEFAULT_PROFILE, self.sync or REFERENCE_SYNC)[0]
                self._verdicts[i] = v
            out.append(v)
        return np.asarray(out, dtype=bool)


    def top(self, k: int, exclude=(), verdict: bool = True, chunk: int = 256) -> np.ndarray:
        """The ``k`` best-scored indices not in ``exclude`` (fewer if fewer are left), in
        score order; with ``verdict`` the compiler's compile-only verdict is applied lazily
        down the ranking, so configurations it rejects never enter (invalid ranked last)."""
        s = self.score_all()
        order = np.argsort(-s, kind="stable")
        order = order[np.isfinite(s[order])]
        if len(exclude):
            ex = np.zeros(self.space.size, dtype=bool)
            ex[np.fromiter(exclude, dtype=np.int64)] = True
            order = order[~ex[order]]
        if not verdict:
            return order[:k]
        out: list[np.ndarray] = []
        got = 0
        for lo in range(0, order.size, chunk):
            part = order[lo:lo + chunk]
            part = part[self.valid(part)]
            out.append(part)
            got += part.size
            if got >= k:
                break
        return np.concatenate(out)[:k] if out else order[:0]


def draft_model(space: ConfigSpace, workload: Workload, hw: HwConfig,
                profile: str | None = None, sync: str | None = None) -> DraftModel:
    """The draft model of ``space`` (the space of ``workload`` on ``hw``; ``profile`` and
    ``sync`` are the compiler profile and token scheme its verdicts use)."""
    return DraftModel(space, workload, hw, profile, sync)


class DraftInit:
    """An init strategy (``search(..., init=)``): the first plan is the draft model's
    fastest configurations among the predicted-valid ones, in draft order.

    Validity comes from ``p_valid_fn`` (a screen's ``p_valid``: a classifier's P(valid) ≥
    ``threshold``, or the exact verdict as 0/1) or, without one, from the compiler's
    compile-only verdict (``DraftModel.top(verdict=True)``).  It is the validity init with a
    performance prior: the validity init spreads its plan uniformly over the valid clusters
    because it knows nothing about speed; the draft knows roughly which valid
    configurations are fast (the prior is analytic, not fitted; docs/validity.md says what
    that does and does not tell about a board).  No probe; the generator is unused, so the
    plan depends on the space only."""

    def __init__(self, draft: DraftModel, p_valid_fn=None, threshold: float = 0.5,
                 chunk: int = 512):
        if p_valid_fn is not None and not callable(p_valid_fn):
            raise ConfigurationError("p_valid_fn", f"must be callable, got {type(p_valid_fn).__name__}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigurationError("threshold", f"must be in [0, 1], got {threshold}")
        self.draft, self.p_valid_fn = draft, p_valid_fn
        self.threshold, self.chunk = float(threshold), int(chunk)

    def probe(self, space, rng: np.random.Generator) -> list[int]:
        return []

    def first_batch(self, space, n: int, rng: np.random.Generator, probed=()) -> list[int]:
        exclude = [int(o.index) for o in probed]
        if self.p_valid_fn is None:
            return [int(i) for i in self.draft.top(n, exclude, verdict=True)]
        ranked = self.draft.top(space.size, exclude, verdict=False)  # finite scores only
        out: list[int] = []
        for lo in range(0, ranked.size, self.chunk):
            part = ranked[lo:lo + self.chunk]
            p = np.asarray(self.p_valid_fn(part), dtype=np.float64)
            out += part[p >= self.threshold].tolist()
            if len(out) >= n:
                break
        return [int(i) for i in out[:n]]
