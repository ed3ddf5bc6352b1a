"""Pruner's draft-then-verify on MetaSchedule (vtatune/backends/tvm/pruner.py): the draft
model's ranking of hand-built schedules whose order is known, the verify step scoring only
drafted candidates, and a tiny tuning run into the vtatune database."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def hp():
    from vtatune.backends.tvm.pruner import HostParams
    # fixed parameters (an AVX-512 core, 2 cores): the orders below must not depend on the
    # host's micro-benchmark
    return HostParams(peak_flops=64e9, dram_bw=10e9, vector_bits=512, vector_regs=32,
                      l2_bytes=2 << 20, cores=2)


def _matmul(n=256, m=None):
    import tvm
    from tvm import te
    m = m or n
    a = te.placeholder((m, n), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def _tiled(mod, ti, tj, *, parallel=True, vectorize=True):
    """i/ti, j/tj outer (i outer parallel), then k, then the ti x tj register tile."""
    import tvm
    sch = tvm.s_tir.Schedule(mod)
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    io, ii = sch.split(i, [None, ti])
    jo, ji = sch.split(j, [None, tj])
    sch.reorder(io, jo, k, ii, ji)
    if vectorize:
        sch.vectorize(ji)
    if parallel:
        sch.parallel(io)
    return sch.mod


def test_draft_model_reads_loops_blocks_and_reductions(hp):
    from vtatune.backends.tvm.pruner import analyze
    (st,) = analyze(_tiled(_matmul(), 4, 16))
    assert [(lp.extent, lp.kind) for lp in st.loops] == [
        (64, "parallel"), (16, "serial"), (256, "serial"), (4, "serial"), (16, "vectorized")]
    assert st.ops == 2                      # C += A * B: one add, one multiply
    assert st.write.buffer == "C" and {r.buffer for r in st.reads} == {"A", "B", "C"}
    assert st.reduce == {st.loops[2].key}   # only k reduces


def test_draft_model_ranks_known_orders(hp):
    from vtatune.backends.tvm.pruner import draft_latency
    mod = _matmul()
    naive = draft_latency(mod, hp)
    # a scalar 4x4 register tile (16 accumulators) reuses each load 4 times (naive: none)
    scalar_tiled = draft_latency(_tiled(mod, 4, 4, parallel=False, vectorize=False), hp)
    vec_serial = draft_latency(_tiled(mod, 4, 16, parallel=False), hp)
    good = draft_latency(_tiled(mod, 4, 16), hp)
    # vectorizing and then parallelising over 2 cores each make it faster
    assert good < vec_serial < scalar_tiled < naive
    # about 2x from the 2 cores (64 parallel iterations balance perfectly), not more
    assert 1.5 < vec_serial / good <= 2.0
    # a 4x16 accumulator tile (4 zmm + 4 broadcasts + 1 B vector, fits 32 registers) reuses
    # each loaded B vector 4 times: faster than a 1x16 tile that loads twice per FMA ...
    assert good < draft_latency(_tiled(mod, 1, 16), hp)
    # ... and than a 64x64 tile whose 256 accumulator vectors spill
    assert good < draft_latency(_tiled(mod, 64, 64), hp)
    # a 16-lane vector loop fills AVX-512 lanes; a 12-lane one wastes a quarter of them
    assert good < draft_latency(_tiled(_matmul(240), 4, 12), hp) * (256 / 240) ** 3
    # thread imbalance: 3 parallel row blocks on 2 cores take 2 rounds, as long as 4 blocks
    # (3/4 of the work); compute-bound here (DRAM made very fast)
    import dataclasses
    fast = dataclasses.replace(hp, dram_bw=1e13)
    t3 = draft_latency(_tiled(_matmul(256, m=24), 8, 16), fast)
    t4 = draft_latency(_tiled(_matmul(256, m=32), 8, 16), fast)
    assert t3 == pytest.approx(t4, rel=0.02)


def test_verify_scores_only_drafted_candidates(target):
    """A spy learned model sees only candidates of the drafted pool, never more than
    draft_size per round; the measured candidates are among those it scored."""
    import numpy as np
    import tvm_ffi
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    from vtatune.backends.tvm.env import load_intrinsics_for
    from vtatune.backends.tvm.pruner import PrunerSearch

    @derived_object
    class Spy(ms.cost_model.PyCostModel):
        def __init__(self):
            super().__init__()
            self.seen = []

        def load(self, path): pass

        def save(self, path): pass

        def update(self, context, candidates, results): pass

        def predict(self, context, candidates):
            self.seen.append([int(tvm_ffi.structural_hash(c.sch.mod)) for c in candidates])
            return np.arange(len(candidates), dtype="float64")[::-1].copy()

    load_intrinsics_for(target)
    strat = PrunerSearch(draft_size=32, population=64, refresh=2, seed=0)
    spy = Spy()
    ctx = ms.TuneContext(mod=_matmul(64), target=target, space_generator="post-order-apply",
                         search_strategy=strat, task_name="mm", rand_state=0, num_threads=2)
    ctx.pre_tuning(max_trials=24, num_trials_per_iter=8,
                   design_spaces=ctx.generate_design_space(),
                   database=ms.database.MemoryDatabase(), cost_model=spy)
    rounds = []
    while True:
        cands = ctx.generate_measure_candidates()
        if cands is None:
            break
        rounds.append([int(tvm_ffi.structural_hash(c.sch.mod)) for c in cands])
    ctx.post_tuning()
    inst = strat
    assert sum(len(r) for r in rounds) == 24 and len(rounds) == 3
    assert len(spy.seen) == 3 and [len(s) for s in spy.seen] == inst.learned_calls
    drafted = inst.seen                     # hashes of every drafted candidate
    for scored, measured in zip(spy.seen, rounds):
        assert 0 < len(scored) <= 32
        assert set(scored) <= drafted
        assert set(measured) <= set(scored)
    # the draft model, not the learned one, explored the population: >= one draft round
    assert inst.draft_calls >= 64
    # no candidate measured twice
    flat = [h for r in rounds for h in r]
    assert len(flat) == len(set(flat))


@pytest.mark.slow      # about 30 s alone, 55-70 s on a loaded 2-core machine
def test_tiny_pruner_tuning_run_writes_the_database(tmp_path, target, monkeypatch,
                                                    require_extra):
    require_extra("xgboost", "tvm")
    pytest.importorskip("torch")
    from vtatune.backends.tvm import pruner
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db
    monkeypatch.setitem(pruner.DEFAULTS, "population", 64)
    monkeypatch.setitem(pruner.DEFAULTS, "draft_size", 32)
    url = f"sqlite:///{tmp_path / 'records.db'}"
    model = load_model("toy", with_reference=False)
    with open_db(url) as db:
        rep = tune_model(model, target, db, trials=4, batch=4, seed=0, cost_model="xgb",
                         strategy="pruner", kernels=["fused_matmul_add1"])
        recs = db.records()
    assert rep.measured == 4 and len(recs) == 4
    assert {r.backend for r in recs} == {"metaschedule"} and any(r.ok for r in recs)
    assert rep.search["strategy"] == "pruner"
    assert rep.search["learned_calls_per_round"] and \
        all(0 < n <= 32 for n in rep.search["learned_calls_per_round"])


def test_cli_offers_the_pruner_strategy(capsys):
    from vtatune.cli.main import main
    with pytest.raises(SystemExit) as exc:
        main(["tvm", "tune", "toy", "--trials", "4", "--strategy", "annealing"])
    assert exc.value.code == 2
    assert "pruner" in capsys.readouterr().err
