"""Storage contract (SQLite and, when a server is given, PostgreSQL): insert-or-ignore, queries,
best-config lookup, stats, schema version, URLs, SQLite WAL and lock retries."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from db_workers import HW, KEY, make_record

from vtatune.db.records import workload_key
from vtatune.errors import SchemaVersionError, StorageError

OTHER_HW = "pynq_4x8_i8w8a32_15_16_16_18"
OTHER_KEY = workload_key("dense_packed.vta", [["TENSOR", [1, 32, 1, 16], "int8"],
                                              ["TENSOR", [64, 32, 16, 16], "int8"], None,
                                              "int32"])


def test_add_and_read_back_every_field(db):
    recs = [make_record(i) for i in range(5)] + [make_record(9, error_no=4)]
    assert db.add(recs) == 6
    assert db.records() == recs  # every field round-trips, in insertion order


def test_same_record_twice_is_inserted_once(db):
    r = make_record(1)
    assert db.add([r]) == 1
    assert db.add([r]) == 0
    assert db.add([make_record(2), make_record(2)]) == 1  # duplicates within one call
    # the dedupe key ignores the costs: the same measurement reported again is dropped ...
    assert db.add([make_record(1, cost=0.5)]) == 0
    # ... a deliberate re-measurement takes a new attempt, another source is another record
    assert db.add([make_record(1, cost=0.5, attempt=1)]) == 1
    assert db.add([make_record(1, source="imported")]) == 1
    assert len(db.records()) == 4
    assert db.add([]) == 0


def test_records_filters(db):
    db.add([make_record(1), make_record(2, hw=OTHER_HW), make_record(3, key=OTHER_KEY),
            make_record(4, source="predicted")])
    assert [r.config_index for r in db.records()] == [1, 2, 3, 4]
    assert [r.config_index for r in db.records(workload_key=KEY)] == [1, 2, 4]
    assert [r.config_index for r in db.records(hw=OTHER_HW)] == [2]
    assert [r.config_index for r in db.records(KEY, HW, "predicted")] == [4]
    assert [r.config_index for r in db.records(source=("measured", "imported"))] == [1, 2, 3]
    assert db.records(workload_key="nope") == []
    with pytest.raises(StorageError, match="source"):
        db.records(source="guessed")


def test_workload_name_filled_in_later(db):
    imported = make_record(1, source="imported")
    imported.workload_name = ""
    db.add([imported])
    assert db.records()[0].workload_name == ""
    db.add([make_record(2)])  # knows the name resnet18.C2
    assert {r.workload_name for r in db.records()} == {"resnet18.C2"}


def test_best_lowest_mean_cost_failures_ignored(db):
    from vtatune.db import best_config
    from vtatune.db.best import best_record

    db.add([
        make_record(1, cost=0.004),
        make_record(2, cost=0.001, error_no=4),            # failed: never best
        make_record(3, cost=0.0001, source="predicted"),    # predicted: not a measurement
        make_record(4, cost=0.003),
        make_record(5, cost=0.002, hw=OTHER_HW),            # another hardware
        make_record(6, cost=0.003, timestamp=1.0),          # ties with 4, stored later
        make_record(7, cost=0.0035, source="imported"),
    ])
    best = db.best(KEY, HW)
    assert [r.config_index for r in best] == [4]
    assert [r.config_index for r in db.best(KEY, HW, k=4)] == [4, 6, 7, 1]
    assert best_config(db, KEY, HW) == make_record(4).config
    assert best_record(db, KEY, OTHER_HW).config_index == 5
    assert best_config(db, OTHER_KEY, HW) is None
    assert db.best("nope", HW) == []


def test_best_across_target_strings_of_one_model(db):
    """AutoTVM keys the best by target model: TopHub's older target string counts too."""
    a = make_record(1, cost=0.004)
    b = make_record(2, cost=0.001, source="imported")
    b.target = f"ext_dev -device=vta -keys=cpu -model={HW}"
    db.add([a, b])
    assert [r.config_index for r in db.best(KEY, HW)] == [2]


