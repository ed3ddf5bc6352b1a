import random

import pytest

from vtatune.compiler.sweep import verdict
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


@pytest.fixture(scope="session")
def default_hw():
    return HwConfig.load()
