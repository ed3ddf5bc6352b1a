"""Shared fixtures of the apache-tvm backend tests (they need the ``tvm`` and ``models``
extras; scripts/test.sh installs both)."""
from __future__ import annotations

import pytest


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
def tuned(tmp_path_factory, target):
    """The toy model tuned with a tiny budget into a fresh SQLite database: (url, model,
    report).  Shared by the tuning, run, export and transfer tests."""
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
