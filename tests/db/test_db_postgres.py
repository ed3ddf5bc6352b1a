"""PostgreSQL: runs when $VTATUNE_TEST_POSTGRES_URL is set (scripts/ci_postgres.sh starts a
server and prints it); fails instead of skipping when $CI is set.  The storage contract,
AutoTVM round trips and concurrent writers also run on PostgreSQL through the ``db_url``
fixture (tests/db/conftest.py)."""
from __future__ import annotations

from db_workers import HW, KEY, make_record


def test_postgres_server_is_used(pg_url):
    import sqlalchemy as sa

    from vtatune.db import open_db

    with open_db(pg_url) as db:
        assert db.dialect == "postgresql"
        assert db.add([make_record(1), make_record(1)]) == 1
        assert db.best(KEY, HW)[0].config_index == 1
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version_num")).scalar()
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert int(version) >= 120000
    assert {"meta", "workloads", "targets", "records"} <= tables
