"""Tuning the two-kernel toy model on llvm through the vtatune database, running it, resuming,
transfer-tuning from it, and the build-timeout path."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")


def test_tiny_tuning_run_stores_every_trial_and_runs_correctly(tuned, target):
    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.env import target_label
    from vtatune.backends.tvm.store import MSDatabase
    from vtatune.db import open_db
    url, model, rep, seen = tuned
    # MetaSchedule may finish the round that crosses the budget: at most one batch more
    assert 12 <= rep.measured <= 12 + 4 and not rep.interrupted
    assert rep.counts["build_timeout"] == 0
    with open_db(url) as db:
        recs = db.records()
        # every measured candidate is a record of this target, with its trace and run times
        assert len(recs) == rep.measured
        assert {r.backend for r in recs} == {"metaschedule"}
        assert {r.hw for r in recs} == {target_label(target)}
        assert all(r.config["trace"] and r.costs for r in recs)
        ok = [r for r in recs if r.ok]
        assert ok and all(0 < r.mean_cost < 1 for r in ok)
        # the progress callback saw the whole budget
        assert seen[0] == (0, 12) and seen[-1][0] == rep.measured
        tuned_exe = runtime.compile_model(model, target, MSDatabase(db, target))
    untuned_exe = runtime.compile_model(model, target)
    out_t = runtime.run(tuned_exe, model, target)[0]
    out_u = runtime.run(untuned_exe, model, target)[0]
    np.testing.assert_allclose(out_t, out_u, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_t, model.reference, rtol=1e-4, atol=1e-5)
    # the tuned build really uses the schedules: the conv kernel is no longer the default
    # single-threaded loop nest, so it is faster
    assert runtime.measure(tuned_exe, model, target, runs=5).median < \
        runtime.measure(untuned_exe, model, target, runs=5).median


def test_rerun_resumes_instead_of_repeating(tuned, target):
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db
    url, model, rep, _ = tuned
    timeouts = rep.counts["build_timeout"] + rep.counts["run_timeout"]
    with open_db(url) as db:
        before = db.count()
        again = tune_model(model, target, db, trials=12, batch=4, seed=0, cost_model="random")
        assert again.measured == 0 and again.resumed_from == rep.measured - timeouts
        assert db.count() == before
        # a larger budget continues from what is stored (kernels resumed at different points
        # are tuned in groups): at least the 4 new trials, at most one batch over
        more = tune_model(model, target, db, trials=rep.measured - timeouts + 4, batch=4,
                          seed=1, cost_model="random")
        assert 4 <= more.measured <= 8
        assert db.count() == before + more.measured


def test_cli_run_and_export_use_the_tuned_records(tuned, tmp_path, capsys):
    from tvm.s_tir import meta_schedule as ms

    from vtatune.cli.main import main
    url, model, _, _ = tuned
    assert main(["tvm", "run", "toy", "--db", url, "--runs", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["max_abs_diff_vs_untuned"] < 1e-4
    assert res["tuned_s"] > 0 and res["untuned_s"] > 0
    assert main(["tvm", "export", str(tmp_path / "ms"), "--db", url, "--json"]) == 0
    from vtatune.db import open_db
    with open_db(url) as db:
        n = db.count()
    assert json.loads(capsys.readouterr().out)["records"] == n
    assert len(ms.database.JSONDatabase(work_dir=str(tmp_path / "ms"))) == n


def test_transfer_to_a_resized_toy_never_slower_than_untuned(tuned, target):
    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.transfer import transfer
    from vtatune.db import open_db
    url, source, _, _ = tuned
    new = load_model("toy:res=24")
    with open_db(url) as db:
        rep = transfer(new, [source], target, db, runs=2)
    conv = next(k for k in rep.kernels if k.klass == "fused_conv2d_add_relu")
    assert conv.candidates == 1                   # the source's one conv kernel
    assert conv.untuned_s is not None
    for k in rep.kernels:
        if k.fixed_s is not None and k.untuned_s is not None:
            assert k.fixed_s <= k.untuned_s       # the fix: never slower than untuned
        if k.faithful_s is not None:              # faithful keeps the best transfer
            assert k.faithful_from.startswith("toy/")
    assert rep.search_s > 0 and rep.measured >= len(rep.kernels)
    for variant in ("faithful", "fixed"):
        exe = runtime.compile_model(new, target, rep.database(variant))
        np.testing.assert_allclose(runtime.run(exe, new, target)[0], new.reference,
                                   rtol=1e-4, atol=1e-5)


def test_reuse_guard_reports_kernels_identical_to_source_kernels(tuned, target):
    """toy:seed=3 has other weights but the same shapes as toy: its kernels are toy's byte
    for byte (weights are arguments), so they are database hits, not transfers; toy:res=24
    shares no kernel."""
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.transfer import transfer, tuned_sources
    from vtatune.db import open_db
    url, source, _, _ = tuned
    with open_db(url) as db:
        tuned_names = {s.kernel for s in tuned_sources(db, target, source)}
        rep = transfer(load_model("toy:seed=3"), [source], target, db, runs=1)
        resized = transfer(load_model("toy:res=24"), [source], target, db, runs=1)
    assert tuned_names  # the fixture tuned at least one kernel
    assert {k.reused_from.split("/", 1)[1] for k in rep.reused} == tuned_names
    assert all(k.reused_from.startswith("toy/") for k in rep.reused)
    assert len(rep.transferred) == len(rep.kernels) - len(tuned_names)
    assert [k.name for k in rep.reused] == [r[0] for r in rep.to_dict()["reused"]]
    assert resized.reused == [] and len(resized.transferred) == len(resized.kernels)


def test_replay_is_inside_the_timed_phase_and_faithful_time_has_no_untuned_runs(
        tuned, target, monkeypatch):
    import time

    from vtatune.backends.tvm import transfer as tt
    from vtatune.backends.tvm.importer import load_model
    from vtatune.db import open_db
    url, source, _, _ = tuned
    calls = []
    orig = tt._apply

    def slow_apply(trace, mod):  # every replay now takes at least 0.4 s
        calls.append(1)
        time.sleep(0.4)
        return orig(trace, mod)
    monkeypatch.setattr(tt, "_apply", slow_apply)
    with open_db(url) as db:
        rep = tt.transfer(load_model("toy:res=24"), [source], target, db, runs=1)
    assert calls and rep.search_s >= 0.4 * len(calls)  # the replays were timed
    assert rep.untuned_s > 0 and rep.faithful_search_s >= 0.4 * len(calls)
    assert rep.faithful_search_s == pytest.approx(rep.search_s - rep.untuned_s)


def test_fixed_variant_keeps_the_untuned_kernel_when_the_transfer_is_slower():
    from vtatune.backends.tvm.transfer import KernelChoice, fix_choice
    slower = KernelChoice("k", "c", 1, untuned_s=1.0, faithful_s=2.0, faithful_from="m/k",
                          faithful_record="rec")
    fix_choice(slower)
    assert (slower.fixed_s, slower.fixed_from, slower.fixed_record) == (1.0, "", None)
    assert slower.faithful_s == 2.0             # faithful keeps the slower transfer
    faster = KernelChoice("k", "c", 1, untuned_s=3.0, faithful_s=2.0, faithful_from="m/k",
                          faithful_record="rec")
    fix_choice(faster)
    assert (faster.fixed_s, faster.fixed_from, faster.fixed_record) == (2.0, "m/k", "rec")
    none_valid = KernelChoice("k", "c", 1, untuned_s=3.0)
    fix_choice(none_valid)
    assert none_valid.fixed_s == 3.0 and none_valid.fixed_record is None


@pytest.mark.parametrize("build, run, secs, expected", [
    (None, None, [1e-3], (0, "")),
    ("vtatune: build timed out after 60 s and again after 240 s alone", None, None,
     (6, "build_timeout")),
    ("vtatune: build error\nTVMError: x", None, None, (2, "build_error")),
    (None, "LocalRunner: Timeout, killed after 30 seconds", None, (7, "run_timeout")),
    (None, "LocalRunner: An exception occurred", None, (4, "run_error")),
    (None, None, [], (4, "run_error")),
])
def test_failure_categories(build, run, secs, expected):
    from vtatune.backends.tvm.tune import classify
    assert classify(build, run, secs) == expected


def test_class_coverage_and_source_selection():
    from vtatune.backends.tvm.importer import Kernel
    from vtatune.backends.tvm.transfer import Source, class_coverage, select_sources
    ks = [Kernel("a", "conv", 2, None, flops=100.0), Kernel("b", "dense", 1, None, flops=50.0)]
    conv = Source("m1", "c", "conv", None, None)
    dense = Source("m2", "d", "dense", None, None)
    assert class_coverage(ks, [conv]) == pytest.approx(200 / 250)
    assert class_coverage(ks, [dense]) == pytest.approx(50 / 250)
    assert select_sources(ks, {"m2": [dense], "m1": [conv]}, 1) == ["m1"]


def test_build_timeouts_are_retried_then_reported_not_counted_as_slow(target):
    """A build that exceeds its timeout is retried alone with a longer one; if that times
    out too it is reported as a build timeout (error 6), never as a valid or slow schedule."""
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from vtatune.backends.tvm.builder import BUILD_TIMEOUT_TAG, RetryingBuilder
    from vtatune.backends.tvm.tune import classify
    a = te.placeholder((64,), name="A")
    b = te.compute((64,), lambda i: a[i] + 1.0, name="B")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b])})
    slow = RetryingBuilder(max_workers=1, timeout_sec=0.001, retry_factor=1.0)
    try:
        (res,) = slow.build([BuilderInput(mod, target)])
    finally:
        slow.shutdown()
    assert res.artifact_path is None and res.error_msg.startswith(BUILD_TIMEOUT_TAG)
    assert slow.stats == {"built": 0, "failed": 0, "retried": 1, "timed_out": 1}
    assert classify(res.error_msg, None) == (6, "build_timeout")
    ok = RetryingBuilder(max_workers=1, timeout_sec=120)
    try:
        (res,) = ok.build([BuilderInput(mod, target)])
    finally:
        ok.shutdown()
    assert res.error_msg is None and res.artifact_path
    assert ok.stats["built"] == 1
    # a build that times out once and succeeds when retried alone is a success
    retried = RetryingBuilder(max_workers=1, timeout_sec=0.001, retry_factor=1e5)
    try:
        (res,) = retried.build([BuilderInput(mod, target)])
    finally:
        retried.shutdown()
    assert res.error_msg is None and res.artifact_path
    assert retried.stats == {"built": 1, "failed": 0, "retried": 1, "timed_out": 0}


def test_cli_rejects_bad_arguments_with_typed_errors(capsys):
    from vtatune.cli.main import main
    assert main(["tvm", "tune", "toy", "--trials", "0"]) == 2
    assert "--trials must be at least 1" in capsys.readouterr().err
    assert main(["tvm", "tasks", "nosuchnet"]) == 1
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err
    assert main(["tvm", "tasks", "toy", "--target", "llvm -mcpu=x"]) == 1
    assert "target:" in capsys.readouterr().err


def test_cli_transfer_reports_both_variants_end_to_end(tuned, capsys):
    from vtatune.cli.main import main
    url, _, _, _ = tuned
    assert main(["tvm", "transfer", "toy:res=24", "--from", "toy", "--db", url, "--runs", "1",
                 "--e2e-runs", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"] == ["toy"]
    assert set(out["latency_s"]) == {"untuned", "faithful", "fixed"}
    assert all(v > 0 for v in out["latency_s"].values())
    assert out["speedup"]["fixed"] == pytest.approx(out["latency_s"]["untuned"]
                                                    / out["latency_s"]["fixed"])
    assert {k["klass"] for k in out["kernels"]} >= {"fused_conv2d_add_relu"}
    # a source spec with options survives the comma-separated --from list
    from vtatune.cli.tvm_cmd import _split_sources
    assert _split_sources("resnet18:res=64,width=0.5,mobilenetv2") == \
        ["resnet18:res=64,width=0.5", "mobilenetv2"]
    assert _split_sources("a:x=1;b:y=2,z=3") == ["a:x=1", "b:y=2,z=3"]
