"""Compiler profiles: ``tvm-0.14`` reproduces the original stack's ``InjectCopyIntrin``
failures (counts from exhaustive runs of TVM v0.14 + VTA, issue 12), ``native`` accepts
those configurations and its programs are right (fsim vs numpy, tsim's race check)."""
from collections import Counter

import pytest

from vtatune.compiler.copy_pattern import CopyStmt, PadAxis, match_copy_pattern
from vtatune.compiler.program import compile_program, lowering_for
from vtatune.compiler.profiles import PROFILES
from vtatune.compiler.sweep import sweep, verdict
from vtatune.errors import ConfigurationError, InvalidConfigError, MeasureError
from vtatune.hardware.config import HwConfig
from vtatune.measure.runners import evaluate, runner_for
from vtatune.space import space_for
from vtatune.task import VtaTask
from vtatune.workloads.suites import suite

from .conftest import check_verdicts_equal_compilation


def _threads_ragged(wl, knobs, hw):
    """Hand rule from the schedule: a cthread split by 2 of an odd number of tiles."""
    oh = (wl.height + 2 * wl.pad_h - wl.kernel_h) // wl.stride_h + 1
    co_tiles = wl.out_channels // hw.block_out // knobs["tile_co"]
    h_tiles = oh // knobs["tile_h"]
    return ((knobs["oc_nthread"] == 2 and co_tiles % 2 == 1)
            or (knobs["h_nthread"] == 2 and h_tiles % 2 == 1))


def test_copy_pattern_rules_on_hand_built_statements():
    ok = CopyStmt("x", False, (PadAxis("rows", 3, True), PadAxis("cols", 5, True)))
    match_copy_pattern(ok)  # loops on every padded axis: lowers
    cases = [(CopyStmt("x", True), "copy_pattern_guarded", "not a 'BufferStoreNode'"),
             (CopyStmt("x", False, (PadAxis("rows", 1, True),)), "copy_pattern_clip_bound",
              "clip bound is 0"),
             (CopyStmt("x", False, (PadAxis("rows", 3, True), PadAxis("cols", 1, False))),
              "copy_pattern_no_load", "nullptr"),
             # a guard is found before the pad condition is looked at
             (CopyStmt("x", True, (PadAxis("rows", 1, True),)), "copy_pattern_guarded", "BufferStore")]
    for stmt, reason, text in cases:
        with pytest.raises(InvalidConfigError) as err:
            match_copy_pattern(stmt)
        assert err.value.reason == reason and text in err.value.message
        assert int(err.value.category) == 2


def test_resnet18_profiles_differ_by_the_388_ragged_thread_configurations():
    """The original refuses 388 ResNet-18 configurations vtatune's lowering compiles, every
    one with a thread knob at 2 (issue 12); here they are exactly the ragged splits."""
    hw = HwConfig.load()
    extra, total = [], 0
    for wl in suite("resnet18"):
        if not wl.offloadable:
            continue
        native = {r["index"]: r for r in sweep(wl, hw, profile="native")}
        for r in sweep(wl, hw, profile="tvm-0.14"):
            total += 1
            assert not r["valid"] or native[r["index"]]["valid"]  # never accepts more
            if native[r["index"]]["valid"] and not r["valid"]:
                knobs = space_for(wl.bind(hw), hw).get(r["index"]).knobs
                extra.append((wl.name, r["index"], r["reason"], _threads_ragged(wl, knobs, hw)))
    assert total == 13760
    assert len(extra) == 388
    assert {reason for *_, reason, _ in extra} == {"copy_pattern_guarded"}
    assert all(ragged for *_, ragged in extra)


