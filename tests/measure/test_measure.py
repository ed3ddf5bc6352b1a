"""Measurement: typed results for every failure, and a worker pool that survives crashed
and hung workers."""
import os
import time


import pytest

from vtatune.errors import ErrorCategory
from vtatune.measure import MeasureInput, MeasurePool, MeasureResult, measure_one
from vtatune.measure.runners import runner_for
from vtatune.task import VtaTask
from vtatune.workloads.workload import WorkloadError

HW = "pynq_1x16_i8w8a32_15_15_18_17"


def mi(workload: str, index: int, target: str = "tsim", sync: str = "single", **kw) -> MeasureInput:
    task = VtaTask.create(workload, HW, sync=sync)
    return MeasureInput(task, task.config(index), runner_for(target), **kw)


def test_valid_measurement_on_tsim_and_fsim():
    r = measure_one(mi("resnet18.C10", 203, sync="tvm-0.14", number=3, check=True))
    assert r.error_no == 0 and len(r.costs) == 3 and len(set(r.costs)) == 1
    assert 0.5e-3 < r.costs[0] < 5e-3  # simulated time per call, seconds
    assert r.extra["instructions"] == 189 and r.extra["races"] == 0
    f = measure_one(mi("resnet18.C10", 203, "fsim"))
    assert f.error_no == 0 and f.costs[0] > 0


def test_invalid_configuration_costs_no_device_time():
    # resnet18.C2 index 191 overflows the input buffer (lowering: category 2)
    r = measure_one(mi("resnet18.C2", 191))
    assert (r.error_no, r.reason) == (ErrorCategory.COMPILE_HOST, "inp_sram_overflow")
    assert r.costs == (1e9,) and r.all_cost < 1.0
    # both thread knobs = 2: the runtime's closure check (category 4)
    from vtatune.compiler.sweep import sweep
    from vtatune.hardware.config import HwConfig
    from vtatune.workloads.suites import get_workload
    hw = HwConfig.load()
    # (on C2: C10's 7 rows split over 2 threads are ragged, which the original refuses
    # earlier, in InjectCopyIntrin)
    idx = next(rec["index"] for rec in sweep(get_workload("resnet18.C2", hw), hw)
               if rec["reason"] == "closure_too_large")
    r = measure_one(mi("resnet18.C2", idx))
    assert (r.error_no, r.reason) == (ErrorCategory.RUNTIME_DEVICE, "closure_too_large")


def test_bad_workload_is_refused_when_the_task_is_built():
    with pytest.raises(WorkloadError, match="not offloadable"):
        VtaTask.create("resnet18.C1", HW)


def test_bad_board_target_is_refused_before_measuring():
    from vtatune.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match="port"):  # tests/measure/test_board_runner.py
        runner_for("pynq://127.0.0.1:0")


def test_result_round_trip():
    r = MeasureResult((0.5, 0.5), 0, 1.0, 123.0, "", "", {"cycles": 9})
    assert MeasureResult.from_dict(r.to_dict()) == r


# --- worker behaviour (module-level functions: picklable for spawned workers) ----------
def flaky_measure(inp, report):
    report("build")
    if inp.index == 1:
        os._exit(3)            # the worker dies
    if inp.index == 2:
        report("run")
        time.sleep(60)         # the worker hangs while running
    if inp.index == 3:
        time.sleep(60)         # ... or while building
    report("run")
    return MeasureResult((inp.index * 1e-3,), 0, 0.0, time.time())


def test_pool_replaces_crashed_and_hung_workers():
    inputs = [mi("resnet18.C10", i) for i in range(8)]
    with MeasurePool(2, build_timeout=2.0, run_timeout=2.0, measure_fn=flaky_measure) as pool:
        t0 = time.monotonic()
        res = pool.measure(inputs)
        elapsed = time.monotonic() - t0
        assert pool.replaced == 3
        # the pool keeps working after the replacements
        again = pool.measure([mi("resnet18.C10", 5)])
    assert elapsed < 30
    assert [r.error_no for r in res] == [0, ErrorCategory.UNKNOWN_ERROR, ErrorCategory.RUN_TIMEOUT,
                                         ErrorCategory.BUILD_TIMEOUT, 0, 0, 0, 0]
    assert res[1].reason == "worker_crashed" and res[2].reason == "run_timeout"
    assert [r.costs[0] for r in res if r.error_no == 0] == [0.0, 4e-3, 5e-3, 6e-3, 7e-3]
    assert again[0].costs == (5e-3,)


def test_pool_runs_real_measurements_in_order():
    inputs = [mi("resnet18.C10", i) for i in (203, 0, 201)]
    with MeasurePool(2) as pool:
        res = pool.measure(inputs)
    direct = [measure_one(i) for i in inputs]
    assert [(r.error_no, r.reason, r.costs) for r in res] == [(d.error_no, d.reason, d.costs) for d in direct]


def test_a_compiler_bug_is_a_crashed_build_not_an_invalid_configuration(monkeypatch):
    from vtatune.errors import InternalCompilerError
    import vtatune.measure.measure as m

    def broken(task, config):
        raise InternalCompilerError("frm/to", "a token between load and store")
    monkeypatch.setattr(m, "compile_config", broken)
    r = measure_one(mi("resnet18.C10", 203))
    assert (r.error_no, r.reason) == (ErrorCategory.COMPILE_HOST, "build_crashed")
    assert "InternalCompilerError" in r.message
