"""The tuning-record database: one schema for every backend, storage chosen by SQLAlchemy URL.

``open_db(url)`` takes ``url``, else the environment variable ``VTATUNE_DB``, else
``sqlite:///vtatune.db`` (a file in the current directory).  SQLite runs in WAL mode with a
busy timeout, write transactions start with ``BEGIN IMMEDIATE`` and calls that still meet
``database is locked`` are retried with exponential backoff, so several processes on one
machine can share a file.  Several machines use PostgreSQL (``postgresql+psycopg://...``).

Opening never touches a database that is not vtatune's: the schema version is read first,
with nothing written; the schema is created only in an empty database (one with foreign
tables is refused, ``ForeignDatabaseError``), a newer schema is refused before anything is
changed (``SchemaVersionError``), and only then is SQLite switched to WAL.
``open_db(url, readonly=True)`` (the read-only commands) never creates or converts
anything: SQLite is opened with ``mode=ro``, PostgreSQL sessions are read-only, a missing
file or an empty database is ``DatabaseNotFoundError``.

Every public call is one transaction; driver errors come out as ``StorageError``.  Inserting
a record whose (workload, target, config, source, attempt) is already stored does nothing
(insert-or-ignore), so repeated imports and racing writers never duplicate records.

Schema and policies: docs/database.md.
"""
from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import random
import time
from typing import Any, Callable, Iterable, Sequence, TypeVar

try:
    import sqlalchemy as sa
    from sqlalchemy import event
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
except ImportError as _exc:  # pragma: no cover - exercised only without the [db] extra
    from ..errors import StorageError as _StorageError
    raise _StorageError("the tuning database needs SQLAlchemy >= 2: "
                        "pip install 'vtatune[db]'") from _exc

from ..errors import (ConfigurationError, DatabaseNotFoundError, ForeignDatabaseError,
                      SchemaVersionError, StorageError)
from .autotvm import check_record
from .records import (
    MEASUREMENT_SOURCES,
    SOURCES,
    TOOL_VERSION,
    TuningRecord,
    canonical_json,
    config_hash,
)

log = logging.getLogger(__name__)

#: Version of the schema this module reads and writes (stored in the ``meta`` table).
SCHEMA_VERSION = 1
#: Environment variable naming the database URL when none is given.
ENV_VAR = "VTATUNE_DB"
#: URL used when neither an argument nor ``VTATUNE_DB`` gives one.
DEFAULT_URL = "sqlite:///vtatune.db"

_CHUNK = 500  # rows per INSERT / names per IN (...) list
_PG_LOCK_ID = 0x76746174  # advisory lock taken while creating the schema ("vtat")
_T = TypeVar("_T")

# ---------------------------------------------------------------------- schema
metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

meta_table = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

workloads_table = sa.Table(
    "workloads", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    # the key is unique through its hash: keys of any length fit PostgreSQL's index limit
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("backend", sa.String(32), nullable=False),
    sa.UniqueConstraint("key_hash", name="uq_workloads_key"),
)

targets_table = sa.Table(
    "targets", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("hw", sa.Text, nullable=False),
    sa.UniqueConstraint("target", "hw", name="uq_targets_target_hw"),
    sa.Index("ix_targets_hw", "hw"),
)

