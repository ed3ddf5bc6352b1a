"""Exhaustive exploration through the tuning pipeline, resume, and E1/E3 on its table."""
from collections import Counter

import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.db import open_db
from vtatune.errors import ConfigurationError, IncompleteStudyError
from vtatune.measure.runners import runner_for
from vtatune.study import (
    MISSING,
    VALID,
    StudyData,
    analyse,
    cost_model_study,
    explore,
    invalid_by_reason,
    load_study,
)
from vtatune.task import VtaTask

SMALL = "conv2d:1,4,4,32,32,3,1,1"   # 144 configurations, 30 valid, five invalid reasons
TINY = "conv2d:1,4,4,16,16,3,1,1"    # 36 configurations


def _tsim_records(db, task):
    label = runner_for("tsim").label(task)
    return [r for r in db.records(workload_key=task.key, hw=task.hw.name, source="measured")
            if r.runner == label]


def test_exploration_stores_every_configuration_once_and_resumes(tmp_path):
    task = VtaTask.create(SMALL)
    size = task.space.size
    db = open_db(f"sqlite:///{tmp_path / 'study.db'}")
    calls = []
    summary, data = explore(task, "tsim", db=db, workers=2,
                            on_progress=lambda s, n: calls.append(n))
    assert summary.new == size and summary.resumed == 0 and not summary.interrupted
    assert sum(calls) == size            # the progress callback saw every measurement
    recs = _tsim_records(db, task)
    assert sorted(r.config_index for r in recs) == list(range(size))
    assert data.complete and data.size == size

    # E1 against compile-only verdicts computed here, independently of the records
    verdicts = [verdict(task.workload, task.space.get(i).knobs, task.hw) for i in range(size)]
    expected = Counter("valid" if v[0] else v[2] for v in verdicts)
    e1 = invalid_by_reason(data)
    assert {r["reason"]: r["count"] for r in e1["rows"]} == dict(expected)
    assert e1["invalid_fraction"] == pytest.approx(1 - expected["valid"] / size)
    for r in e1["rows"]:
        assert r["share"] == pytest.approx(expected[r["reason"]] / size)
    assert np.array_equal(data.valid, np.array([v[0] for v in verdicts]))
    # throughput = flops / mean cost of the record, 0 where invalid
    by_index = {r.config_index: r for r in recs}
    i = int(np.flatnonzero(data.valid)[0])
    assert data.throughput[i] == pytest.approx(task.flops / by_index[i].mean_cost)
    assert np.all(data.throughput[~data.valid] == 0)

    # a rerun measures nothing and stores nothing new
    again, data2 = explore(task, "tsim", db=db, workers=2)
    assert again.new == 0 and again.resumed == size
    assert len(_tsim_records(db, task)) == size
    assert np.array_equal(data2.label, data.label) and np.array_equal(data2.cost, data.cost)

    # E3 on the explored table: sizes beyond the space dropped, S2 = the valid part of S1
    e3 = cost_model_study(data, sizes=(16, 32, 1000), seeds=3)
    assert e3.sizes == [16, 32] and e3.n_test == expected["valid"]
    assert e3.ks == {"64": 64, "1%": 1}
    rows = {(r["seed"], r["n"], r["scenario"]): r for r in e3.rows}
    for (s, n, sc), r in rows.items():
        if sc == "S1":
            assert r["n_train"] == n
            assert rows[(s, n, "S2")]["n_train"] == r["n_valid_train"] <= n
        for m in e3.metrics:
            assert 0.0 <= r[m] <= 1.0
    assert len(e3.rows) + 2 * sum(e3.skipped.values()) == 2 * 3 * 2
    again3 = cost_model_study(data, sizes=(16, 32), seeds=3)

    def timeless(rs):
        return [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rs]
    assert timeless(again3.rows) == timeless(e3.rows)   # seeded: the same runs again
    db.close()


