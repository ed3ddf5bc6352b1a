"""Shared helpers of the MetaSchedule model tests (MLP verifier, One-Shot): tiny TE matmuls,
replayed design-space samples (nothing measured) and a hand-built latency function of known
loop extents."""
from __future__ import annotations

import math


def matmul(n: int, k: int | None = None, m: int | None = None):
    """C[n, m] = A[n, k] @ B[k, m] in fp32 (square when only ``n`` is given)."""
    import tvm
    from tvm import te
    k = n if k is None else k
    m = n if m is None else m
    a = te.placeholder((n, k), "float32", name="A")
    b = te.placeholder((k, m), "float32", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute((n, m), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def sample(target, mod, n: int, name: str):
    """``(context, n post-processed MetaSchedule candidates of mod)`` (replayed design spaces)."""
    from tvm.s_tir import meta_schedule as ms
    ctx = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply",
                         search_strategy="replay-trace", task_name=name, rand_state=0,
                         num_threads=1)
    ctx.pre_tuning(max_trials=n, num_trials_per_iter=n,
                   design_spaces=ctx.generate_design_space(),
                   database=ms.database.MemoryDatabase(), cost_model=None)
    cands = list(ctx.generate_measure_candidates())
    ctx.post_tuning()
    return ctx, cands


def loops(stmt, out: list) -> list:
    """Every ``For`` of a TIR statement (a walk of its own, not pruner.analyze's)."""
    from tvm import tirx
    if isinstance(stmt, tirx.For):
        out.append(stmt)
        loops(stmt.body, out)
    elif isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            loops(s, out)
    elif hasattr(stmt, "block"):
        loops(stmt.block.body, out)
    elif hasattr(stmt, "body"):
        loops(stmt.body, out)
    return out


def known_latency(mod) -> float:
    """A hand-built latency, monotone in known loop extents: shorter with a longer vector
    loop (up to 16 lanes), with more parallel iterations (up to 4) and with unrolling."""
    from tvm import tirx
    ls = loops(mod["main"].body, [])
    vec = max([int(lp.extent) for lp in ls if lp.kind == tirx.ForKind.VECTORIZED] or [1])
    par = math.prod(int(lp.extent) for lp in ls if lp.kind == tirx.ForKind.PARALLEL)
    unroll = max([int(lp.annotations["pragma_auto_unroll_max_step"]) for lp in ls
                  if "pragma_auto_unroll_max_step" in lp.annotations] or [0])
    return 1e-4 * (1 / min(vec, 16) + 1 / min(par, 4) + 0.1 * (unroll == 0))