records_table = sa.Table(
    "records", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("workload_id", _ID, sa.ForeignKey("workloads.id"), nullable=False),
    sa.Column("target_id", _ID, sa.ForeignKey("targets.id"), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("config_index", sa.BigInteger, nullable=True),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("costs", sa.Text, nullable=False),
    sa.Column("mean_cost", sa.Double, nullable=True),  # NULL for failures (mean = inf)
    sa.Column("error_no", sa.Integer, nullable=False),
    sa.Column("all_cost", sa.Double, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("runner", sa.Text, nullable=False, default=""),
    sa.Column("tool_version", sa.Text, nullable=False, default=""),
    sa.Column("raw", sa.Text, nullable=True),
    sa.Column("session", sa.Text, nullable=False, default=""),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    # the runner is part of a measurement's identity: tsim and fsim costs of one
    # configuration are two records
    sa.UniqueConstraint("workload_id", "target_id", "config_hash", "source", "runner", "attempt",
                        name="uq_records_measurement"),
    sa.Index("ix_records_best", "workload_id", "error_no", "mean_cost"),
)

_DEDUPE = ["workload_id", "target_id", "config_hash", "source", "runner", "attempt"]


def key_hash(key: str) -> str:
    """SHA-256 (hex) of a workload key: the unique column of ``workloads``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _chunks(seq: Sequence[_T], n: int = _CHUNK) -> Iterable[Sequence[_T]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


# ---------------------------------------------------------------------- opening
def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$VTATUNE_DB``, else ``sqlite:///vtatune.db``."""
    if url:
        return url
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def open_db(url: str | None = None, *, readonly: bool = False, timeout: float = 120.0,
            echo: bool = False) -> "Database":
    """Open the tuning database at ``url`` (else ``$VTATUNE_DB``, else
    ``sqlite:///vtatune.db``).

    ``readonly=False`` (tuning, imports): an empty database (or a missing SQLite file) gets
    the schema; an existing one must hold vtatune's schema version.  ``readonly=True``
    (stats, export, best, history): nothing is ever created, converted or written — SQLite
    is opened with ``mode=ro`` and never switched to WAL, PostgreSQL sessions are read-only,
    and the write calls (``add``, ``ensure_workload``) raise ``StorageError``; a missing
    SQLite file or an empty database raises ``DatabaseNotFoundError``.

    Either way the version is checked before anything is touched: ``SchemaVersionError``
    for another schema version, ``ForeignDatabaseError`` (a ``SchemaVersionError``) for a
    database holding tables but no vtatune ``meta`` table, ``StorageError`` for anything else
    (a bad URL, a driver error, a file that is not a database).  ``timeout`` bounds the total
    time one call spends waiting for locks and retrying.
    """
    return Database(resolve_url(url), readonly=readonly, timeout=timeout, echo=echo)


def _sqlite_is_file(url: "sa.URL") -> bool:
    db = url.database or ""
    if db in ("", ":memory:") or db.startswith("file::memory:"):
        return False
    return not (_sqlite_uri(url) and "mode=memory" in db)


def _sqlite_uri(url: "sa.URL") -> bool:
    return str(url.query.get("uri", "")).lower() in ("true", "1", "yes", "on")


def _sqlite_path(url: "sa.URL") -> str:
    """The file an SQLite URL names (absolute, as the driver opens it)."""
    db = url.database or ""
    if _sqlite_uri(url) and db.startswith("file:"):
        from urllib.parse import unquote
        path = unquote(db[5:].split("?", 1)[0].split("#", 1)[0])
        if path.startswith("//"):  # file://host/path: SQLite accepts only "" or localhost
            path = "/" + path[2:].split("/", 1)[-1]
        return os.path.abspath(path)
    return os.path.abspath(db)


def _readonly_uri(filename: str) -> str:
    """The driver-level URI opening ``filename`` (a path, or a ``file:`` URI) read-only."""
    from urllib.parse import quote
    if not filename.startswith("file:"):
        return f"file:{quote(filename)}?mode=ro"
    base, _, query = filename.partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("mode=")]
    return base + "?" + "&".join(params + ["mode=ro"])


class Database:
    """A tuning-record database (see the module docstring).  Use ``open_db`` to make one.

    A ``Database`` may be used from several threads; after ``fork`` the child reconnects
    by itself.  Several processes (and machines, with PostgreSQL) may write at once.
    """

    def __init__(self, url: str, *, readonly: bool = False, timeout: float = 120.0,
                 echo: bool = False):
        if isinstance(url, os.PathLike) or not isinstance(url, (str, sa.URL)):
            raise StorageError(f"a database URL is a string (sqlite:///FILE, "
                               f"postgresql+psycopg://...), got {type(url).__name__}")
        try:
            self._url = sa.make_url(url)
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            shown = url if "@" not in str(url) else "(redacted: it contains credentials)"
            raise StorageError(f"not a database URL: {shown!r} ({exc})") from None
        self.url = self._url.render_as_string(hide_password=True)
        self.dialect = self._url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StorageError(f"{self.url}: unsupported database {self.dialect!r} "
                               "(use sqlite:///FILE or postgresql+psycopg://...)")
        self.readonly = bool(readonly)
        try:
            self._timeout = float(timeout)
        except (TypeError, ValueError):
            raise StorageError(f"{self.url}: timeout must be seconds, got {timeout!r}") from None
        if not self._timeout >= 0:
            raise StorageError(f"{self.url}: timeout must be >= 0 seconds, got {timeout!r}")
        self._pid = os.getpid()
        self._wal_ready = False  # WAL only after the version check passed (never readonly)
        kw: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if "\x00" in (self._url.database or ""):
                raise StorageError(f"{self.url}: the file name holds a NUL character")
            busy_s = max(1.0, min(30.0, self._timeout / 4))
            kw["connect_args"] = {"timeout": busy_s}
            if _sqlite_is_file(self._url):
                path = _sqlite_path(self._url)
                if self.readonly and not os.path.exists(path):
                    raise DatabaseNotFoundError(
                        self.url, "no such database file (read-only use never creates one)")
                if os.path.exists(path) and not os.path.isfile(path):
                    raise StorageError(f"{self.url}: not a regular file (a directory or a "
                                       "device), so not a database file")
        else:
            kw["pool_pre_ping"] = True
            if self._url.get_driver_name() in ("psycopg", "psycopg2"):
                kw["connect_args"] = {"connect_timeout": 10}
        try:
            self._engine = sa.create_engine(self._url, **kw)
        except (ImportError, SQLAlchemyError, ValueError, TypeError) as exc:
            hint = " (pip install 'vtatune[db]')" if isinstance(exc, ImportError) else ""
            raise StorageError(f"{self.url}: cannot create the engine: {exc}{hint}") from None
        if self.dialect == "sqlite":
            self._setup_sqlite(busy_s)
        elif self.readonly:
            self._setup_postgres_readonly()
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self._insert = insert
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    def _open(self) -> None:
        """Check the schema version before anything is written, then create the schema (an
        empty database, writable use only) and switch SQLite files to WAL."""
        try:
            version = self._run(self._read_version, write=False)
        except (ValueError, TypeError, OSError) as exc:  # driver arguments from the URL
            raise StorageError(f"{self.url}: cannot connect: {exc}") from None
        if version is None:
            if self.readonly:
                raise DatabaseNotFoundError(
                    self.url, "holds no tuning records yet (an empty database; read-only use "
                              "never creates the schema)")
            self._run(self._create_schema, write=True)
        elif version != SCHEMA_VERSION:
            raise SchemaVersionError(version, SCHEMA_VERSION, self.url)
        if not self.readonly and _sqlite_is_file(self._url) and self.dialect == "sqlite":
            self._wal_ready = True
            self._engine.dispose()  # the next connection switches the file to WAL
            self._run(lambda conn: None, write=False)

    # ------------------------------------------------------------------ plumbing
    def _setup_postgres_readonly(self) -> None:
        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            finally:
                cur.close()
            dbapi_conn.commit()

    def _setup_sqlite(self, busy_s: float) -> None:
        is_file = _sqlite_is_file(self._url)

        if self.readonly and is_file:
            @event.listens_for(self._engine, "do_connect")
            def _read_only(_dialect: Any, _rec: Any, cargs: list, cparams: dict) -> None:
                # the driver opens the file with mode=ro: it can neither create nor change it
                cargs[0] = _readonly_uri(str(cargs[0]))
                cparams["uri"] = True

        @event.listens_for(self._engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # manage transactions ourselves (the "begin" hook below), not pysqlite
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {int(busy_s * 1000)}")
                cur.execute("PRAGMA foreign_keys = ON")
                if is_file and self._wal_ready:
                    deadline = time.monotonic() + busy_s
                    while True:
                        try:
                            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                            break
                        except Exception as exc:  # locked while another process converts
                            if "locked" not in str(exc) or time.monotonic() > deadline:
                                raise
                            time.sleep(0.05)
                    if str(mode).lower() != "wal":
                        log.warning("%s: SQLite refused WAL mode (journal_mode=%s); "
                                    "concurrent writers may wait longer", self.url, mode)
            finally:
                cur.close()

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn: Any) -> None:
            # writers take the write lock up front: a deferred transaction that upgrades
            # from reading to writing can fail with SQLITE_BUSY without waiting
            write = conn.get_execution_options().get("vtatune_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def _retryable(self, exc: "DBAPIError") -> bool:
        if getattr(exc, "connection_invalidated", False):
            return True
        orig = getattr(exc, "orig", None)
        if self.dialect == "sqlite":
            code = getattr(orig, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
                return True
            text = str(orig).lower()
            return "database is locked" in text or "database is busy" in text
        # PostgreSQL: serialization failure, deadlock detected
        return getattr(orig, "sqlstate", None) in ("40001", "40P01")

    def _run(self, fn: Callable[[Any], _T], *, write: bool) -> _T:
        """Run ``fn(connection)`` in one transaction, retrying lock conflicts with backoff."""
        if write and self.readonly:
            raise StorageError(f"{self.url}: opened read-only; nothing can be written")
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        deadline = time.monotonic() + self._timeout
        delay = 0.01
        tries = 0
        while True:
            tries += 1
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(vtatune_write=True)
                    with conn.begin():
                        return fn(conn)
            except DBAPIError as exc:
                if self._retryable(exc) and time.monotonic() < deadline:
                    log.debug("%s: retrying after %s (try %d)", self.url, exc.orig, tries)
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 1.0)
                    continue
                raise StorageError(f"{self.url}: {type(exc.orig).__name__}: {exc.orig}"
                                   + (f" (after {tries} tries)" if tries > 1 else "")) from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"{self.url}: {exc}") from exc

    def _read_version(self, conn: Any) -> int | str | None:
        """The stored schema version; None for an empty database (no table, no view).  Only
        reads: a database with tables but no vtatune ``meta`` table is refused
        (``ForeignDatabaseError``), and so is a version-1 database missing a table."""
        insp = sa.inspect(conn)
        tables = set(insp.get_table_names())
        if "meta" not in tables:
            found = sorted(tables) + sorted(insp.get_view_names())
            if found:
                raise ForeignDatabaseError(self.url, found, SCHEMA_VERSION)
            return None
        columns = {c["name"] for c in insp.get_columns("meta")}
        if not {"key", "value"} <= columns:
            raise ForeignDatabaseError(self.url, sorted(tables), SCHEMA_VERSION)
        value = conn.execute(sa.select(meta_table.c.value)
                             .where(meta_table.c.key == "schema_version")).scalar()
        if value is None:
            raise SchemaVersionError("unknown (no schema_version)", SCHEMA_VERSION, self.url)
        try:
            version: int | str = int(value)
        except (TypeError, ValueError):
            return str(value)[:40]
        if version == SCHEMA_VERSION:
            missing = sorted({t.name for t in metadata.sorted_tables} - tables)
            if missing:
                raise StorageError(f"{self.url}: damaged tuning database: schema version "
                                   f"{version} without table(s) {', '.join(missing)}")
        return version

    def _create_schema(self, conn: Any) -> None:
        if self.dialect == "postgresql":  # serialise creators; SQLite's BEGIN IMMEDIATE does
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        version = self._read_version(conn)  # another process may have created it meanwhile
        if version is None:
            metadata.create_all(conn)
            conn.execute(meta_table.insert(), [
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "created_by", "value": TOOL_VERSION},
            ])
            log.info("%s: created the tuning database (schema %d)", self.url, SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise SchemaVersionError(version, SCHEMA_VERSION, self.url)

    # ------------------------------------------------------------------ writing
    def add(self, records: Iterable[TuningRecord]) -> int:
        """Store ``records`` in one transaction; returns how many were new.

        A record whose (workload, target, config, source, attempt) is stored already is
        ignored, whoever stored it.
        """
        recs = list(records)
        for r in recs:
            if not isinstance(r, TuningRecord):
                raise TypeError(f"expected TuningRecord, got {type(r).__name__}")
            check_record(r)
        if not recs:
            return 0
        return self._run(lambda conn: self._add(conn, recs), write=True)

    def _add(self, conn: Any, recs: list[TuningRecord]) -> int:
        wl = self._ensure_workloads(conn, recs)
        tg = self._ensure_targets(conn, recs)
        rows = []
        for r in recs:
            mean = r.mean_cost
            rows.append({
                "workload_id": wl[r.workload_key], "target_id": tg[(r.target, r.hw)],
                "config": canonical_json(r.config), "config_index": r.config_index,
                "config_hash": config_hash(r.config), "costs": canonical_json(r.costs),
                "mean_cost": None if mean == float("inf") else mean,
                "error_no": r.error_no, "all_cost": r.all_cost, "timestamp": r.timestamp,
                "reason": r.reason, "message": r.message, "source": r.source,
                "runner": r.runner, "tool_version": r.tool_version, "raw": r.raw,
                "session": r.session, "attempt": r.attempt,
            })
        stmt = (self._insert(records_table).on_conflict_do_nothing(index_elements=_DEDUPE)
                .returning(records_table.c.id))
        inserted = 0
        for chunk in _chunks(rows):
            inserted += len(conn.execute(stmt, list(chunk)).all())
        return inserted

    def _ensure_workloads(self, conn: Any, recs: list[TuningRecord]) -> dict[str, int]:
        want: dict[str, tuple[str, str]] = {}
        for r in recs:
            name, backend = want.get(r.workload_key, ("", r.backend))
            want[r.workload_key] = (name or r.workload_name, backend)
        keys = sorted(want)  # one order for every writer: no lock-order deadlocks
        hashes = {key_hash(k): k for k in keys}
        ins = self._insert(workloads_table).on_conflict_do_nothing(index_elements=["key_hash"])
        for chunk in _chunks(keys):
            conn.execute(ins, [{"key_hash": key_hash(k), "key": k, "name": want[k][0],
                                "backend": want[k][1]} for k in chunk])
        ids: dict[str, int] = {}
        t = workloads_table
        for chunk in _chunks(sorted(hashes)):
            for row in conn.execute(sa.select(t.c.id, t.c.key_hash, t.c.name)
                                    .where(t.c.key_hash.in_(chunk))):
                key = hashes[row.key_hash]
                ids[key] = row.id
                if not row.name and want[key][0]:  # a later record knows the name
                    conn.execute(t.update().where(t.c.id == row.id)
                                 .values(name=want[key][0]))
        return ids

    def _ensure_targets(self, conn: Any, recs: list[TuningRecord]) -> dict[tuple[str, str], int]:
        pairs = sorted({(r.target, r.hw) for r in recs})
        t = targets_table
        ins = self._insert(t).on_conflict_do_nothing(index_elements=["target", "hw"])
        for chunk in _chunks(pairs):
            conn.execute(ins, [{"target": a, "hw": b} for a, b in chunk])
        ids: dict[tuple[str, str], int] = {}
        for chunk in _chunks(sorted({a for a, _ in pairs})):
            for row in conn.execute(sa.select(t.c.id, t.c.target, t.c.hw)
                                    .where(t.c.target.in_(chunk))):
                ids[(row.target, row.hw)] = row.id
        return ids

    def ensure_workload(self, key: str, name: str = "", backend: str = "vta") -> None:
        """Store workload ``key`` (with ``name`` and ``backend``) if it is not stored yet:
        backends that register a workload before measuring it (MetaSchedule) need this."""
        if not isinstance(key, str) or not key:
            raise StorageError(f"workload key must be a non-empty string, got {key!r}")
        ins = self._insert(workloads_table).on_conflict_do_nothing(index_elements=["key_hash"])
        t = workloads_table

        def tx(conn: Any) -> None:
            conn.execute(ins, [{"key_hash": key_hash(key), "key": key, "name": name,
                                "backend": backend}])
            if name:  # name a workload stored unnamed
                conn.execute(t.update().where(t.c.key_hash == key_hash(key), t.c.name == "")
                             .values(name=name))
        self._run(tx, write=True)

    def workloads(self, backend: str | None = None,
                  key_prefix: str | None = None) -> list[tuple[str, str]]:
        """``(key, name)`` of the stored workloads (of one ``backend``, whose key starts with
        ``key_prefix``), in the order they were stored."""
        w = workloads_table
        q = sa.select(w.c.key, w.c.name).order_by(w.c.id)
        if backend is not None:
            q = q.where(w.c.backend == backend)
        if key_prefix:
            q = q.where(w.c.key.startswith(key_prefix, autoescape=True))
        return self._run(lambda conn: [(r.key, r.name) for r in conn.execute(q)], write=False)

    def count(self, workload_key: str | None = None, hw: str | None = None,
              source: str | Sequence[str] | None = None, *, ok_only: bool = False,
              runner: str | None = None, exclude_errors: Sequence[int] = ()) -> int:
        """How many records match (all, or of one workload / hardware / source / runner),
        leaving out records whose ``error_no`` is in ``exclude_errors``."""
        r = records_table
        sub = self._select(workload_key, hw, source)
        if ok_only:
            sub = sub.where(r.c.error_no == 0)
        if runner is not None:
            sub = sub.where(r.c.runner == runner)
        if exclude_errors:
            sub = sub.where(r.c.error_no.not_in([int(e) for e in exclude_errors]))
        q = sa.select(sa.func.count()).select_from(sub.subquery())
        return int(self._run(lambda conn: conn.execute(q).scalar() or 0, write=False))

    # ------------------------------------------------------------------ reading
    def _select(self, workload_key: str | None, hw: str | None,
                source: str | Sequence[str] | None) -> Any:
        r, w, t = records_table, workloads_table, targets_table
        q = (sa.select(r, w.c.key.label("w_key"), w.c.name.label("w_name"),
                       w.c.backend.label("w_backend"), t.c.target.label("t_target"),
                       t.c.hw.label("t_hw"))
             .select_from(r.join(w, r.c.workload_id == w.c.id)
                          .join(t, r.c.target_id == t.c.id)))
        if workload_key is not None:
            q = q.where(w.c.key_hash == key_hash(workload_key), w.c.key == workload_key)
        if hw is not None:
            q = q.where(t.c.hw == hw)
        if source is not None:
            sources = [source] if isinstance(source, str) else list(source)
            bad = [s for s in sources if s not in SOURCES]
            if bad:
                raise StorageError(f"unknown source {bad[0]!r} (known: {', '.join(SOURCES)})")
            q = q.where(r.c.source.in_(sources))
        return q

    def _record(self, row: Any) -> TuningRecord:
        try:
            return TuningRecord(
                backend=row.w_backend, workload_key=row.w_key, workload_name=row.w_name,
                target=row.t_target, hw=row.t_hw, config=json.loads(row.config),
                config_index=row.config_index, costs=json.loads(row.costs),
                error_no=row.error_no, all_cost=row.all_cost, timestamp=row.timestamp,
                reason=row.reason, message=row.message, source=row.source, runner=row.runner,
                tool_version=row.tool_version, raw=row.raw, session=row.session,
                attempt=row.attempt)
        except (ValueError, TypeError, RecursionError) as exc:  # JSON, ConfigurationError
            raise StorageError(f"{self.url}: record {row.id} is damaged (edited outside "
                               f"vtatune?): {type(exc).__name__}: {exc}") from None

    def records(self, workload_key: str | None = None, hw: str | None = None,
                source: str | Sequence[str] | None = None) -> list[TuningRecord]:
        """Stored records (all, or of one workload / hardware / source or sources), in the
        order they were stored."""
        q = self._select(workload_key, hw, source).order_by(records_table.c.id)
        return self._run(lambda conn: [self._record(row) for row in conn.execute(q)],
                         write=False)

    def measured_indices(self, workload_key: str, hw: str, *,
                         sources: Sequence[str] = MEASUREMENT_SOURCES) -> set[int]:
        """Config indices of ``workload_key`` on ``hw`` that have a record (failures
        included) from ``sources`` (default: measured and imported; not predicted)."""
        r, w, t = records_table, workloads_table, targets_table
        q = (sa.select(r.c.config_index).distinct()
             .select_from(r.join(w, r.c.workload_id == w.c.id)
                          .join(t, r.c.target_id == t.c.id))
             .where(w.c.key_hash == key_hash(workload_key), w.c.key == workload_key,
                    t.c.hw == hw, r.c.source.in_(list(sources)),
                    r.c.config_index.is_not(None)))
        return self._run(lambda conn: {int(v) for v in conn.execute(q).scalars()}, write=False)

    def best(self, workload_key: str, hw: str, k: int = 1,
             runner_prefix: str | None = None) -> list[TuningRecord]:
        """The ``k`` successful measurements (``error_no == 0``, measured or imported) of
        ``workload_key`` on ``hw`` with the lowest mean cost; ties go to the record stored
        first (AutoTVM keeps the first of equal records in log order).  ``runner_prefix``
        keeps one kind of cost (e.g. ``"tsim"``, or ``"pynq/<bitstream>"``) instead of mixing
        runners; it matches whole ``/``-separated parts of the runner label.  ``k = 0`` gives
        ``[]``; a negative or non-integer ``k`` raises ``ConfigurationError`` (field ``k``)."""
        r = records_table
        q = (self._select(workload_key, hw, MEASUREMENT_SOURCES)
             .where(r.c.error_no == 0, r.c.mean_cost.is_not(None)))
        try:
            n = -1 if isinstance(k, bool) else operator.index(k)
        except TypeError:
            n = -1
        if n < 0:
            raise ConfigurationError("k", f"the number of best records must be an integer "
                                          f">= 0, got {k!r}")
        k = n
        if k == 0:
            return []
        if runner_prefix:  # whole "/"-separated parts: "pynq" is not "pynq[fsim]/..."
            p = runner_prefix.rstrip("/")
            q = q.where(sa.or_(r.c.runner == p, r.c.runner.startswith(p + "/", autoescape=True)))
        q = q.order_by(r.c.mean_cost, r.c.id).limit(k)
        return self._run(lambda conn: [self._record(row) for row in conn.execute(q)],
                         write=False)

    def stats(self) -> dict[str, Any]:
        """Record counts: ``total``, per ``workload`` (key), ``hw``, ``source`` and
        ``error_no``, and ``groups`` (one row per workload, hw, source and error_no)."""
        r, w, t = records_table, workloads_table, targets_table
        n = sa.func.count(r.c.id).label("n")
        q = (sa.select(w.c.key, w.c.name, t.c.hw, r.c.source, r.c.error_no, n)
             .select_from(r.join(w, r.c.workload_id == w.c.id)
                          .join(t, r.c.target_id == t.c.id))
             .group_by(w.c.key, w.c.name, t.c.hw, r.c.source, r.c.error_no)
             .order_by(w.c.key, t.c.hw, r.c.source, r.c.error_no))

        def tx(conn: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"total": 0, "workload": {}, "hw": {}, "source": {},
                                   "error_no": {}, "groups": []}
            for row in conn.execute(q):
                out["total"] += row.n
                for dim, val in (("workload", row.key), ("hw", row.hw),
                                 ("source", row.source), ("error_no", int(row.error_no))):
                    out[dim][val] = out[dim].get(val, 0) + row.n
                out["groups"].append({"workload_key": row.key, "workload_name": row.name,
                                      "hw": row.hw, "source": row.source,
                                      "error_no": int(row.error_no), "count": row.n})
            out["schema_version"] = SCHEMA_VERSION
            return out
        return self._run(tx, write=False)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"
