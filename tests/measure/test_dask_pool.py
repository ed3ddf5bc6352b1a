"""The Dask executor: the same records as the local pool, timeouts and dead workers recorded
(never lost, never a hang), typed errors for bad executor strings and unreachable
schedulers.  One LocalCluster of 2 single-thread worker processes serves the module."""
import json
import os
import socket
import sys
import time

import pytest

from vtatune.db import open_db
from vtatune.errors import ConfigurationError, ErrorCategory, MissingDependencyError
from vtatune.measure import MeasureInput, MeasurePool, MeasureResult
from vtatune.measure.executors import executor_for, parse_executor
from vtatune.measure.runners import runner_for
from vtatune.task import VtaTask

pytestmark = pytest.mark.requires("distributed", "cluster")

HW = "pynq_1x16_i8w8a32_15_15_18_17"
#: resnet18.C11's shape (7x7, 3x3 kernel, pad 1, stride 1) with 32 channels: 64
#: configurations, valid ones and several invalid reasons, explored in seconds
LAYER = "conv2d:1,7,7,32,32,3,1,1"


def mi(workload: str, index: int, target: str = "tsim", sync: str = "single") -> MeasureInput:
    task = VtaTask.create(workload, HW, sync=sync)
    return MeasureInput(task, task.config(index), runner_for(target))


@pytest.fixture(scope="module")
def cluster():
    import dask
    from distributed import LocalCluster
    import logging
    # as DaskMeasurePool.local configures the clusters it starts
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.ERROR)
    yield c
    c.close()


@pytest.fixture
def dask_pool(cluster):
    from vtatune.measure.dask_pool import DaskMeasurePool
    with DaskMeasurePool(cluster, build_timeout=60, run_timeout=60) as pool:
        yield pool


def _kinds(results):
    return [(r.error_no, r.reason, r.costs) for r in results]


# ---- typed errors (no cluster needed) ---------------------------------------------------
@pytest.mark.parametrize("text", ["", "dask", "dask://", "dask://host:port", "dask://h:0",
                                  "dask-local:0", "dask-local:two", "ray://h:1", "locale",
                                  None, 3])
def test_bad_executor_strings_name_the_field(text):
    with pytest.raises(ConfigurationError) as e:
        executor_for(text)
    assert e.value.field == "executor"


def test_good_executor_strings():
    assert parse_executor("local").kind == "local"
    assert parse_executor("dask://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_executor("tcp://sched").address == "tcp://sched:8786"
    assert parse_executor("dask-local").n is None
    assert parse_executor("dask-local:3").n == 3
    assert str(parse_executor("tcp://sched:1")) == "dask://sched:1"


def test_unreachable_scheduler_is_a_one_line_configuration_error():
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConfigurationError) as e:
        executor_for(f"dask://127.0.0.1:{port}", connect_timeout=1)
    assert e.value.field == "executor" and "no Dask scheduler" in str(e.value)
    assert "\n" not in str(e.value) and time.monotonic() - t0 < 15


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed -> ImportError
    with pytest.raises(MissingDependencyError, match=r"vtatune\[cluster\]"):
        executor_for("dask-local:1")
    with pytest.raises(ConfigurationError):   # the string is checked first
        executor_for("dask-local:x")
    executor_for("local").close()             # the default needs no extra


def test_bad_pool_arguments_name_their_field(cluster):
    from vtatune.measure.dask_pool import DaskMeasurePool
    for kwargs, field in (({"workers": 0}, "workers"), ({"run_timeout": -1}, "run_timeout"),
                          ({"build_timeout": "1"}, "build_timeout")):
        with pytest.raises(ConfigurationError) as e:
            DaskMeasurePool(cluster, **kwargs)
        assert e.value.field == field
    with pytest.raises(ConfigurationError) as e:
        DaskMeasurePool(42)
    assert e.value.field == "executor"


# ---- same results as the local pool ------------------------------------------------------
def test_same_results_as_the_local_pool(dask_pool):
    inputs = [mi("resnet18.C10", i) for i in (203, 0, 201)] + [mi(LAYER, i) for i in range(6)]
    assert dask_pool.n == 2
    res = dask_pool.measure(inputs)
    with MeasurePool(2) as local:
        ref = local.measure(inputs)
    assert _kinds(res) == _kinds(ref)   # tsim: the cost is deterministic simulated latency
    assert res[0].error_no == 0 and any(r.error_no for r in res)
    assert dask_pool.measure([]) == []


