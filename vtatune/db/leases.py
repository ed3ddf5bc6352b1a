"""Leases on shared resources (measurement boards), kept in the records database.

Several tuning processes — on one machine or on several, sharing a PostgreSQL database —
take turns on a pool of resources (a board is just a name, e.g. ``"10.0.0.7:9091"``; this
module knows nothing of boards or workloads).  A resource is held by at most one lease at a
time; a lease ends when it is released or when its holder stops renewing it and it expires,
so the resource of a dead process (or host) comes back after ``ttl_s``.

* Table ``board_leases`` (``resource`` primary key, ``lease_id``, ``holder``, ``host``,
  ``pid``, ``acquired``, ``heartbeat``, ``expires``, ``note``), created on demand next to the
  records schema; it is not part of the records schema and leaves its version alone.  A
  row is *free* when ``expires <= now``: released rows get ``expires = now`` (or a cool-down
  in the future: ``release(cooldown_s=...)`` keeps an unhealthy resource out of every
  process's reach for a while), held rows ``now + ttl``.
* ``acquire`` runs one write transaction per try: PostgreSQL ``SELECT ... FOR UPDATE SKIP
  LOCKED`` over the free rows (the least recently used first), then marks the row held;
  SQLite the same under ``BEGIN IMMEDIATE`` (one writer at a time).  Times come from the
  database server's clock on PostgreSQL (hosts' clocks may disagree), from the local clock on
  SQLite (one machine).
* A held lease renews itself from a background thread every ``ttl_s / 3`` (heartbeat); a
  renewal that finds the row taken by someone else (the lease expired meanwhile) marks the
  lease ``lost``.  ``release`` and ``renew`` only touch the row while it still carries the
  lease's id, so a late holder never frees a resource another process holds.
* A lease held by a process of the acquirer's own host that no longer exists (a killed
  worker of an interrupted run) is reclaimed at once rather than after its expiry.

Leases are only used by tuning (never by read-only commands): ``LeaseStore`` opens the
database writable, which creates the records schema in an empty database, exactly as
``open_db`` does.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..errors import ConfigurationError, StorageError
from .storage import Database, open_db

log = logging.getLogger(__name__)

TABLE = "board_leases"
_PG_LOCK_ID = 0x76746C73  # advisory lock taken while creating the lease table ("vtls")

lease_metadata = sa.MetaData()
leases_table = sa.Table(
    TABLE, lease_metadata,
    sa.Column("resource", sa.String(255), primary_key=True),
    sa.Column("lease_id", sa.String(32), nullable=True),
    sa.Column("holder", sa.Text, nullable=True),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("acquired", sa.Double, nullable=True),
    sa.Column("heartbeat", sa.Double, nullable=True),
    sa.Column("expires", sa.Double, nullable=False, default=0.0),
    sa.Column("note", sa.Text, nullable=True),
)


def default_holder() -> str:
    """``host:pid:thread`` of the caller (what the ``holder`` column shows by default)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (PermissionError) someone else's process: alive
        return True
    return True


def lease_url_for(db: Any) -> str | None:
    """The URL other processes reach ``db`` (a ``Database`` or a URL) by, password
    included; None for an in-memory SQLite database (no other process can see it)."""
    if isinstance(db, Database):
        url = db._url
    elif isinstance(db, str):
        url = sa.make_url(db)
    else:
        return None
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if name in ("", ":memory:") or "mode=memory" in name or name.startswith("file::memory:"):
            return None
        if not name.startswith("file:"):  # workers may run elsewhere in the file tree
            url = url.set(database=os.path.abspath(name))
    return url.render_as_string(hide_password=False)


