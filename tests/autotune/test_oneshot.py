"""The One-Shot Tuner on VTA spaces (issue 15 item 4): offline data from exhaustive tables →
balanced training → one batch of top-k through the shared database, with a frozen predictor;
the balanced weights on a hand-computed histogram; Kendall's τ against scipy."""
import pathlib
import sys
import time

import numpy as np
import pytest

from vtatune.autotune.oneshot import (
    FEATURE_NAMES,
    OneShotData,
    OneShotPredictor,
    OneShotTuner,
    balanced_weights,
    build_data,
    kendall_tau,
    normalised_throughput,
    sample_task,
)

pytestmark = pytest.mark.requires("xgboost", "tune")

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"
HW = "pynq_1x16_i8w8a32_15_15_18_17"
TRAIN = ("resnet18.C10", "resnet18.C11", "deepbench.21")
HELD_OUT = "resnet18.C9"


@pytest.fixture(scope="module")
def tables():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_validity
        import oneshot_data
    finally:
        sys.path.remove(str(SCRIPTS))
    tabs = bench_validity.load_tables(["docs/data/resnet18_tsim.jsonl",
                                       "docs/data/deepbench_tsim.jsonl"])
    return bench_validity, oneshot_data, tabs


@pytest.fixture(scope="module")
def trained(tables, tmp_path_factory):
    _, od, tabs = tables
    tabs = {k: v for k, v in tabs.items() if k[0] == HW}
    entries = od.table_entries(tabs, only=set(TRAIN) | {HELD_OUT})
    data = build_data([e for e in entries if e[0]["name"] in TRAIN], np.random.default_rng(0))
    path = tmp_path_factory.mktemp("oneshot") / "data.npz"
    data.save(path)
    again = OneShotData.load(path)
    assert np.array_equal(again.x, data.x) and np.allclose(again.y, data.y)
    pred = OneShotPredictor(rounds=60).fit(again)
    held = next(e for e in entries if e[0]["name"] == HELD_OUT)
    return again, pred, held


def test_sampling_is_biased_to_the_fast_configurations():
    rng = np.random.default_rng(1)
    cost = np.full(400, np.inf)
    cost[:200] = np.arange(1, 201, dtype=float)      # index i valid, rank i
    idx = sample_task(cost, rng)
    valid = idx[idx < 200]
    assert valid.size == 120 and (idx >= 200).sum() == 30          # 60 % of 200, a quarter
    assert set(range(20)) <= set(valid.tolist())                    # the fastest 10 % always
    assert (valid < 100).sum() > 2 * (valid >= 100).sum()           # fast half dominates
    lab = normalised_throughput(cost)
    assert lab[0] == 1.0 and lab[199] == pytest.approx(1 / 200) and lab[300] == 0.0


def test_balanced_weights_hand_computed():
    # 4 bins over [0, 1]: [0, .25) holds 3, [.25, .5) none, [.5, .75) one, [.75, 1] two;
    # 3 non-empty bins, n = 6: weight n / (3 * count)
    w = balanced_weights([0.0, 0.0, 0.0, 0.5, 1.0, 1.0], bins=4)
    assert np.allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0, 1.0, 1.0])
    assert w.sum() == pytest.approx(6.0)
    assert np.allclose(balanced_weights([0.3, 0.3, 0.3]), 1.0)


def test_kendall_tau_matches_scipy():
    from scipy.stats import kendalltau
    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    b = a + rng.normal(scale=0.7, size=300)
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b)[0], abs=1e-12)
    ta, tb = np.round(a), np.round(b * 2) / 2                      # many ties (τ-b)
    assert kendall_tau(ta, tb) == pytest.approx(kendalltau(ta, tb)[0], abs=1e-12)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_held_out_tau_is_computed_on_the_unseen_task(trained):
    from scipy.stats import kendalltau
    data, pred, (_, task, cost) = trained
    assert HELD_OUT not in {t["name"] for t in data.tasks}
    assert pred.info["tasks"] and all(HELD_OUT not in t for t in pred.info["tasks"])
    v = np.isfinite(cost)
    s = pred.predict_task(task.workload, task.hw, task.space)[v]
    tau = kendall_tau(s, 1 / cost[v])
    assert tau == pytest.approx(kendalltau(s, 1 / cost[v])[0], abs=1e-12)
    assert tau > 0.3      # a useful ranking of a layer it never saw


