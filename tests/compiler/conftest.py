import random

import pytest

from vtatune.compiler.program import compile_program
from vtatune.compiler.sweep import verdict
from vtatune.errors import InvalidConfigError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.workloads.suites import get_workload


def valid_sample(name: str, n: int, seed: int, hw=None) -> list:
    """``n`` valid configurations of a workload, drawn uniformly with a fixed seed from the
    valid part of its space (decided by the compiler's verdict)."""
    hw = hw or HwConfig.load()
    wl = get_workload(name, hw)
    space = space_for(wl, hw)
    valid = [i for i in range(space.size) if verdict(wl, space.get(i).knobs, hw)[0]]
    rng = random.Random(seed)
    picked = rng.sample(valid, min(n, len(valid)))
    return [(wl, space.get(i), hw) for i in sorted(picked)]


def check_verdicts_equal_compilation(name: str, n: int, seed: int,
                                     profile: str = "tvm-0.14") -> None:
    """``n`` configurations of a workload drawn with ``seed``: the sweep's verdict (valid, or
    category and reason) is what full compilation in ``profile`` gives."""
    hw = HwConfig.load()
    wl = get_workload(name, hw)
    space = space_for(wl, hw)
    for index in random.Random(seed).sample(range(space.size), min(n, space.size)):
        knobs = space.get(index).knobs
        valid, category, reason, _ = verdict(wl, knobs, hw, profile)
        try:
            prog = compile_program(wl, knobs, hw, profile=profile)
        except InvalidConfigError as exc:
            assert (valid, category, reason) == (False, int(exc.category), exc.reason), (index, knobs)
        else:
            assert valid, (index, knobs, reason)
            assert prog.insn_count > 0


@pytest.fixture(scope="session")
def default_hw():
    return HwConfig.load()