def test_best_by_runner_matches_whole_label_parts(db):
    import dataclasses
    labels = {1: "pynq[fsim]/x/unclocked/single/tvm-0.14", 2: "pynq/b.bit/100MHz/single/tvm-0.14",
              3: "pynq/c.bit/142MHz/single/tvm-0.14", 4: "tsim/x/single", 5: "pynqish/x"}
    db.add([dataclasses.replace(make_record(i, cost=0.001 * i), runner=lab)
            for i, lab in labels.items()])

    def best(prefix):
        return [r.config_index for r in db.best(KEY, HW, k=9, runner_prefix=prefix)]
    assert best("pynq") == [2, 3]  # neither the fsim stand-in's records nor "pynqish"
    assert best("pynq/c.bit") == [3] and best("pynq/c.bit/") == [3]
    assert best("pynq[fsim]") == [1] and best("tsim") == [4] and best(None) == [1, 2, 3, 4, 5]
    assert best("pynq/b") == []  # a part is matched whole, not as a prefix of "b.bit"


def test_measured_indices(db):
    db.add([make_record(1), make_record(2, error_no=2), make_record(3, source="imported"),
            make_record(4, source="predicted"), make_record(5, hw=OTHER_HW),
            make_record(6, key=OTHER_KEY)])
    assert db.measured_indices(KEY, HW) == {1, 2, 3}
    assert db.measured_indices(KEY, HW, sources=("measured",)) == {1, 2}
    assert db.measured_indices(KEY, HW, sources=("measured", "imported", "predicted")) == {
        1, 2, 3, 4}
    assert db.measured_indices(KEY, OTHER_HW) == {5}
    assert db.measured_indices("nope", HW) == set()


def test_stats(db):
    db.add([make_record(1), make_record(2, error_no=2), make_record(3, source="imported"),
            make_record(4, source="predicted", error_no=2), make_record(5, hw=OTHER_HW),
            make_record(6, key=OTHER_KEY)])
    s = db.stats()
    assert s["total"] == 6
    assert s["workload"] == {KEY: 5, OTHER_KEY: 1}
    assert s["hw"] == {HW: 5, OTHER_HW: 1}
    assert s["source"] == {"measured": 4, "imported": 1, "predicted": 1}
    assert s["error_no"] == {0: 4, 2: 2}
    assert sum(g["count"] for g in s["groups"]) == 6
    assert {"workload_key": KEY, "workload_name": "resnet18.C2", "hw": HW,
            "source": "predicted", "error_no": 2, "count": 1} in s["groups"]


def test_reopen_keeps_records(db_url):
    from vtatune.db import open_db

    with open_db(db_url) as a:
        a.add([make_record(1)])
    with open_db(db_url) as b:
        assert len(b.records()) == 1


def test_newer_schema_refused(db_url):
    import sqlalchemy as sa

    from vtatune.db import open_db
    from vtatune.db.storage import SCHEMA_VERSION

    open_db(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
                     {"v": str(SCHEMA_VERSION + 1)})
    engine.dispose()
    with pytest.raises(SchemaVersionError) as info:
        open_db(db_url)
    assert info.value.found == SCHEMA_VERSION + 1 and info.value.supported == SCHEMA_VERSION
    assert isinstance(info.value, StorageError)


def test_foreign_tables_refused(tmp_path):
    from vtatune.db import open_db

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE records (x INTEGER)")
    with pytest.raises(SchemaVersionError, match="no meta"):
        open_db(f"sqlite:///{path}")


# ---------------------------------------------------------------------- URLs and SQLite
def test_default_url_is_a_file_in_the_working_directory(tmp_path, monkeypatch):
    from vtatune.db import open_db

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VTATUNE_DB", raising=False)
    with open_db() as db:
        db.add([make_record(1)])
        assert db.url == "sqlite:///vtatune.db"
    assert (tmp_path / "vtatune.db").is_file()
    other = tmp_path / "env.db"
    monkeypatch.setenv("VTATUNE_DB", f"sqlite:///{other}")
    with open_db() as db:
        assert db.records() == []
    assert other.is_file()
    with open_db(f"sqlite:///{tmp_path / 'arg.db'}") as db:  # an argument beats the env
        assert db.url.endswith("arg.db")