@pytest.mark.parametrize("layer", [LAYER, pytest.param("resnet18.C10", marks=pytest.mark.slow)])
def test_exhaustive_study_stores_the_same_records_as_the_local_pool(dask_pool, tmp_path, layer):
    """The issue's done-when on a real ResNet-18 layer (C10: 480 configurations, slow) and
    on the small stand-in layer (fast)."""
    from vtatune.study import explore
    task = VtaTask.create(layer, HW)
    size = task.space.size

    def rows(db):
        return sorted((r.config_index, r.error_no, r.reason, tuple(r.costs), r.runner, r.source)
                      for r in db.records(workload_key=task.key, hw=task.hw.name))

    dbs = {}
    for name, pool in (("local", None), ("dask", dask_pool)):
        db = dbs[name] = open_db(f"sqlite:///{tmp_path / name}.db")
        seen = []
        summary, data = explore(task, "tsim", db=db, workers=2, pool=pool,
                                on_progress=lambda s, n: seen.append(n))
        assert summary.new == size and data.complete and sum(seen) == size
    local, dask = rows(dbs["local"]), rows(dbs["dask"])
    assert [r[0] for r in dask] == list(range(size))
    assert dask == local
    assert {r[1] for r in dask} > {0}   # valid and invalid configurations both stored
    for db in dbs.values():
        db.close()


# ---- timeouts and dead workers (module-level: importable on the workers) ---------------
def flaky_measure(inp, report):
    report("build")
    if inp.index == 1:
        os._exit(3)            # the worker dies
    if inp.index == 3:
        time.sleep(60)         # the measurement hangs while building
    report("run")
    if inp.index == 2:
        time.sleep(60)         # ... or while running
    return MeasureResult((inp.index * 1e-3,), 0, 0.0, time.time())


def test_timeout_and_dead_worker_are_recorded_like_the_local_pool(cluster):
    from vtatune.measure.dask_pool import DaskMeasurePool
    inputs = [mi(LAYER, i) for i in range(6)]
    with DaskMeasurePool(cluster, build_timeout=1.0, run_timeout=1.0, start_timeout=20.0,
                         measure_fn=flaky_measure) as pool:
        t0 = time.monotonic()
        res = pool.measure(inputs)
        elapsed = time.monotonic() - t0
        assert pool.replaced == 3    # the dead one and the two hung ones
        again = pool.measure([mi(LAYER, 5), mi(LAYER, 4)])   # the pool keeps working
    assert elapsed < 30
    # what MeasurePool records for the same failures (tests/measure/test_measure.py)
    assert [r.error_no for r in res] == [0, ErrorCategory.UNKNOWN_ERROR, ErrorCategory.RUN_TIMEOUT,
                                         ErrorCategory.BUILD_TIMEOUT, 0, 0]
    assert res[1].reason == "worker_crashed" and "died" in res[1].message
    assert res[2].reason == "run_timeout" and res[2].costs == (1e9,)
    assert res[3].reason == "build_timeout"
    assert [r.costs[0] for r in res if r.error_no == 0] == [0.0, 4e-3, 5e-3]
    assert [r.costs for r in again] == [(5e-3,), (4e-3,)]


def test_dask_local_pool_owns_its_cluster():
    pool = executor_for("dask-local:1", run_timeout=30)
    try:
        assert pool.n == 1 and pool.label == "dask-local:1"
        r, = pool.measure([mi("resnet18.C10", 203)])
        assert r.error_no == 0
    finally:
        pool.close()
    assert pool.cluster.status.name == "closed"
    pool.close()   # twice is harmless


# ---- the CLI -----------------------------------------------------------------------------
def test_cli_refuses_a_bad_executor_before_measuring(tmp_path, capsys):
    from vtatune.cli.main import main
    db = tmp_path / "x.db"
    rc = main(["study", LAYER, "--executor", "dask://h:port", "--db", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert rc == 1 and "ConfigurationError: executor:" in err and len(err.splitlines()) == 1
    rc = main(["tune", LAYER, "--executor", "spark", "--db", f"sqlite:///{db}"])
    assert rc == 1 and "executor:" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.slow
@pytest.mark.requires("xgboost", "tune")
@pytest.mark.requires("sklearn", "validity")
@pytest.mark.requires("matplotlib", "viz")
def test_cli_study_on_a_dask_scheduler(cluster, tmp_path, capsys):
    from vtatune.cli.main import main
    db = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "rep"
    rc = main(["study", "conv2d:1,4,4,16,16,3,1,1", "--executor", cluster.scheduler_address,
               "--db", db, "--seeds", "2", "--sizes", "8,16", "-o", str(out), "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    w, = json.loads(stdout)["workloads"]
    assert w["exploration"]["new"] == 36 and w["exploration"]["workers"] == 2
    assert w["exploration"]["executor"].startswith("dask://127.0.0.1:")
    assert "on dask://" in (out / "report.md").read_text()
    rc = main(["tune", "conv2d:1,4,4,16,16,3,1,1", "--executor", cluster.scheduler_address,
               "--db", db, "--tuner", "random", "--trials", "36", "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    s, = json.loads(stdout)
    assert s["resumed"] == 36 and s["new"] == 0   # the study's records, read back
