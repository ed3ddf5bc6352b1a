"""Fixtures of the database tests: every test on SQLite in tmp_path and on PostgreSQL
(``pg_url`` of tests/conftest.py: a fresh schema per test; see scripts/ci_postgres.sh)."""
from __future__ import annotations

import pytest


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