class LeaseStore:
    """Leases in the database at ``url`` (or on an open ``Database``): see the module
    docstring.  Safe to use from several threads; after ``fork`` it reconnects by itself."""

    def __init__(self, url: str | Database | None = None, *, timeout: float = 60.0):
        if isinstance(url, Database):
            self.db, self._own = url, False
        else:
            self.db, self._own = open_db(url, timeout=timeout), True
        if self.db.readonly:
            raise StorageError(f"{self.db.url}: leases need a writable database")
        self.url = self.db.url
        self._known: set[str] = set()
        self._lock = threading.Lock()
        if self._own and self.db.dialect == "sqlite":
            # a lease store's own connections: no fsync per commit (WAL keeps the file
            # consistent; a lease lost to a power cut is moot), 2 commits per measurement
            @sa.event.listens_for(self.db._engine, "connect")
            def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute("PRAGMA synchronous = NORMAL")
            self.db._engine.dispose()
        self.db._run(self._create_table, write=True)

    # ------------------------------------------------------------------ plumbing
    def _create_table(self, conn: Any) -> None:
        if self.db.dialect == "postgresql":  # racing creators: one at a time
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        lease_metadata.create_all(conn, checkfirst=True)

    def _now(self, conn: Any) -> float:
        if self.db.dialect == "postgresql":
            return float(conn.execute(
                sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar())
        return time.time()

    def _ensure_rows(self, resources: list[str]) -> None:
        with self._lock:
            missing = [r for r in resources if r not in self._known]
        if not missing:
            return
        db = self.db
        if db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(leases_table).on_conflict_do_nothing(index_elements=["resource"])
        db._run(lambda conn: conn.execute(stmt, [{"resource": r, "expires": 0.0}
                                                 for r in sorted(missing)]), write=True)
        with self._lock:
            self._known.update(missing)

    @staticmethod
    def _names(resources: Iterable[str]) -> list[str]:
        if isinstance(resources, str):
            resources = [resources]
        names = list(dict.fromkeys(resources))
        for r in names:
            if not isinstance(r, str) or not r or len(r) > 255:
                raise ConfigurationError("resource", f"a resource is a non-empty name of at "
                                                     f"most 255 characters, got {r!r}")
        return names

    # ------------------------------------------------------------------ leases
    def acquire(self, resources: Iterable[str], holder: str | None = None, ttl_s: float = 30.0,
                wait_s: float = 0.0, *, heartbeat: bool = True,
                poll_s: float = 0.05) -> Lease | None:
        """A lease on one free resource of ``resources`` (the least recently used first),
        waiting up to ``wait_s`` seconds for one; None when none became free in time.
        ``heartbeat`` renews it every ``ttl_s / 3`` from a background thread until it is
        released."""
        names = self._names(resources)
        if not ttl_s > 0:
            raise ConfigurationError("ttl_s", f"a lease lasts > 0 seconds, got {ttl_s!r}")
        if not names:
            return None
        holder = holder or default_holder()
        self._ensure_rows(names)
        deadline = time.monotonic() + max(0.0, float(wait_s))
        delay = poll_s
        while True:
            got = self.db._run(lambda conn: self._try(conn, names, holder, ttl_s), write=True)
            if got is not None:
                resource, lease_id, now = got
                return Lease(self, resource, lease_id, holder, float(ttl_s), now,
                             heartbeat=heartbeat)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, delay))
            delay = min(delay * 1.5, 0.5)

    def _try(self, conn: Any, names: list[str], holder: str, ttl_s: float):
        t = leases_table
        now = self._now(conn)
        q = (sa.select(t.c.resource).where(t.c.resource.in_(names), t.c.expires <= now)
             .order_by(sa.func.coalesce(t.c.heartbeat, 0.0), t.c.resource).limit(1))
        if self.db.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        resource = conn.execute(q).scalar()
        if resource is None and self._reclaim_dead(conn, names, now):
            resource = conn.execute(q).scalar()
        if resource is None:
            return None
        lease_id = uuid.uuid4().hex
        done = conn.execute(
            t.update().where(t.c.resource == resource, t.c.expires <= now)
            .values(lease_id=lease_id, holder=holder[:500], host=socket.gethostname(),
                    pid=os.getpid(), acquired=now, heartbeat=now, expires=now + ttl_s,
                    note=None))
        if done.rowcount != 1:  # taken between the two statements (cannot happen when locked)
            return None
        return resource, lease_id, now

    def _reclaim_dead(self, conn: Any, names: list[str], now: float) -> int:
        """Free the leases of processes of this host that are gone (killed workers of an
        interrupted run) without waiting for their expiry; how many were freed."""
        t = leases_table
        me = socket.gethostname()
        rows = conn.execute(sa.select(t.c.resource, t.c.lease_id, t.c.pid).where(
            t.c.resource.in_(names), t.c.expires > now, t.c.lease_id.is_not(None),
            t.c.host == me)).all()
        freed = 0
        for row in rows:
            if row.pid is None or row.pid == os.getpid() or _alive(row.pid):
                continue
            freed += conn.execute(t.update().where(t.c.resource == row.resource,
                                                   t.c.lease_id == row.lease_id)
                                  .values(lease_id=None, holder=None, expires=now,
                                          note=f"reclaimed: holder process {row.pid} is gone")
                                  ).rowcount
        return freed

    def _renew(self, lease: Lease) -> bool:
        t = leases_table

        def tx(conn: Any) -> bool:
            now = self._now(conn)
            done = conn.execute(t.update().where(t.c.resource == lease.resource,
                                                 t.c.lease_id == lease.lease_id)
                                .values(heartbeat=now, expires=now + lease.ttl_s))
            return done.rowcount == 1
        return self.db._run(tx, write=True)

    def _release(self, lease: Lease, cooldown_s: float, note: str | None) -> bool:
        t = leases_table

        def tx(conn: Any) -> bool:
            now = self._now(conn)
            done = conn.execute(t.update().where(t.c.resource == lease.resource,
                                                 t.c.lease_id == lease.lease_id)
                                .values(lease_id=None, holder=None, heartbeat=now,
                                        expires=now + max(0.0, cooldown_s),
                                        note=(note or None) and note[:500]))
            return done.rowcount == 1
        return self.db._run(tx, write=True)

    def state(self, resources: Iterable[str] | None = None) -> dict[str, dict]:
        """Every lease row (of ``resources``): ``holder``, ``host``, ``pid``, ``acquired``,
        ``heartbeat``, ``expires``, ``note`` and ``status`` — ``held``, ``cooling`` (released
        with a cool-down that has not passed) or ``free``."""
        t = leases_table
        names = None if resources is None else self._names(resources)

        def tx(conn: Any) -> dict[str, dict]:
            now = self._now(conn)
            q = sa.select(t)
            if names is not None:
                q = q.where(t.c.resource.in_(names))
            out = {}
            for row in conn.execute(q.order_by(t.c.resource)):
                d = dict(row._mapping)
                d["status"] = ("free" if d["expires"] <= now else
                               "held" if d["lease_id"] is not None else "cooling")
                d["remaining_s"] = max(0.0, d["expires"] - now)
                out[d.pop("resource")] = d
            return out
        return self.db._run(tx, write=False)

    def close(self) -> None:
        if self._own:
            self.db.close()

    def __enter__(self) -> LeaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LeaseStore({self.url!r})"