def test_interrupted_exploration_resumes_without_losing_measurements(tmp_path):
    task = VtaTask.create(TINY)
    db = open_db(f"sqlite:///{tmp_path / 'study.db'}")

    def stop(summary, n):
        if summary.measured >= 8:
            raise KeyboardInterrupt

    summary, data = explore(task, "tsim", db=db, workers=1, on_progress=stop)
    assert summary.interrupted
    stored = len(_tsim_records(db, task))
    assert 8 <= stored < task.space.size
    assert data.n_missing == task.space.size - stored and not data.complete
    assert np.sum(data.label == MISSING) == data.n_missing
    with pytest.raises(IncompleteStudyError) as e:
        analyse(data)
    assert e.value.missing == data.n_missing and e.value.size == task.space.size
    rest, data = explore(task, "tsim", db=db, workers=1)
    assert rest.resumed == stored and rest.new == task.space.size - stored
    assert data.complete
    assert sorted(r.config_index for r in _tsim_records(db, task)) == list(range(36))
    db.close()


def test_records_of_other_runner_labels_are_not_part_of_the_study(tmp_path):
    task = VtaTask.create(TINY)
    db = open_db(f"sqlite:///{tmp_path / 'other.db'}")
    cfg = task.space.get(3)
    db.add([task.record(cfg, costs=[1e-3], runner="fsim", source="measured"),
            task.record(task.space.get(4), costs=[1e-3], runner="tsim/other/00000000",
                        source="measured"),
            task.record(task.space.get(5), costs=[1e-3], source="predicted",
                        runner=runner_for("tsim").label(task))])
    data = load_study(db, task, "tsim")
    assert data.n_missing == task.space.size
    db.close()


def _synthetic(valid_idx, task=None):
    """A study table over TINY's space with a known throughput: a simple function of the
    knob positions on the chosen valid configurations."""
    task = task or VtaTask.create(SMALL)
    space = task.space
    size = space.size
    label = np.zeros(size, dtype=np.int8)
    label[valid_idx] = VALID
    cost = np.full(size, np.inf)
    for i in valid_idx:
        d = space.point2knob(int(i))
        cost[i] = 1e-3 / (1 + 2 * d[1] + d[2] + 0.5 * d[5])
    reason = np.where(label == VALID, "", "made_up").astype(object)
    return StudyData(task.name, task.workload.spec, task.hw.name, "tsim/x", space, 1e9, label,
                     np.where(label == VALID, 0, 2).astype(np.int16), reason, cost)


def test_s2_learns_a_simple_throughput_and_skips_are_counted():
    valid = np.arange(0, 144, 2)   # every second configuration
    e3 = cost_model_study(_synthetic(valid), sizes=(64,), seeds=4)
    s2 = [r for r in e3.rows if r["scenario"] == "S2"]
    assert len(s2) == 4 and not e3.skipped
    assert np.median([r["pairwise"] for r in s2]) > 0.85
    assert np.median([r["ndcg@64"] for r in s2]) > 0.9
    # three valid configurations: most samples of 8 hold fewer than 2 of them
    sparse = cost_model_study(_synthetic(np.array([5, 77, 140])), sizes=(8,), seeds=10)
    assert sparse.skipped.get(8, 0) >= 5
    assert len(sparse.rows) == 2 * (10 - sparse.skipped[8])
    # a single valid configuration: nothing to rank
    assert cost_model_study(_synthetic(np.array([5])), sizes=(8,), seeds=2).rows == []


@pytest.mark.parametrize("kwargs,field", [({"seeds": 0}, "seeds"), ({"k": 0}, "k"),
                                          ({"sizes": (1,)}, "sizes"), ({"sizes": ()}, "sizes"),
                                          ({"top_share": 0}, "top_share")])
def test_bad_e3_settings_name_their_field(kwargs, field):
    with pytest.raises(ConfigurationError) as e:
        cost_model_study(_synthetic(np.arange(10)), **kwargs)
    assert e.value.field == field


def test_bad_exploration_settings_name_their_field(tmp_path):
    task = VtaTask.create(TINY)
    db = open_db(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigurationError) as e:
        explore(task, "tsim", db=db, workers=0)
    assert e.value.field == "workers"
    with pytest.raises(ConfigurationError) as e:
        explore(task, "tsim", db=db, max_size=10)
    assert e.value.field == "space"
    with pytest.raises(ConfigurationError) as e:
        explore(task, "pynq-typo", db=db)
    assert e.value.field == "target"
    assert db.records() == []
    db.close()
