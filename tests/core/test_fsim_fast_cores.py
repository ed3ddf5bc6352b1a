"""fsim's hand-written semantics tests, run once per core.

The tests of ``test_fsim.py``, ``test_fsim_queues.py`` and ``test_acc_pad_revision.py`` build
their programs by hand and compute every expected SRAM/DRAM value with independent numpy
references.  Their simulators are built with the default core (``jit=None``), which follows
``$VTATUNE_FSIM_JIT``; here every one of those tests runs again with the variable set to
"0" (numpy core) and to "1" (compiled core), so both cores meet the same independent
expectations.  The compiled runs need numba (the ``jit`` extra; installed by the test extra,
so CI runs them).
"""
from __future__ import annotations

import importlib

import pytest

from vtatune.sim import fsim as fsim_module

try:
    from . import progs  # noqa: F401  (the modules below import it as a sibling)
    _PKG = __package__
except ImportError:
    _PKG = None

_SOURCES = ("test_fsim", "test_fsim_queues", "test_acc_pad_revision")
for _name in _SOURCES:
    _mod = importlib.import_module(f"{_PKG}.{_name}" if _PKG else _name)
    for _attr in dir(_mod):
        if _attr.startswith("test_"):
            globals()[f"{_attr}__{_name[5:]}"] = getattr(_mod, _attr)


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def fsim_core(request, monkeypatch):
    if request.param == "compiled":
        pytest.importorskip("numba")  # a failure under CI (tests/conftest.py)
    monkeypatch.setenv(fsim_module.JIT_ENV, "1" if request.param == "compiled" else "0")
    return request.param
