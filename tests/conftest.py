"""Shared fixtures, and the policy for tests that need an optional extra.

* ``@pytest.mark.requires("xgboost", "tune")`` (module, extra): the test needs that module.
  Without it the test is skipped with the install hint — except under CI (``CI`` set to
  anything but ``""``/``0``/``false``/``no``), where it fails: the CI job (scripts/test.sh)
  installs every extra, so a missing one is a broken job, not a reason to skip.
* The same holds for ``pytest.importorskip`` anywhere in the suite: under CI its skip is
  turned into a failure (at test level), and a test module skipped as a whole while being
  collected is replaced by one failing item.
"""
import importlib
import os
import pathlib
import uuid

import pytest

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def ref_dir() -> pathlib.Path:
    return DATA / "reference-programs"


# ---------------------------------------------------------------------------- optional extras
def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str):
    """Fail under CI, skip otherwise; never returns."""
    if in_ci():
        pytest.fail(f"CI installs every extra the tests use, but {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(module: str, extra: str):
    """Import ``module`` (of the ``vtatune[extra]`` extra) or fail (CI) / skip (elsewhere)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = exc
    _missing(f"the test needs {module!r}: pip install 'vtatune[{extra}]' ({error})")


@pytest.fixture(scope="session")
def require_extra():
    """The function ``require_module(module, extra)``, for conftest fixtures of a folder."""
    return require_module


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        require_module(*mark.args, **mark.kwargs)


def _raised_by_importorskip(excinfo) -> bool:
    tb = excinfo.tb
    while tb is not None:
        if tb.tb_frame.f_code is pytest.importorskip.__code__:
            return True
        tb = tb.tb_next
    return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if (rep.skipped and in_ci() and call.excinfo is not None
            and call.excinfo.errisinstance(pytest.skip.Exception)
            and _raised_by_importorskip(call.excinfo)):
        rep.outcome = "failed"
        rep.longrepr = (f"CI installs every extra the tests use, but pytest.importorskip "
                        f"skipped {item.nodeid}: {call.excinfo.value.msg}")
    return rep


class _SkippedModule(pytest.Item):
    """Stands for a test module that skipped itself while being collected (a module-level
    ``pytest.importorskip``) under CI, and fails with the skip's reason."""

    def __init__(self, *, reason: str, **kw):
        super().__init__(**kw)
        self.reason = reason

    def runtest(self):
        pytest.fail(f"CI installs every extra the tests use, but this whole module was skipped: "
                    f"{self.reason}", pytrace=False)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: skipped module"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    rep = yield
    if rep.skipped and in_ci() and isinstance(collector, pytest.Module):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        item = _SkippedModule.from_parent(collector, name="module-skipped-under-CI", reason=reason)
        rep = pytest.CollectReport(rep.nodeid, "passed", None, [item])
    return rep


# ---------------------------------------------------------------- PostgreSQL
PG_ENV = "VTATUNE_TEST_POSTGRES_URL"


def postgres_base_url() -> str:
    """The PostgreSQL test URL; without it the test fails under CI and is skipped otherwise."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        msg = (f"{PG_ENV} is not set: start a server with "
               f"'export {PG_ENV}=\"$(bash scripts/ci_postgres.sh)\"'")
        if in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests, but {msg}", pytrace=False)
        pytest.skip(f"no PostgreSQL server for this run ({msg})")
    return url


@pytest.fixture
def pg_url():
    """A URL whose connections use a fresh schema (dropped afterwards), so tests never see
    each other's tables, nor touch the database's own."""
    base = postgres_base_url()
    sa = pytest.importorskip("sqlalchemy")
    schema = f"vtatune_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


# ---------------------------------------------------------------- a pool without measuring
class VerdictPool:
    """A measurement pool that answers from the compiler's verdict: valid configurations
    get a synthetic latency, invalid ones their category and reason."""

    n = 2

    def measure(self, inputs):
        import time

        from vtatune.compiler.sweep import verdict
        from vtatune.measure import MeasureResult
        out = []
        for inp in inputs:
            ok, cat, reason, msg = verdict(inp.task.workload, inp.config.knobs, inp.task.hw)
            out.append(MeasureResult((1e-3 * (1 + inp.index % 7),), 0, 0.0, time.time()) if ok
                       else MeasureResult((1e9,), cat, 0.0, time.time(), reason, msg))
        return out

    def close(self):
        pass


@pytest.fixture
def verdict_pool():
    return VerdictPool()
