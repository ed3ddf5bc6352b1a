"""Leases on shared resources (vtatune.db.leases) on SQLite and PostgreSQL: concurrent
clients (threads and spawned processes) never hold one resource twice at once, expired
leases are reclaimed, heartbeats keep a lease alive, released cool-downs keep a resource
out of reach, and the records schema is left alone."""
from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

from vtatune.db.leases import LeaseStore

RESOURCES = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]


def _no_overlap(intervals: list[tuple[str, float, float, str]]) -> None:
    """Per resource, the recorded hold intervals are disjoint."""
    by_res: dict[str, list] = {}
    for res, t0, t1, who in intervals:
        by_res.setdefault(res, []).append((t0, t1, who))
    for res, ivs in by_res.items():
        ivs.sort()
        for (a0, a1, wa), (b0, b1, wb) in zip(ivs, ivs[1:]):
            assert b0 >= a1, f"{res} held twice: {wa} [{a0:.4f}, {a1:.4f}] and {wb} [{b0:.4f}, {b1:.4f}]"


def hold_loop(url: str, who: str, n: int, hold_s: float, start, out) -> None:
    """Acquire one of RESOURCES ``n`` times, hold it ``hold_s``, record (resource, start,
    end, who) with the wall clock (one machine: one clock for every process)."""
    store = LeaseStore(url)
    if start is not None:
        start.wait(60)
    got = []
    for _ in range(n):
        lease = store.acquire(RESOURCES, holder=who, ttl_s=30, wait_s=60, heartbeat=False)
        assert lease is not None
        t0 = time.time()
        time.sleep(hold_s)
        t1 = time.time()
        assert lease.release()
        got.append((lease.resource, t0, t1, who))
    store.close()
    if out is not None:
        out.put(got)
    return got


def test_threads_never_hold_a_resource_twice(db_url):
    LeaseStore(db_url).close()
    out: list = []
    threads = [threading.Thread(target=lambda w=w: out.extend(
        hold_loop(db_url, f"t{w}", 8, 0.01, None, None))) for w in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(out) == 5 * 8
    _no_overlap(out)
    assert {r for r, *_ in out} == set(RESOURCES)  # all three are used


def test_processes_never_hold_a_resource_twice(db_url):
    LeaseStore(db_url).close()
    ctx = mp.get_context("spawn")
    start, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=hold_loop, args=(db_url, f"p{w}", 6, 0.02, start, q))
             for w in range(4)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    start.set()
    out = [iv for _ in procs for iv in q.get(timeout=120)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(out) == 4 * 6
    _no_overlap(out)


def test_wait_expiry_reclaim_and_release_guard(db_url):
    with LeaseStore(db_url) as store:
        a = store.acquire(["r1"], "A", ttl_s=3, heartbeat=False)
        assert a is not None and a.resource == "r1"
        assert store.acquire(["r1"], "B", ttl_s=60) is None          # held, no wait
        t0 = time.monotonic()
        b = store.acquire(["r1"], "B", ttl_s=60, wait_s=30, heartbeat=False)  # A expires
        assert b is not None and b.holder == "B" and time.monotonic() - t0 < 10
        # A's late release and renewal must not touch B's lease
        assert a.renew() is False and a.lost
        assert a.release() is False
        st = store.state(["r1"])["r1"]
        assert st["status"] == "held" and st["holder"] == "B"
        assert b.release() and store.state(["r1"])["r1"]["status"] == "free"
        assert b.release() is False  # once


def test_heartbeat_keeps_a_lease_alive(db_url):
    with LeaseStore(db_url) as store:
        lease = store.acquire(["r1"], "A", ttl_s=1.2)
        time.sleep(3)  # > 2 ttl: only the heartbeat (every 0.4 s) keeps it
        assert lease.renewals >= 2 and not lease.lost
        assert store.acquire(["r1"], "B", ttl_s=1) is None
        assert store.state()["r1"]["holder"] == "A"
        lease.release()
        assert store.acquire(["r1"], "B", ttl_s=1, heartbeat=False) is not None


def test_cooldown_and_least_recently_used(db_url):
    with LeaseStore(db_url) as store:
        first = store.acquire(["a", "b"], "A", heartbeat=False)
        first.release(cooldown_s=3, note="unreachable")
        st = store.state()[first.resource]
        assert st["status"] == "cooling" and st["note"] == "unreachable"
        other = store.acquire(["a", "b"], "A", heartbeat=False)
        assert other.resource != first.resource
        other.release()
        # the cooling one is out of reach until its cool-down passes
        again = store.acquire([first.resource], "A", wait_s=20, heartbeat=False)
        assert again is not None
        again.release()
        # least recently used first
        nxt = store.acquire(["a", "b"], "A", heartbeat=False)
        assert nxt.resource == other.resource
        nxt.release()


def test_lease_table_leaves_records_schema_alone(tmp_path):
    from vtatune.db import open_db
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with LeaseStore(url) as store:  # an empty database: records schema first, then leases
        store.acquire(["x"], heartbeat=False).release()
    with open_db(url, readonly=True) as db:  # still a vtatune database, version 1
        assert db.stats()["schema_version"] == 1 and db.stats()["total"] == 0
    with LeaseStore(url) as store:  # opening again: the table is there
        assert list(store.state()) == ["x"]


def test_bad_arguments_are_typed(tmp_path):
    from vtatune.errors import ConfigurationError
    with LeaseStore(f"sqlite:///{tmp_path / 'l.db'}") as store:
        with pytest.raises(ConfigurationError, match="ttl_s"):
            store.acquire(["x"], ttl_s=0)
        with pytest.raises(ConfigurationError, match="resource"):
            store.acquire([""])
        assert store.acquire([]) is None


def grab_and_die(url: str, q) -> None:
    """Spawned: take a lease (heartbeat on) and die without releasing it."""
    import os
    lease = LeaseStore(url).acquire(["r1"], "doomed", ttl_s=600)
    q.put(lease.resource)
    q.close()
    q.join_thread()  # flushed before the abrupt exit
    os._exit(0)


def test_a_dead_local_holder_is_reclaimed_at_once(db_url):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=grab_and_die, args=(db_url, q))
    p.start()
    assert q.get(timeout=120) == "r1"
    p.join(30)
    with LeaseStore(db_url) as store:
        assert store.state()["r1"]["holder"] == "doomed"  # held for 600 s more ...
        lease = store.acquire(["r1"], "B", heartbeat=False)  # ... but its process is gone
        assert lease is not None and lease.holder == "B"
        lease.release()
