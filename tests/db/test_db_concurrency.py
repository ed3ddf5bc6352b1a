"""Concurrent writers: 4 spawned processes add 250 distinct records each, one transaction per
record, to the same database at the same time; nothing may be lost or duplicated."""
from __future__ import annotations

import multiprocessing as mp
import time

from db_workers import HW, KEY, concurrent_writer, make_record

WORKERS, PER_WORKER = 4, 250


def test_concurrent_writers_lose_nothing(db_url, request):
    from vtatune.db import open_db

    with open_db(db_url) as db:  # created before the workers start (they race anyway)
        pass
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=concurrent_writer, args=(db_url, w, PER_WORKER, start, out))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every worker open the database and wait
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(w for w, _, _ in results) == list(range(WORKERS))
    assert all(n == PER_WORKER for _, n, _ in results), results
    with open_db(db_url) as db:
        recs = db.records()
        assert len(recs) == WORKERS * PER_WORKER
        assert len({r.config_index for r in recs}) == WORKERS * PER_WORKER
        assert db.stats()["total"] == WORKERS * PER_WORKER
        assert db.measured_indices(KEY, HW) == {r.config_index for r in recs}
        # a late duplicate from any worker is still ignored
        assert db.add([make_record(2 * 100_000 + 7, session="w2")]) == 0
    rate = WORKERS * PER_WORKER / wall
    request.node.user_properties.append(("records_per_second", round(rate, 1)))
    print(f"\n{db_url.split(':')[0]}: {WORKERS}x{PER_WORKER} single-record transactions in "
          f"{wall:.2f} s ({rate:.0f} records/s)")


def test_concurrent_first_open_creates_schema_once(tmp_path):
    """Workers that all find an empty database create the schema once between them."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    start.set()
    procs = [ctx.Process(target=concurrent_writer, args=(url, w, 5, start, out))
             for w in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(n for _, n, _ in results) == 15
