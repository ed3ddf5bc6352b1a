"""The shared search loop: screened proposals are never measured, told or counted; an init
strategy's probe is measured first and its seeded batch is the tuner's first plan; the
acquisition weight steers the model's plan; the session stores screened configurations as
predicted records that never reach export, resume or labels."""
import math
import time

import numpy as np
import pytest

from vtatune.autotune.search import search
from vtatune.space import ConfigSpace, digits_of
from vtatune.tuning import MeasureOutcome, create_tuner

XGB = pytest.mark.requires("xgboost", "tune")


def grid_space() -> ConfigSpace:
    s = ConfigSpace(name="grid")
    s.define_knob("x", list(range(20)))
    s.define_knob("y", list(range(20)))
    return s


def throughput(i: int) -> float:
    """Valid when x + y < 20 (half the grid); fastest at x = 9, y = 9 (index 189)."""
    x, y = i % 20, i // 20
    return 0.0 if x + y >= 20 else 1.0 / (1 + (x - 9) ** 2 + (y - 9) ** 2)


class Recorder:
    def __init__(self):
        self.calls: list[list[int]] = []

    def __call__(self, indices):
        self.calls.append(list(indices))
        return [MeasureOutcome(i, (1.0 / throughput(i),), 0, 1.0) if throughput(i) > 0
                else MeasureOutcome(i, (1e9,), 2, 1.0) for i in indices]


class EvenScreen:
    """Keeps only even indices (any deterministic rule shows the contract)."""

    def keep(self, indices):
        return np.asarray(indices) % 2 == 0


def test_screened_proposals_are_never_measured_told_or_counted():
    space = grid_space()
    told: list[int] = []
    measure = Recorder()

    def make(hook):
        t = create_tuner("random", space, seed=1, init=hook)
        original = t.update
        t.update = lambda outs: (told.extend(o.index for o in outs), original(outs))[1]
        return t
    res = search(make, measure, 50, batch=16, screen=EvenScreen())
    measured = [i for c in measure.calls for i in c]
    assert len(measured) == 50 == res.measured == len(res.outcomes)   # budget = measurements
    assert all(i % 2 == 0 for i in measured) and sorted(told) == sorted(measured)
    assert res.screened and all(i % 2 == 1 for i in res.screened)
    assert not set(res.screened) & set(measured)


class ProbeInit:
    def __init__(self):
        self.seen_probe = None

    def probe(self, space, rng):
        return [0, 1, 2]

    def first_batch(self, space, n, rng, probed):
        self.seen_probe = [o.index for o in probed]
        return [100 + k for k in range(n)]


def test_probe_is_measured_first_and_the_seeded_batch_is_the_first_plan():
    space = grid_space()
    measure, init = Recorder(), ProbeInit()
    tuners = []

    def make(hook):
        t = create_tuner("random", space, seed=0, init=hook)
        tuners.append(t)
        return t
    res = search(make, measure, 30, batch=8, init=init, space=space)
    assert measure.calls[0] == [0, 1, 2] and init.seen_probe == [0, 1, 2]
    assert measure.calls[1] == [100 + k for k in range(8)]      # the seeded plan, in order
    assert res.probed == 3 and res.measured == 30
    assert {0, 1, 2} <= {o.index for o in tuners[0].history}     # probed outcomes were told


def test_init_strategy_needs_the_space():
    from vtatune.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match="space"):
        search(lambda h: None, Recorder(), 5, init=ProbeInit())


@XGB
def test_acquisition_weight_keeps_the_plan_out_of_a_zero_weight_region():
    space = grid_space()
    idx = np.arange(space.size)
    scores = np.array([throughput(i) for i in idx])

    def run(weight):
        t = create_tuner("xgb", space, seed=3, plan_size=32, loss_type="reg",
                         acquisition_weight=weight, min_score=None, eps_greedy=0.0)
        b = t.next_batch(32)
        t.update([MeasureOutcome(i, (1.0 / scores[i],), 0, 1.0) if scores[i] > 0
                  else MeasureOutcome(i, (1e9,), 2, 1.0) for i in b])
        return t.trials
    # forbid the upper half (y >= 10) through the weight alone
    weight = lambda d: (d[:, 1] < 10).astype(float)  # noqa: E731  (digits: x, y)
    plan = run(weight)
    ys = digits_of(np.asarray(plan), space.dims)[:, 1]
    assert len(plan) and (ys < 10).all()
    assert (digits_of(np.asarray(run(None)), space.dims)[:, 1] >= 10).any()


# ------------------------------------------------------------- session: predicted records
def test_screened_configurations_are_predicted_records_only(tmp_path, verdict_pool):
    from vtatune.autotune import tune
    from vtatune.db import open_db
    from vtatune.db.autotvm import export_log
    from vtatune.task import VtaTask
    db = open_db(f"sqlite:///{tmp_path / 's.db'}")
    task = VtaTask.create("resnet18.C10", "pynq_1x16_i8w8a32_15_15_18_17")
    s = tune(task, db=db, tuner="random", n_trial=20, pool=verdict_pool, screen=EvenScreen())
    predicted = db.records(workload_key=task.key, source="predicted")
    measured = db.records(workload_key=task.key, source="measured")
    assert s.new == 20 == len(measured) and s.screened == len(predicted) > 0
    assert all(r.reason == "screened" and r.config_index % 2 == 1 for r in predicted)
    assert all(r.config_index % 2 == 0 for r in measured)
    n = export_log(db, str(tmp_path / "out.log"))
    assert n == 20   # predicted records never exported
    # a resumed run counts only measurements
    again = tune(task, db=db, tuner="random", n_trial=20, pool=verdict_pool, screen=EvenScreen())
    assert again.resumed == 20 and again.new == 0
    from vtatune.validity import record_labels
    labels = record_labels(db.records(workload_key=task.key))
    assert sorted(labels.indices.tolist()) == sorted(r.config_index for r in measured)
    db.close()
    assert math.isfinite(s.best_cost)


def test_the_seeded_plan_has_the_tuners_plan_size_even_with_small_batches():
    space = grid_space()
    asked = []

    class Seed:
        def probe(self, space, rng):
            return []

        def first_batch(self, space, n, rng, probed):
            asked.append(n)
            return list(range(200, 200 + n))
    measure = Recorder()
    search(lambda hook: create_tuner("ga", space, seed=0, init=hook, pop_size=24), measure, 30,
           batch=4, init=Seed(), space=space)
    assert asked == [24]
    assert [i for c in measure.calls for i in c][:24] == list(range(200, 224))
