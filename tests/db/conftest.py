"""Fixtures of the database tests: SQLite in tmp_path, and PostgreSQL from
$VTATUNE_TEST_POSTGRES_URL (a fresh schema per test; see scripts/ci_postgres.sh)."""
from __future__ import annotations

import os
import uuid

import pytest

PG_ENV = "VTATUNE_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgres_base_url() -> str:
    """The PostgreSQL test URL; without it the test fails under CI and is skipped otherwise."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        msg = (f"{PG_ENV} is not set: start a server with "
               f"'export {PG_ENV}=\"$(bash scripts/ci_postgres.sh)\"'")
        if _in_ci():
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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    pytest.importorskip("sqlalchemy")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(db_url):
    from vtatune.db import open_db

    d = open_db(db_url)
    yield d
    d.close()
