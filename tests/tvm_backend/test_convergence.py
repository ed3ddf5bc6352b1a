"""The convergence check of the transfer-tuning benchmark (issue 16)."""
import math

import pytest

from vtatune.backends.tvm.convergence import convergence
from vtatune.errors import ConfigurationError


def test_a_still_improving_curve_is_not_converged():
    # best-so-far 100 until trial 75, then 90 at trial 90: a 10 % gain in the last quarter
    lat = [100.0] * 75 + [95.0] * 15 + [90.0] * 10
    c = convergence(lat)
    assert not c.converged and c.window == 25 and c.gain == pytest.approx(0.10)
    assert "NOT converged" in c.describe()


def test_a_flat_tail_is_converged_and_failures_do_not_count():
    lat = [120.0, math.inf, 100.0] + [101.0] * 70 + [float("nan")] * 2 + [99.0] + [105.0] * 23
    c = convergence(lat)  # 100 -> 99 in the last quarter: 1 %
    assert c.converged and c.gain == pytest.approx(0.01)


def test_bad_inputs_are_typed():
    with pytest.raises(ConfigurationError) as ei:
        convergence([1.0, 2.0], last=0.5, tol=-1)
    assert ei.value.field == "tol"
    with pytest.raises(ConfigurationError) as ei:
        convergence([math.inf] * 8)
    assert ei.value.field == "latencies"
    with pytest.raises(ConfigurationError) as ei:
        convergence([1.0], last=0.25)
    assert ei.value.field == "latencies"