def test_sqlite_wal_and_busy_timeout(tmp_path):
    from vtatune.db import open_db

    path = tmp_path / "w.db"
    with open_db(f"sqlite:///{path}") as db:
        db.add([make_record(1)])
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_sqlite(tmp_path):
    from vtatune.db import open_db

    with open_db("sqlite://") as db:
        assert db.add([make_record(1), make_record(1)]) == 1
        assert len(db.records()) == 1


def test_bad_urls_raise_storage_error(tmp_path):
    from vtatune.db import open_db

    with pytest.raises(StorageError, match="not a database URL"):
        open_db("no url at all")
    with pytest.raises(StorageError, match="unsupported database"):
        open_db("mysql://u:p@localhost/db")
    with pytest.raises(StorageError, match="unable to open"):  # driver error, wrapped
        open_db(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_password_hidden_in_url():
    from vtatune.db.storage import Database

    with pytest.raises(StorageError) as info:
        Database("mysql://user:secret@host/db")
    assert "secret" not in str(info.value)


def _hold_write_lock(path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_locked_database_is_retried(tmp_path):
    """A writer meeting 'database is locked' after its busy timeout (1 s here) retries with
    backoff until the lock is free."""
    from vtatune.db import open_db

    path = tmp_path / "l.db"
    db = open_db(f"sqlite:///{path}", timeout=4.0)  # busy timeout 1 s, retries for 4 s
    ready = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 2.0, ready))
    holder.start()
    ready.wait(5)
    t0 = time.monotonic()
    assert db.add([make_record(1)]) == 1
    waited = time.monotonic() - t0
    holder.join()
    assert waited > 1.5
    db.close()


def test_lock_held_too_long_raises_storage_error(tmp_path):
    from vtatune.db import open_db

    path = tmp_path / "l.db"
    db = open_db(f"sqlite:///{path}", timeout=1.0)
    ready = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 3.0, ready))
    holder.start()
    ready.wait(5)
    with pytest.raises(StorageError, match="locked"):
        db.add([make_record(1)])
    holder.join()
    assert db.add([make_record(1)]) == 1  # the next call works
    db.close()


# ---------------------------------------------------------------------- foreign and newer files
def _foreign_sqlite(path) -> bytes:
    """An SQLite file of another application (rollback journal, one table with rows)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("a",), ("b",)])
    conn.commit()
    conn.close()
    return path.read_bytes()


def _sqlite_state(path) -> tuple[str, list[str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        conn.close()
    return mode, tables


@pytest.mark.parametrize("readonly", [True, False])
def test_foreign_sqlite_file_is_refused_and_left_byte_identical(tmp_path, readonly):
    """vtatune used to add its tables to another application's SQLite file and switch it to
    WAL; now the file is refused, typed and named, before anything is written."""
    from vtatune.db import open_db
    from vtatune.errors import ForeignDatabaseError

    path = tmp_path / "other.db"
    before = _foreign_sqlite(path)
    with pytest.raises(ForeignDatabaseError, match="not a vtatune database") as info:
        open_db(f"sqlite:///{path}", readonly=readonly)
    assert str(path) in str(info.value) and info.value.tables == ["notes"]
    assert isinstance(info.value, SchemaVersionError)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal / -shm left
    assert _sqlite_state(path) == ("delete", ["notes"])


def test_db_stats_command_on_a_foreign_file_changes_nothing(tmp_path, capsys):
    from vtatune.cli.main import main

    path = tmp_path / "other.db"
    before = _foreign_sqlite(path)
    assert main(["db", "stats", "--db", f"sqlite:///{path}"]) == 1
    assert "not a vtatune database" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert _sqlite_state(path) == ("delete", ["notes"])


def test_not_an_sqlite_file_is_a_storage_error_and_unchanged(tmp_path):
    from vtatune.db import open_db

    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, not a database\n" * 200)
    for readonly in (True, False):
        with pytest.raises(StorageError, match="not a database"):
            open_db(f"sqlite:///{path}", readonly=readonly)
        assert path.read_bytes() == b"just some text, not a database\n" * 200


def _newer_schema_sqlite(path, version: int) -> bytes:
    """A database as a later vtatune might write it, in rollback-journal mode."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, payload TEXT)")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("readonly", [True, False])
