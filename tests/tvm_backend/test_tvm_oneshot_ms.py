"""The One-Shot Tuner on MetaSchedule (vtatune/backends/tvm/oneshot.py): task features of a
hand-built matmul, offline data from records in the shared SQLite database (labels computed
here), a held-out task ranked by the trained predictor, and the compile-time pipeline end to
end through ``tune_model`` and the CLI: one batch of k, a frozen predictor, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ms_samples import known_latency, matmul, sample


@pytest.fixture(scope="module")
def hp():
    from vtatune.backends.tvm.pruner import HostParams
    return HostParams(peak_flops=64e9, dram_bw=10e9, vector_bits=512, vector_regs=32,
                      l2_bytes=2 << 20, cores=2)


def test_task_features_of_a_hand_builtmatmul():
    from vtatune.backends.tvm.oneshot import TASK_FEATURES, task_features
    f = task_features(matmul(64, 32, 16))
    want = dict.fromkeys(TASK_FEATURES, 0.0)
    # buffers A (64, 32), B (32, 16), C (64, 16): right-aligned in 4 slots
    want.update({"buf0_dim2": 64, "buf0_dim3": 32, "buf1_dim2": 32, "buf1_dim3": 16,
                 # one store: the unscheduled reduction keeps C = 0 in the block's ``init``,
                 # which the analyser does not walk (scheduled candidates decompose it)
                 "buf2_dim2": 64, "buf2_dim3": 16, "n_buffers": 3, "n_stores": 1,
                 "flops": 2 * 64 * 32 * 16, "main_spatial": 64 * 16, "main_reduce": 32,
                 "main_ops": 2, "main_reads": 3, "out_elems": 64 * 16})
    expect = np.log2(1.0 + np.array([want[n] for n in TASK_FEATURES], dtype=float))
    np.testing.assert_allclose(f, expect, rtol=0, atol=1e-12)


def test_offline_data_from_the_shared_database_and_held_out_ranking(target, hp, tmp_path):
    from scipy.stats import kendalltau
    from tvm.s_tir import meta_schedule as ms

    from vtatune.backends.tvm.env import load_intrinsics_for
    from vtatune.backends.tvm.oneshot import (N_CANDIDATE, N_FEATURES, OneShotCostModel,
                                              OneShotMSData, OneShotMSPredictor, build_data,
                                              task_features)
    from vtatune.backends.tvm.store import MSDatabase
    from vtatune.db import open_db
    load_intrinsics_for(target)
    shapes = {"mm64": (64, 64, 64), "mm48": (48, 32, 64), "mm32": (32, 64, 32)}
    train = {name: sample(target, matmul(*s), 70, name) for name, s in shapes.items()}
    with open_db(f"sqlite:///{tmp_path / 'records.db'}") as db:
        store = MSDatabase(db, target)
        for name, (ctx, cands) in train.items():
            store.register(name, ctx.mod)
            wl = store.commit_workload(ctx.mod)
            for c in cands:
                store.commit(ms.database.TuningRecord(c.sch.trace, wl, [known_latency(c.sch.mod)],
                                                      target, c.args_info))
        records = db.records()
    data = build_data(records, target, hp=hp)
    assert data.x.shape == (sum(len(c) for _, c in train.values()), N_FEATURES)
    assert len(data.tasks) == 3 and sorted(t["name"] for t in data.tasks) == sorted(shapes)
    for t, info in enumerate(data.tasks):
        ctx, cands = train[info["name"]]
        lat = np.array([known_latency(c.sch.mod) for c in cands])
        rows = data.task == t
        # labels: best / latency inside the task, in any order of the rows
        np.testing.assert_allclose(np.sort(data.y[rows]), np.sort(lat.min() / lat), rtol=1e-9)
        np.testing.assert_allclose(data.x[rows][:, N_CANDIDATE:],
                                   np.broadcast_to(task_features(ctx.mod),
                                                   (rows.sum(), N_FEATURES - N_CANDIDATE)),
                                   rtol=1e-6)
    path = tmp_path / "d.npz"
    data.save(path)
    back = OneShotMSData.load(path)
    assert back.digest() == data.digest() and back.tasks == data.tasks
    pred = OneShotMSPredictor(rounds=150).fit(back)
    # a held-out shape, ranked by the frozen predictor through the MetaSchedule cost model
    ctx, held = sample(target, matmul(40, 48, 56), 60, "mm40")
    model = OneShotCostModel(pred, hp=hp)
    fp = pred.fingerprint()
    score = model.predict(ctx, held)
    model.update(ctx, held, [])
    assert pred.fingerprint() == fp and model.updates == 1 and model.calls == len(held)
    tau = kendalltau(score, [-known_latency(c.sch.mod) for c in held]).statistic
    assert tau > 0.5, tau
    pred.save(tmp_path / "p.json")
    again = OneShotMSPredictor.load(tmp_path / "p.json")
    assert again.fingerprint() == fp
    np.testing.assert_array_equal(again.predict(data.x[:5]), pred.predict(data.x[:5]))


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory, target, hp):
    """A predictor trained on replayed matmul candidates (no measurement), as a file."""
    from vtatune.backends.tvm.env import load_intrinsics_for
    from vtatune.backends.tvm.oneshot import (N_CANDIDATE, OneShotMSData, OneShotMSPredictor,
                                              candidate_rows)
    load_intrinsics_for(target)
    xs, ys, ts = [], [], []
    for t, shape in enumerate([(64, 64, 64), (16, 32, 16)]):
        ctx, cands = sample(target, matmul(*shape), 60, f"mm{t}")
        lat = np.array([known_latency(c.sch.mod) for c in cands])
        xs.append(candidate_rows(ctx, cands, hp))
        ys.append(lat.min() / lat)
        ts.append(np.full(len(cands), t))
    data = OneShotMSData(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts),
                         [{"name": "mm0", "hw": "x"}, {"name": "mm1", "hw": "x"}], {})
    assert data.x.shape[1] == N_CANDIDATE + 24
    path = tmp_path_factory.mktemp("oneshot") / "pred.json"
    OneShotMSPredictor(rounds=50).fit(data).save(path)
    return path


def test_oneshot_tuning_measures_one_batch_with_a_frozen_predictor_and_resumes(
        target, predictor_file, tmp_path, monkeypatch):
    from vtatune.backends.tvm import oneshot
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.oneshot import OneShotMSPredictor
    # a smaller model-only search than MetaSchedule's 512 x 4 keeps the test short; the
    # pipeline (search -> one batch -> records, frozen predictor, resume) is the same
    monkeypatch.setitem(oneshot.SEARCH, "population", 64)
    monkeypatch.setitem(oneshot.SEARCH, "generations", 1)
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db
    pred = OneShotMSPredictor.load(predictor_file)
    fp = pred.fingerprint()
    model = load_model("toy", with_reference=False)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open_db(url) as db:
        rep = tune_model(model, target, db, trials=100, trials_per_task=4, batch=32,
                         strategy="oneshot", seed=0, kernels=["fused_matmul_add1"],
                         oneshot_model=pred)
        assert rep.measured == 4 and rep.kernels[0]["trials"] == 4
        assert rep.search["oneshot_k"] == 4 and rep.search["oneshot_predictor"] == fp
        # the predictor ranked the population (64) and its one generation of mutants
        assert rep.search["learned_calls_per_round"][0] >= 64
        assert pred.fingerprint() == fp                            # nothing was learned
        stored = [r for r in db.records() if r.workload_name == "fused_matmul_add1"]
        assert len(stored) == 4 and all(r.backend == "metaschedule" for r in stored)
        again = tune_model(model, target, db, trials=100, trials_per_task=4, batch=32,
                           strategy="oneshot", seed=0, kernels=["fused_matmul_add1"],
                           oneshot_model=pred)
        assert again.measured == 0 and again.resumed_from == 4


def test_cli_oneshot_options(tmp_path, capsys, predictor_file):
    from vtatune.cli.main import main
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["tvm", "tune", "toy", "--trials", "4", "--strategy", "oneshot",
                 "--oneshot-model", str(tmp_path / "missing.json"), "--db", db]) == 2
    assert "--oneshot-model" in capsys.readouterr().err
    bad = tmp_path / "vta.json"
    bad.write_text(json.dumps({"format": "vtatune-oneshot-predictor-1"}))
    assert main(["tvm", "tune", "toy", "--trials", "4", "--strategy", "oneshot",
                 "--oneshot-model", str(bad), "--db", db]) == 2
    assert "another format" in capsys.readouterr().err
    assert main(["tvm", "tune", "toy", "--trials", "4", "--oneshot-model",
                 str(predictor_file), "--db", db]) == 2
    assert "needs --strategy oneshot" in capsys.readouterr().err
    assert main(["tvm", "tune", "toy", "--trials", "4", "--strategy", "oneshot",
                 "--cost-model", "random", "--db", db]) == 2
    assert "--cost-model" in capsys.readouterr().err
