"""The stream-length limit in the sweep: bounds from the host program's statement counts,
an exact counting emission between them, both equal to what full emission produces."""
import random

import pytest

from vtatune.compiler import ir
from vtatune.compiler.program import check_config, compile_program
from vtatune.compiler.runtime import Runtime
from vtatune.compiler.stream_size import (LIMIT, TOKENS_PER_SCOPE, count_instructions,
                                          statement_counts, stream_bounds)
from vtatune.compiler.sweep import verdict
from vtatune.errors import InvalidConfigError, MeasureError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload

SAMPLE = ["resnet18.C2", "resnet18.C9", "mobilenet.D3", "dense.0", "dcgan.CT2", "resnet18.C4.bias",
          "deepbench.48"]


def _emitted(low, hw, sync):
    low.place({name: (0, size) for name, size in low.region_sizes().items()})
    rt = Runtime(hw)
    ir.emit(ir.finalize(low.build_ir(), sync), {}, rt)
    return len(rt)


@pytest.mark.parametrize("name", SAMPLE)
def test_counts_and_bounds_match_emission(name):
    hw = HwConfig.load()
    wl = get_workload(name, hw).bind(hw)
    space = space_for(wl, hw)
    rng = random.Random(11)
    checked = 0
    for i in rng.sample(range(space.size), min(space.size, 120)):
        if checked >= 16:
            break
        try:
            low = check_config(wl, space.get(i).knobs, hw, "native")
        except MeasureError:
            continue
        raw = statement_counts(low.build_ir())
        for sync in ("tvm-0.14", "single"):
            n = _emitted(low, hw, sync)
            assert count_instructions(low, hw, sync) == n, (i, sync)
            lower, upper = stream_bounds(low, sync)
            assert lower <= n <= upper
            tokens = statement_counts(ir.finalize(low.build_ir(), sync))["tokens"]
            assert tokens <= TOKENS_PER_SCOPE * raw["scopes"]
            assert n <= raw["payloads"] + raw["kernels"] + TOKENS_PER_SCOPE * raw["scopes"] + 5
            checked += 1
    assert checked >= 4


def test_sweep_sees_the_stream_limit():
    """deepbench.4 (112x112, 64->128, 3x3) with unit tiles needs 4.0 M instructions in the
    v0.14 scheme: refused, as compilation refuses it; with two output rows per tile (index
    1) it needs 2.0 M, just under the 2,097,146 the runtime takes."""
    hw = HwConfig.load()
    wl = get_workload("deepbench.4", hw).bind(hw)
    space = space_for(wl, hw)
    ok, cat, reason, msg = verdict(wl, space.get(0).knobs, hw)
    assert (ok, cat, reason) == (False, 4, "insn_stream_too_large") and "4,014,087" in msg
    low = check_config(wl, space.get(1).knobs, hw)
    assert count_instructions(low, hw, "tvm-0.14") == 2_007_047 <= LIMIT
    assert verdict(wl, space.get(1).knobs, hw)[0]
    # the single-pass scheme needs fewer tokens: index 0 fits there
    assert count_instructions(check_config(wl, space.get(0).knobs, hw), hw, "single") <= LIMIT


@pytest.mark.slow
def test_stream_limit_verdict_equals_compilation():
    hw = HwConfig.load()
    wl = get_workload("deepbench.4", hw).bind(hw)
    knobs = space_for(wl, hw).get(0).knobs
    with pytest.raises(InvalidConfigError) as err:
        compile_program(wl, knobs, hw)
    assert err.value.reason == "insn_stream_too_large"