class TablePool:
    """Answers measurements from the held-out task's exhaustive tsim table."""
    n = 2

    def __init__(self, cost):
        self.cost, self.calls = cost, []

    def measure(self, inputs):
        from vtatune.measure import MeasureResult
        self.calls.append([inp.config.index for inp in inputs])
        return [MeasureResult((float(self.cost[inp.config.index]),), 0, 0.0, time.time())
                if np.isfinite(self.cost[inp.config.index])
                else MeasureResult((1e9,), 2, 0.0, time.time(), "sram_overflow", "table")
                for inp in inputs]

    def close(self):
        pass


def test_one_batch_of_top_k_through_the_database_with_a_frozen_predictor(trained, tmp_path,
                                                                         monkeypatch):
    from vtatune.autotune import tune
    from vtatune.db import open_db
    _, pred, (_, task, cost) = trained
    before = pred.fingerprint()

    def no_refit(*a, **k):
        raise AssertionError("the one-shot predictor was refitted during tuning")
    monkeypatch.setattr(OneShotPredictor, "fit", no_refit)
    db = open_db(f"sqlite:///{tmp_path / 'o.db'}")
    k = 8
    pool = TablePool(cost)
    opts = {"task": task, "predictor": pred, "n_trial": k}
    s = tune(task, db=db, tuner="oneshot", n_trial=k, pool=pool, tuner_options=opts)
    order = np.argsort(-pred.predict_task(task.workload, task.hw, task.space), kind="stable")
    measured = sorted(r.config_index for r in db.records(workload_key=task.key, source="measured"))
    assert s.new == k and measured == sorted(order[:k].tolist())
    assert [i for c in pool.calls for i in c] == order[:k].tolist()   # in predicted order
    assert pred.fingerprint() == before
    best = min(cost[i] for i in order[:k])
    assert s.best_cost == pytest.approx(best)
    # resumed from the database: nothing measured again
    again = tune(task, db=db, tuner="oneshot", n_trial=k, pool=TablePool(cost), tuner_options=opts)
    assert again.resumed == k and again.new == 0
    db.close()


def test_tuner_never_updates_and_ranks_rejected_configurations_last(trained):
    data, pred, (_, task, cost) = trained
    valid = np.isfinite(cost)
    t = OneShotTuner(task.space, task=task, predictor=pred, valid=lambda idx: valid[idx])
    batch = t.next_batch(16)
    assert all(valid[i] for i in batch) and all(t.sources[i] == "model" for i in batch)
    fp = pred.fingerprint()
    from vtatune.tuning import MeasureOutcome
    t.update([MeasureOutcome(i, (float(cost[i]),), 0, 1.0) for i in batch])
    assert pred.fingerprint() == fp and t.next_batch(4) == t.order[16:20].tolist()
    assert len(FEATURE_NAMES) == data.x.shape[1]


def test_the_tuner_needs_its_task():
    from vtatune.errors import ConfigurationError
    from vtatune.task import VtaTask
    task = VtaTask.create(HELD_OUT, HW)
    with pytest.raises(ConfigurationError, match="task"):
        OneShotTuner(task.space, predictor=OneShotPredictor())


def test_eps_random_replaces_the_tail_of_the_batch(trained):
    _, pred, (_, task, _) = trained
    t = OneShotTuner(task.space, task=task, predictor=pred, eps_random=0.25, n_trial=8, seed=1)
    batch = t.next_batch(4) + t.next_batch(4)
    assert batch[:6] == t.order[:6].tolist()
    assert [t.sources[i] for i in batch] == ["model"] * 6 + ["random"] * 2
