"""Shared fixtures of the apache-tvm backend tests (they need the ``tvm`` and ``models``
extras; scripts/test.sh installs both)."""
from __future__ import annotations

import pathlib

import pytest


#: Tests of this folder that take more than 20 s on a 2-core machine (pytest -n 0
#: --durations), besides every test using the ``tuned`` fixture (a MetaSchedule run of
#: about 2 minutes): marked ``slow`` so that ``-m "not slow"`` leaves them out (CI runs them).
SLOW = {"test_build_timeouts_are_retried_then_reported_not_counted_as_slow"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in item.path.parents and (
                "tuned" in getattr(item, "fixturenames", ())
                or getattr(item, "originalname", None) in SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _apache_tvm(require_extra):
    """Every test here needs apache-tvm: without it they are skipped with the install hint,
    and fail under CI (tests/conftest.py), which installs the extra.  Session-scoped, so it
    runs before the session fixtures below that build TVM targets."""
    return require_extra("tvm", "tvm")


@pytest.fixture(scope="session")
def target():
    from vtatune.backends.tvm.env import make_target
    return make_target("llvm")


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, target, require_extra):
    """The toy model tuned with a tiny budget into a fresh SQLite database: (url, model,
    report).  Shared by the tuning, run, export and transfer tests."""
    require_extra("xgboost", "tvm")  # MetaSchedule's XGB cost model
    from vtatune.backends.tvm.importer import load_model
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db

    url = f"sqlite:///{tmp_path_factory.mktemp('tvmdb') / 'records.db'}"
    model = load_model("toy")
    seen = []
    with open_db(url) as db:
        rep = tune_model(model, target, db, trials=12, batch=4, seed=0, cost_model="xgb",
                         progress=lambda done, total: seen.append((done, total)))
    return url, model, rep, seen
