"""`DraftInit` (the first plan = the draft model's fastest predicted-valid configurations)
and `vtatune tune --init draft`.  Validity is checked against the compiler's own verdict
(`compiler.sweep.verdict`) and the order against the draft's latencies of the whole space."""
import json

import numpy as np
import pytest

from vtatune.autotune.draft import DraftInit, draft_model
from vtatune.cli.main import main
from vtatune.compiler.sweep import verdict
from vtatune.db import open_db
from vtatune.errors import ConfigurationError
from vtatune.space.indexing import digits_of
from vtatune.task import VtaTask
from vtatune.tuning import MeasureOutcome

HW = "pynq_1x16_i8w8a32_15_15_18_17"


@pytest.fixture(scope="module")
def task():
    return VtaTask.create("resnet18.C10", HW)


@pytest.fixture(scope="module")
def latency(task):
    d = draft_model(task.space, task.workload, task.hw, task.profile, task.sync)
    return d.latency_ms(digits_of(np.arange(task.space.size), task.space.dims))


def valid(task, i):
    return verdict(task.workload.bind(task.hw), task.space.get(i).knobs, task.hw,
                   task.profile, task.sync)[0]


def test_plan_is_the_fastest_compile_valid_configurations(task, latency):
    d = draft_model(task.space, task.workload, task.hw, task.profile, task.sync)
    plan = DraftInit(d).first_batch(task.space, 16, np.random.default_rng(0))
    assert len(plan) == 16 and len(set(plan)) == 16
    assert all(valid(task, i) for i in plan)
    lat = latency[plan]
    assert np.all(np.diff(lat) >= 0)                      # in draft order, fastest first
    # no compile-valid configuration outside the plan is predicted faster than its slowest
    faster = [i for i in np.flatnonzero(latency < lat.max()) if i not in plan]
    assert not any(valid(task, int(i)) for i in faster)


def test_p_valid_decides_validity_and_probed_are_excluded(task, latency):
    d = draft_model(task.space, task.workload, task.hw, task.profile, task.sync)
    even = lambda idx: (np.asarray(idx) % 2 == 0).astype(float)
    order = [int(i) for i in np.argsort(latency, kind="stable") if np.isfinite(latency[i])]
    expect = [i for i in order if i % 2 == 0]
    probed = [MeasureOutcome(expect[0], [1e-3], 0)]
    plan = DraftInit(d, even).first_batch(task.space, 8, np.random.default_rng(0), probed)
    assert plan == expect[1:9]


def test_bad_arguments_name_the_field(task):
    d = draft_model(task.space, task.workload, task.hw)
    with pytest.raises(ConfigurationError, match="threshold"):
        DraftInit(d, threshold=2)
    with pytest.raises(ConfigurationError, match="p_valid_fn"):
        DraftInit(d, p_valid_fn=0.5)


def test_cli_init_draft_measures_the_draft_plan_first(tmp_path, monkeypatch, verdict_pool,
                                                      capsys, task, latency):
    import vtatune.measure.pool as pool_module
    monkeypatch.setattr(pool_module, "MeasurePool", lambda n: verdict_pool)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert main(["tune", "resnet18.C10", "--trials", "8", "--tuner", "xgb", "--init", "draft",
                 "--db", url, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)[0]
    assert s["new"] == 8 and s["invalid"] == 0
    db = open_db(url)
    got = {r.config_index for r in db.records(workload_key=task.key)}
    db.close()
    d = draft_model(task.space, task.workload, task.hw, task.profile, task.sync)
    assert got == set(DraftInit(d).first_batch(task.space, 8, np.random.default_rng(0)))
