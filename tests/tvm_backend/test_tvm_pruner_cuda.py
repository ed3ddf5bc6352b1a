"""Pruner's GPU draft model (PSA's GPU formulas, vtatune/backends/tvm/pruner.py) and
PrunerSearch on a cuda target up to measurement, without a GPU: the model's values and order
on hand-built CUDA-scheduled kernels, computed here by hand from the A100 datasheet numbers,
and drafting from MetaSchedule's CUDA design space."""
from __future__ import annotations

import math

import pytest

# A100-SXM4-40GB datasheet (NVIDIA): 108 SMs, 19.5 TFLOP/s FP32, 1555 GB/s HBM2; PSA's constants
SMS, PEAK, BW, PARTITIONS, WARP = 108, 19.5e12, 1555e9, 4, 32


@pytest.fixture(scope="module")
def gp():
    from vtatune.backends.tvm.pruner import GpuParams
    return GpuParams()


def _matmul(n=256):
    import tvm
    from tvm import te
    a = te.placeholder((n, n), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def _one_thread(n=256):
    """The whole matmul in one thread of one block."""
    import tvm
    sch = tvm.s_tir.Schedule(_matmul(n))
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    io, ii = sch.split(i, [1, None])
    jo, ji = sch.split(j, [1, None])
    sch.reorder(io, jo, ii, ji, k)
    sch.bind(io, "blockIdx.x")
    sch.bind(jo, "threadIdx.x")
    return sch.mod


def _one_block(n=256, threads=128):
    """One block; threadIdx.x = the inner columns, each thread n/threads columns x all rows."""
    import tvm
    sch = tvm.s_tir.Schedule(_matmul(n))
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    jo, ji = sch.split(j, [None, threads])
    sch.reorder(ji, i, jo, k)
    sch.bind(ji, "threadIdx.x")
    return sch.mod


def _shared_tiled(n=256, t=16):
    """(n/t)^2 blocks of t x t threads, one output each; k in steps of t, the A and B tiles
    staged in shared memory by all the block's threads (one element each)."""
    import tvm
    sch = tvm.s_tir.Schedule(_matmul(n))
    c = sch.get_sblock("C")
    i, j, k = sch.get_loops(c)
    io, ii = sch.split(i, [None, t])
    jo, ji = sch.split(j, [None, t])
    ko, ki = sch.split(k, [None, t])
    sch.reorder(io, jo, ii, ji, ko, ki)
    sch.bind(sch.fuse(io, jo), "blockIdx.x")
    sch.bind(sch.fuse(ii, ji), "threadIdx.x")
    for idx in (0, 1):
        cache = sch.cache_read(c, idx, "shared")
        sch.compute_at(cache, ko)
        _, fi = sch.split(sch.fuse(*sch.get_loops(cache)[-2:]), [None, t * t])
        sch.bind(fi, "threadIdx.x")
    return sch.mod


def _reg_tiled(n=256, t=4):
    """16 x 16 threads per block, a t x t accumulator tile per thread, operands from global."""
    import tvm
    sch = tvm.s_tir.Schedule(_matmul(n))
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    i0, i1, i2 = sch.split(i, [None, 16, t])
    j0, j1, j2 = sch.split(j, [None, 16, t])
    sch.reorder(i0, j0, i1, j1, k, i2, j2)
    sch.bind(sch.fuse(i0, j0), "blockIdx.x")
    sch.bind(sch.fuse(i1, j1), "threadIdx.x")
    return sch.mod


def _add(n=1024, coalesced=True):
    """C = A + B, 256 threads per block; threadIdx.x runs along rows (coalesced) or down
    columns (stride n)."""
    import tvm
    from tvm import te
    a = te.placeholder((n, n), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    c = te.compute((n, n), lambda i, j: a[i, j] + b[i, j], name="C")
    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": te.create_prim_func([a, b, c])}))
    i, j = sch.get_loops(sch.get_sblock("C"))
    if coalesced:
        bx, tx = sch.split(sch.fuse(i, j), [None, 256])
    else:
        io, tx = sch.split(i, [None, 256])
        sch.reorder(io, j, tx)
        bx = sch.fuse(io, j)
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return sch.mod


def _wave(grid, block):
    """PSA's wave efficiency, written out for the cases used here."""
    warps = math.ceil(block / WARP)
    if grid < SMS:                                          # a small kernel
        units, total = grid * min(warps, PARTITIONS), PARTITIONS * SMS
    else:
        units, total = grid, SMS
    return units / (math.ceil(units / total) * total)


def test_analyzer_reads_thread_bindings_and_scopes():
    from vtatune.backends.tvm.pruner import analyze, shared_memory_per_block
    stores = analyze(_shared_tiled())
    assert [s.write.buffer for s in stores] == ["A_shared", "B_shared", "C"]
    a_sh, _, c = stores
    assert [(lp.extent, lp.tag) for lp in a_sh.loops] == [
        (256, "blockIdx.x"), (256, "threadIdx.x"), (16, ""), (1, ""), (256, "threadIdx.x")]
    assert a_sh.write.scope == "shared" and a_sh.reads[0].scope == "global"
    assert {r.buffer: r.scope for r in c.reads} == {"C": "global", "A_shared": "shared",
                                                    "B_shared": "shared"}
    # threadIdx.x = ii * 16 + ji: C's column address steps by 1, A's row by 256 (its k by 1)
    tx = c.loops[1].key
    assert c.write.strides[tx] == 1
    assert a_sh.reads[0].strides[a_sh.loops[4].key] == 1          # the cooperative fetch
    # one block holds a 16 x 16 fp32 tile of A and one of B: 2 KiB of shared memory
    assert list(shared_memory_per_block(stores).values()) == [2 * 16 * 16 * 4]


def test_gpu_draft_model_values_by_hand(gp):
    """Each value below is PSA's formula evaluated by hand from the loop nest."""
    from vtatune.backends.tvm.pruner import analyze, draft_latency, gpu_store_terms
    n = 256
    flops = 2 * n ** 3
    # one thread: [0] = [1] = 2n^3; [3] = n^2 (C) + n^2 (A) + n^2 (B); w = 1/32, p = 1/432
    reuse = 1 + flops / (3 * n * n)
    one = flops * (1 + 1 / reuse) / (PEAK * (1 / (PARTITIONS * SMS)) * (1 / WARP))
    assert draft_latency(_one_thread(), gp) == pytest.approx(one, rel=1e-9)
    # a block of 128 threads, each n/128 = 2 columns: [0] = 2n^2 * 2, [3] = 2n (C) + n^2 (A)
    # + 2n (B); 4 warps of a 1-block kernel fill the 4 partitions of one SM: p = 4/432
    f0 = 2 * n * n * 2
    reuse = 1 + f0 / (2 * n + n * n + 2 * n)
    block = f0 * 128 * (1 + 1 / reuse) / (PEAK * _wave(1, 128))
    assert _wave(1, 128) == pytest.approx(4 / 432)
    assert draft_latency(_one_block(), gp) == pytest.approx(block, rel=1e-9)
    # shared-memory tiling: 256 blocks of 256 threads, p = 256 / (3 * 108); the compute store
    # has [0] = 2n, [3] = 1 + n + n; each staging store reads n^2 * 16 fp32 from DRAM over the
    # run (each of the 256 blocks a 16 x 256 strip) and is memory-bound
    f0 = 2 * n
    compute = f0 * 256 * 256 * (1 + 1 / (1 + f0 / (1 + 2 * n))) / (PEAK * 256 / (3 * SMS))
    staging = 2 * (256 * 16 * n * 4) / BW
    c_terms = gpu_store_terms(analyze(_shared_tiled())[2], gp)
    assert c_terms.flops == flops and c_terms.compute == pytest.approx(compute, rel=1e-9)
    assert c_terms.dram_bytes == n * n * 4 and c_terms.memory < c_terms.compute
    tiled = draft_latency(_shared_tiled(), gp)
    assert tiled == pytest.approx(compute + staging, rel=1e-9)
    # the known order: shared-memory tiling over many blocks < one block < one thread
    assert tiled < block < one
    # every schedule computes the same 2n^3 FLOPs
    for mod in (_one_thread(), _one_block(), _reg_tiled(t=4), _reg_tiled(t=16)):
        (st,) = analyze(mod)
        assert gpu_store_terms(st, gp).flops == flops


def test_gpu_register_pressure_and_coalescing(gp):
    from vtatune.backends.tvm.pruner import analyze, draft_latency, gpu_store_terms
    # register tile: t x t accumulators + t A values + t B values per thread; PSA's penalty
    # [2]/128 once the tile reaches 128 registers
    (small,) = analyze(_reg_tiled(t=4))
    (big,) = analyze(_reg_tiled(t=16))
    ts, tb = gpu_store_terms(small, gp), gpu_store_terms(big, gp)
    assert (ts.reg_tile, ts.reg_penalty) == (4 * 4 + 4 + 4, 1.0)
    assert (tb.reg_tile, tb.reg_penalty) == (16 * 16 + 16 + 16, 288 / 128)
    assert draft_latency(_reg_tiled(t=4), gp) < draft_latency(_reg_tiled(t=16), gp)
    # coalescing: three 1024 x 1024 fp32 arrays; threadIdx.x along a row reads whole 32-byte
    # sectors, down a column (stride 1024) 4 of every 32 bytes: 8x the DRAM traffic
    n = 1024
    coal = 3 * n * n * 4 / BW
    assert draft_latency(_add(coalesced=True), gp) == pytest.approx(coal, rel=1e-9)
    assert draft_latency(_add(coalesced=False), gp) == pytest.approx(8 * coal, rel=1e-9)


def test_gpu_limits_and_params():
    import dataclasses

    from vtatune.backends.tvm.env import make_target
    from vtatune.backends.tvm.pruner import GpuParams, draft_latency, gpu_params
    gp = gpu_params(make_target("cuda:sm_80"))
    assert (gp.sms, gp.peak_flops, gp.dram_bw, gp.warp_size) == (SMS, PEAK, BW, WARP)
    assert gp.max_threads_per_block == 1024       # the target's max_num_threads
    # the target's attributes win over the table; an unknown arch takes the nearest lower row
    t = make_target({"kind": "cuda", "arch": "sm_89", "max_threads_per_block": 512,
                     "max_shared_memory_per_block": 65536})
    g89 = gpu_params(t)
    assert (g89.arch, g89.sms, g89.peak_flops, g89.dram_bw) == ("sm_89", 82, 35.6e12, 936e9)
    assert (g89.max_threads_per_block, g89.max_shared_memory_per_block) == (512, 65536)
    assert gpu_params(arch="sm_75").sms == 40
    # a kernel the device cannot launch is never drafted: too much shared memory per block
    # (the tiled kernel uses 2 KiB) or too many threads per block
    mod = _shared_tiled()
    assert math.isfinite(draft_latency(mod, GpuParams(max_shared_memory_per_block=2048)))
    assert draft_latency(mod, GpuParams(max_shared_memory_per_block=2047)) == math.inf
    assert draft_latency(mod, dataclasses.replace(gp, max_threads_per_block=128)) == math.inf


@pytest.fixture(scope="module")
def cuda_target():
    """An sm_80 target MetaSchedule can generate for (AutoBind needs max_threads_per_block,
    which make_target("cuda:sm_80") does not set), with the CUDA tensor intrinsics the
    default sm_80 design space (cuda-tensorcore rules) refers to: imported once (60-75 s)."""
    from vtatune.backends.tvm.env import load_intrinsics_for, make_target
    t = make_target({"kind": "cuda", "arch": "sm_80", "max_threads_per_block": 1024,
                     "max_shared_memory_per_block": 49152})
    load_intrinsics_for(t)
    return t


@pytest.mark.slow      # the CUDA intrinsics import alone takes 60-75 s
def test_pruner_search_drafts_cuda_candidates_without_a_gpu(cuda_target):
    import numpy as np
    from tvm.s_tir import meta_schedule as ms

    from vtatune.backends.tvm.pruner import (
        GpuParams,
        PrunerSearch,
        analyze,
        draft_latency,
        gpu_store_terms,
    )
    n = 128
    strat = PrunerSearch(draft_size=32, population=64, refresh=2, seed=0)
    ctx = ms.TuneContext(mod=_matmul(n), target=cuda_target, space_generator="post-order-apply",
                         search_strategy=strat, task_name="mm", rand_state=0, num_threads=2)
    spaces = ctx.generate_design_space()
    assert spaces
    ctx.pre_tuning(max_trials=16, num_trials_per_iter=8, design_spaces=spaces,
                   database=ms.database.MemoryDatabase(), cost_model=None)
    rounds = []
    while (cands := ctx.generate_measure_candidates()) is not None:
        rounds.append(cands)
    ctx.post_tuning()
    assert [len(r) for r in rounds] == [8, 8]
    assert isinstance(strat.hp, GpuParams) and strat.hp.sms == SMS     # dispatched on cuda
    assert strat.draft_calls >= 64
    cands = [c for r in rounds for c in r]
    lat = np.array([draft_latency(c.sch.mod, strat.hp) for c in cands])
    assert np.isfinite(lat).all() and (lat > 0).all()
    assert len(set(lat.tolist())) > 1
    # the draft cost model's score is 1e-6 / that latency
    scores = strat.draft.predict(ctx, cands)
    assert scores == pytest.approx(1e-6 / lat, rel=1e-12)
    # every candidate is a thread-bound kernel computing the same 2n^3 FLOPs in its update
    # store, staging through shared memory or not
    for c in cands:
        terms = [gpu_store_terms(st, strat.hp) for st in analyze(c.sch.mod)
                 if st.ops == 2]
        assert len(terms) == 1 and terms[0].flops == 2 * n ** 3
        assert terms[0].grid * terms[0].block > 1