def test_newer_schema_file_is_refused_before_anything_changes(tmp_path, readonly):
    """The version used to be checked after WAL had been switched on (the header changed)."""
    from vtatune.db import open_db
    from vtatune.db.storage import SCHEMA_VERSION

    path = tmp_path / "newer.db"
    before = _newer_schema_sqlite(path, SCHEMA_VERSION + 1)
    assert before[18:20] == b"\x01\x01"  # file format bytes: rollback journal (WAL is 2, 2)
    with pytest.raises(SchemaVersionError) as info:
        open_db(f"sqlite:///{path}", readonly=readonly)
    assert info.value.found == SCHEMA_VERSION + 1
    assert path.read_bytes() == before
    assert _sqlite_state(path) == ("delete", ["meta", "records"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.db"]


def test_readonly_missing_file_is_a_typed_error_and_creates_nothing(tmp_path):
    from vtatune.db import open_db
    from vtatune.errors import DatabaseNotFoundError

    url = f"sqlite:///{tmp_path / 'missing.db'}"
    with pytest.raises(DatabaseNotFoundError, match="no such database file") as info:
        open_db(url, readonly=True)
    assert info.value.url == url and url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_readonly_empty_file_is_a_typed_error_and_stays_empty(tmp_path):
    from vtatune.db import open_db
    from vtatune.errors import DatabaseNotFoundError

    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(DatabaseNotFoundError, match="empty database"):
        open_db(f"sqlite:///{path}", readonly=True)
    assert path.read_bytes() == b""
    with open_db(f"sqlite:///{path}") as db:  # a writable open creates the schema in it
        assert db.add([make_record(1)]) == 1
    assert _sqlite_state(path) == ("wal", ["meta", "records", "targets", "workloads"])


def test_readonly_reads_a_vtatune_file_without_writing(tmp_path):
    from vtatune.db import open_db

    path = tmp_path / "r.db"
    recs = [make_record(1), make_record(2, error_no=4)]
    with open_db(f"sqlite:///{path}") as db:
        db.add(recs)
    before = path.read_bytes()
    with open_db(f"sqlite:///{path}", readonly=True) as db:
        assert db.readonly
        assert db.records() == recs
        assert db.stats()["total"] == 2
        assert [r.config_index for r in db.best(KEY, HW)] == [1]
        with pytest.raises(StorageError, match="read-only"):
            db.add([make_record(3)])
        with pytest.raises(StorageError, match="read-only"):
            db.ensure_workload("another key")
    assert path.read_bytes() == before


def test_foreign_tables_refused_on_every_database(db_url):
    """SQLite and PostgreSQL alike: tables of another application and no meta table are
    refused, read-only or not, and nothing is added next to them."""
    import sqlalchemy as sa

    from vtatune.db import open_db
    from vtatune.errors import ForeignDatabaseError

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)"))
        conn.execute(sa.text("INSERT INTO invoices (id, amount) VALUES (1, 42)"))
    try:
        for readonly in (True, False):
            with pytest.raises(ForeignDatabaseError, match="invoices"):
                open_db(db_url, readonly=readonly)
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == ["invoices"]
            assert conn.execute(sa.text("SELECT amount FROM invoices")).scalar() == 42
    finally:
        engine.dispose()


def test_readonly_empty_database_is_not_created(db_url):
    import sqlalchemy as sa

    from vtatune.db import open_db
    from vtatune.errors import DatabaseNotFoundError

    if db_url.startswith("sqlite"):  # an existing, empty SQLite file
        sqlite3.connect(db_url[len("sqlite:///"):]).close()
    with pytest.raises(DatabaseNotFoundError, match="empty database"):
        open_db(db_url, readonly=True)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()


def test_readonly_refuses_writes_even_through_the_driver(db_url):
    """A read-only Database never writes: its own calls refuse, and the connection itself is
    read-only (SQLite mode=ro, PostgreSQL read-only sessions)."""
    import sqlalchemy as sa

    from vtatune.db import open_db

    open_db(db_url).close()
    with open_db(db_url, readonly=True) as db:
        with pytest.raises(StorageError, match="read-only|readonly"):
            db._run(lambda conn: conn.execute(sa.text("CREATE TABLE sneaky (i INTEGER)")),
                    write=False)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert "sneaky" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_newer_schema_refused_read_only_too(db_url):
    import sqlalchemy as sa

    from vtatune.db import open_db
    from vtatune.db.storage import SCHEMA_VERSION

    open_db(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '7' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError) as info:
        open_db(db_url, readonly=True)
    assert (info.value.found, info.value.supported) == (7, SCHEMA_VERSION)


# ---------------------------------------------------------------------- hostile arguments
@pytest.mark.parametrize("url", [
    "postgresql://u:p@host:notaport/db",
    "postgresql://u:p@[::1/db",
    "sqlite:///x.db?timeout=abc",
    "sqlite:///x.db?check_same_thread=maybe",
    "sqlite:///x\x00.db",
    "sqlite://host/x.db",
    "postgresql+nosuchdriver://u@h/d",
    "",
])
def test_hostile_urls_are_storage_errors(url, tmp_path, monkeypatch):
    from vtatune.db import open_db

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VTATUNE_DB", "nonsense://")  # "" falls back to the environment
    with pytest.raises(StorageError):
        open_db(url)
    assert list(tmp_path.iterdir()) == []


def test_url_of_the_wrong_type_is_a_storage_error(tmp_path):
    from vtatune.db.storage import Database

    with pytest.raises(StorageError, match="URL is a string"):
        Database(tmp_path / "x.db")  # a Path, not a URL
    with pytest.raises(StorageError, match="timeout"):
        Database("sqlite://", timeout="soon")


def test_best_k_must_be_a_count(db):
    from vtatune.errors import ConfigurationError

    db.add([make_record(1), make_record(2)])
    assert db.best(KEY, HW, k=0) == []
    assert len(db.best(KEY, HW, k=5)) == 2
    for k in (-1, 1.5, "2", True):
        with pytest.raises(ConfigurationError, match="number of best records"):
            db.best(KEY, HW, k=k)


def test_add_refuses_what_no_database_can_store(db):
    """Text with NUL or lone surrogates and out-of-range numbers used to reach the driver
    (a traceback, or a whole batch lost); now a typed error names the field and nothing of
    the batch is stored."""
    from vtatune.errors import ConfigurationError

    cases = {"target": "ext_dev -model=a\x00b", "workload_name": "\ud800",
             "config_index": 2 ** 63, "timestamp": float("nan"), "error_no": 2 ** 31,
             "session": "s\x00"}
    for field, value in cases.items():
        bad = make_record(2)
        setattr(bad, field, value)
        with pytest.raises(ConfigurationError, match=field):
            db.add([make_record(1), bad])
    assert db.records() == []
    assert db.add([make_record(1)]) == 1


@pytest.mark.parametrize("readonly", [True, False])
def test_sqlite_url_of_a_device_or_directory_is_refused(tmp_path, readonly):
    """/dev/null used to pass as an empty database (a write open then failed with a disk
    I/O error); a directory failed in the driver."""
    from vtatune.db import open_db

    for target in ("/dev/null", str(tmp_path)):
        with pytest.raises(StorageError, match="not a regular file"):
            open_db(f"sqlite:///{target}", readonly=readonly)
    assert list(tmp_path.iterdir()) == []


def test_a_record_damaged_outside_vtatune_is_a_storage_error(db_url):
    """A row edited by hand (config not JSON, a negative attempt) used to raise a bare
    JSONDecodeError / ConfigurationError from deep inside a query."""
    import sqlalchemy as sa

    from vtatune.db import open_db

    with open_db(db_url) as db:
        db.add([make_record(1), make_record(2)])
    engine = sa.create_engine(db_url)
    for column, value in (("config", "{not json"), ("attempt", -4)):
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE records SET {column} = :v WHERE config_index = 2"),
                         {"v": value})
        with open_db(db_url, readonly=True) as db:
            with pytest.raises(StorageError, match=r"record \d+ is damaged"):
                db.records()
            assert [r.config_index for r in db.best(KEY, HW)] == [1]  # other rows still read
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE records SET config = :c, attempt = 0 "
                                 "WHERE config_index = 2"),
                         {"c": '{"index":2}'})
    engine.dispose()