def test_one_row_padded_tiles_fail_the_clip_bound_test():
    """DeepBench's 1x1 / pad 3 / stride 2 layer: 72 configurations that pass vtatune's own
    lowering fail in the original with "the size of clip bound is 0" (issue 12)."""
    hw = HwConfig.load()
    wl = [w for w in suite("deepbench") if (w.kernel_h, w.pad_h, w.stride_h) == (1, 3, 2)][0].bind(hw)
    space = space_for(wl, hw)
    kinds = Counter()
    for i in range(space.size):
        knobs = space.get(i).knobs
        try:  # the lowering and runtime checks alone (the sweep before this profile existed)
            low = lowering_for(wl, knobs, hw)
            low.check_lowering("native")
            low.check_runtime()
        except MeasureError:
            continue
        ok, _, reason, _ = verdict(wl, knobs, hw, "tvm-0.14")
        if not ok:
            kinds[reason] += 1
            if reason == "copy_pattern_clip_bound":
                assert knobs["tile_h"] == 1  # one output row, 1x1 kernel: one input row
    assert kinds["copy_pattern_clip_bound"] == 72


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", ["resnet18.C9", "deepbench.48", "mobilenet.D7", "dense.0"])
def test_verdict_equals_full_compilation_per_profile(name, profile):
    check_verdicts_equal_compilation(name, 30, 7, profile)


def test_fully_padded_tile_is_refused_by_the_sweep_as_by_compilation():
    """A 1x1 / pad-3 layer tiled one row at a time has tiles whose input window is all
    padding: the load's y_size would be negative.  The sweep sees it (issue 12 item 7)."""
    hw = HwConfig.load()
    wl = [w for w in suite("deepbench") if (w.kernel_h, w.pad_h, w.stride_h) == (1, 3, 2)][0].bind(hw)
    space = space_for(wl, hw)
    for i in range(space.size):
        knobs = space.get(i).knobs
        if knobs["tile_h"] != 1:
            continue
        low = lowering_for(wl, knobs, hw)
        try:
            low.check_lowering("native")
            low.check_runtime()
        except MeasureError:
            continue
        break
    # rows of tile 0: padded rows 0 of 13, i.e. input row -3: above the image
    assert low.rows == 1 and wl.pad_h == 3
    ok, cat, reason, msg = verdict(wl, knobs, hw, "native")
    assert (ok, cat, reason) == (False, 5, "field_overflow") and "y_size" in msg
    with pytest.raises(InvalidConfigError) as err:
        compile_program(wl, knobs, hw, profile="native")
    assert err.value.reason == "field_overflow"


def test_native_extra_configurations_run_correctly_and_race_free():
    """Configurations only the native profile accepts: fsim matches numpy, tsim finds no race."""
    hw = HwConfig.load()
    picked = []
    for name in ("resnet18.C9", "resnet18.C11", "dense.0"):
        task = VtaTask.create(name, hw, sync="single", profile="native")
        for i in range(task.space.size):
            knobs = task.space.get(i).knobs
            if verdict(task.workload, knobs, hw, "native")[0] and not verdict(task.workload, knobs, hw, "tvm-0.14")[0]:
                picked.append((task, i))
                break
    assert len(picked) == 3
    for task, i in picked:
        for sync in ("single", "tvm-0.14"):
            t = VtaTask(task.workload, hw, sync, "native")
            ev = evaluate(t, i, "tsim", check=True)
            assert ev.correct, (t.name, i, sync)
            assert ev.execution.result.races == [], (t.name, i, sync)
        with pytest.raises(InvalidConfigError):
            compile_program(task.workload, task.space.get(i).knobs, hw, profile="tvm-0.14")


def test_profile_is_part_of_the_task_and_runner_identity():
    hw = HwConfig.load()
    with pytest.raises(ConfigurationError) as err:
        VtaTask.create("resnet18.C9", hw, profile="tvm-014")
    assert err.value.field == "profile"
    a = VtaTask.create("resnet18.C9", hw)
    b = VtaTask.create("resnet18.C9", hw, profile="native")
    for kind in ("fsim", "tsim"):
        r = runner_for(kind)
        assert r.label(a) != r.label(b) and "native" in r.label(b) and "tvm-0.14" in r.label(a)
    assert a.key == b.key  # the workload key is the task's, not the compiler's
    import pickle
    assert pickle.loads(pickle.dumps(b)).profile == "native"
