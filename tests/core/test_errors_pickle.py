"""Typed errors survive pickling (they cross process boundaries: measurement, study and
benchmark workers), with their message and every attribute."""
import pickle

import pytest

from vtatune import errors as E

CASES = [
    E.ConfigurationError("timing.mem_latency", "must be an integer"),
    E.ValidityModelError("template", "trained for dense"),
    E.InternalCompilerError("frm/to", "no token"),
    E.FieldOverflowError("MEM.y_size", -2, 16, insn_index=7),
    E.InvalidConfigError(E.ErrorCategory.COMPILE_HOST, "copy_pattern_guarded", "Cannot match"),
    E.MeasureError(E.ErrorCategory.RUN_TIMEOUT, "timeout", "ran 10 s"),
    E.SimulationError("bad opcode", insn_index=3, field="opcode"),
    E.TokenDeadlockError("queue empty", insn_index=9),
    E.ResourceLimitError("x_size", 70000, 65535, "too big", insn_index=1),
    E.BundleFormatError("a.npz", "insn", "missing"),
    E.LogFileError("x.log", "not JSON", lineno=4),
    E.SchemaVersionError(3, 2, "sqlite:///x.db"),
    E.UnsupportedError("HW_VER 0.0.1"),
]


@pytest.mark.parametrize("err", CASES, ids=lambda e: type(e).__name__)
def test_round_trip(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and back.args == err.args
    assert back.__dict__ == err.__dict__