@dataclass(eq=False)
class Lease:
    """A held resource.  ``release()`` (or leaving a ``with`` block) frees it; ``lost`` is set
    when a renewal found it taken over (it had expired)."""

    store: LeaseStore
    resource: str
    lease_id: str
    holder: str
    ttl_s: float
    acquired: float
    heartbeat: bool = True
    lost: bool = False
    released: bool = False
    renewals: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.heartbeat:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name=f"lease-heartbeat-{self.resource}")
            self._thread.start()

    def _beat(self) -> None:
        interval = self.ttl_s / 3
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except StorageError as exc:  # a database hiccup: try again next beat
                log.warning("lease on %s: heartbeat failed: %s", self.resource, exc)

    def renew(self) -> bool:
        """Extend the lease by ``ttl_s`` from now; False (and ``lost``) when it is no longer
        this lease's."""
        if self.released or self.lost:
            return False
        if self.store._renew(self):
            self.renewals += 1
            return True
        self.lost = True
        log.warning("lease on %s was lost (it expired and was taken over)", self.resource)
        return False

    def release(self, cooldown_s: float = 0.0, note: str | None = None) -> bool:
        """Free the resource (after ``cooldown_s`` seconds, with a ``note`` saying why, for a
        resource that should rest); True when the lease was still held."""
        if self.released:
            return False
        self.released = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self.lost:
            return False
        return self.store._release(self, float(cooldown_s), note)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
