"""The MetaSchedule database adapter and the MetaSchedule JSON database codec."""
from __future__ import annotations

import json

import pytest


def _matmul(n):
    import tvm
    from tvm import te
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def _record(mod, wl, factor, secs, target):
    import tvm
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.database import TuningRecord
    sch = tvm.s_tir.Schedule(mod)
    i, _, _ = sch.get_loops(sch.get_sblock("C"))
    sch.split(i, [None, factor])
    return TuningRecord(trace=sch.trace, workload=wl, run_secs=secs, target=target,
                        args_info=ArgInfo.from_prim_func(mod["main"]))


@pytest.fixture
def store(tmp_path, target):
    from vtatune.backends.tvm.store import MSDatabase
    from vtatune.db import open_db
    db = open_db(f"sqlite:///{tmp_path / 'r.db'}")
    yield db, MSDatabase(db, target)
    db.close()


def test_structurally_equal_modules_share_one_workload(store):
    db, ms_db = store
    a, b, other = _matmul(16), _matmul(16), _matmul(32)
    assert not ms_db.has_workload(a)
    ms_db.commit_workload(a)
    assert ms_db.has_workload(b)                  # a new object, equal structure
    assert not ms_db.has_workload(other)
    assert ms_db.key_of(a) == ms_db.key_of(b) != ms_db.key_of(other)
    assert len(db.workloads("metaschedule")) == 2
    # the key is MetaSchedule's own workload line
    from tvm.s_tir.meta_schedule.database import Workload
    line = json.loads(ms_db.key_of(a))
    assert str(Workload(a).as_json()[0]) == line[0]


def test_top_k_orders_successes_and_drops_failures(store, target):
    db, ms_db = store
    mod = _matmul(16)
    wl = ms_db.commit_workload(mod)
    times = {2: [3e-5, 5e-5], 4: [1e-5, 1e-5], 8: [1e10], 16: [2e-5]}   # mean 4e-5, 1e-5, fail, 2e-5
    for f, secs in times.items():
        ms_db.commit_tuning_record(_record(mod, wl, f, secs, target))
    assert len(ms_db) == 4
    top = ms_db.get_top_k(wl, 3)
    assert [round(sum(r.run_secs) / len(r.run_secs) * 1e6, 3) for r in
            [type("R", (), {"run_secs": [float(s) for s in t.run_secs]}) for t in top]] == [10.0, 20.0, 40.0]
    failed = [r for r in db.records() if not r.ok]
    assert len(failed) == 1 and failed[0].reason == "failed" and failed[0].costs == [1e10]
    # a record's trace survives the round trip: applying it reproduces the split
    import tvm
    sch = tvm.s_tir.Schedule(mod)
    top[0].trace.apply_to_schedule(sch, remove_postproc=False)
    assert [int(lp.extent) for lp in
            (sch.get(x) for x in sch.get_loops(sch.get_sblock("C")))][:2] == [4, 4]


def test_export_is_read_by_metaschedule_and_import_reads_metaschedule(store, tmp_path, target):
    from tvm.s_tir import meta_schedule as ms

    from vtatune.backends.tvm.store import export_json, import_json
    db, ms_db = store
    mod = _matmul(16)
    wl = ms_db.commit_workload(mod)
    for f, secs in {2: [4e-5], 4: [1e-5], 8: [1e10]}.items():
        ms_db.commit_tuning_record(_record(mod, wl, f, secs, target))
    assert export_json(db, tmp_path / "ms") == (1, 3)
    js = ms.database.JSONDatabase(work_dir=str(tmp_path / "ms"))
    assert len(js) == 3
    best = js.get_top_k(js.commit_workload(mod), 1)[0]
    assert [float(s) for s in best.run_secs] == [1e-5]

    # MetaSchedule writes a database; vtatune imports it into a fresh store
    (tmp_path / "ms2").mkdir()
    src = ms.database.JSONDatabase(work_dir=str(tmp_path / "ms2"))
    w2 = src.commit_workload(_matmul(32))
    for f, secs in {2: [7e-5], 4: [6e-5]}.items():
        src.commit_tuning_record(_record(_matmul(32), w2, f, secs, target))
    from vtatune.db import open_db
    with open_db(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
        assert import_json(fresh, tmp_path / "ms2") == (2, 2)
        assert import_json(fresh, tmp_path / "ms2") == (2, 0)         # idempotent
        recs = fresh.records()
        assert {r.source for r in recs} == {"imported"}
        assert sorted(r.mean_cost for r in recs) == [6e-5, 7e-5]
        from vtatune.backends.tvm.env import target_label
        assert {r.hw for r in recs} == {target_label(target)}


def test_import_rejects_malformed_files_naming_the_line(tmp_path, store):
    from vtatune.backends.tvm.store import import_json
    from vtatune.errors import ConfigurationError, RecordDecodeError
    db, _ = store
    with pytest.raises(ConfigurationError, match="database_workload.json"):
        import_json(db, tmp_path)
    (tmp_path / "database_workload.json").write_text("")
    (tmp_path / "database_tuning_record.json").write_text('[0, "nonsense"]\n')
    with pytest.raises(RecordDecodeError, match="database_tuning_record.json:1"):
        import_json(db, tmp_path)
    assert db.count() == 0


def _ms_dir(tmp_path, target):
    """A MetaSchedule JSONDatabase written by MetaSchedule itself: one workload, one record."""
    from tvm.s_tir import meta_schedule as ms
    d = tmp_path / "ms"
    d.mkdir()
    src = ms.database.JSONDatabase(work_dir=str(d))
    w = src.commit_workload(_matmul(16))
    src.commit_tuning_record(_record(_matmul(16), w, 2, [7e-5], target))
    return d


def _bad_run_secs(b: bytes) -> bytes:
    widx, body = json.loads(b)
    body[1] = ["abc"]
    return json.dumps([widx, body]).encode() + b"\n"


@pytest.mark.parametrize("name, damage, match", [
    ("database_workload.json", lambda b: b + b"\xff\xfe\n",
     r"database_workload.json:2: not UTF-8"),
    ("database_tuning_record.json", lambda b: b"\xc3\x28" + b,
     r"database_tuning_record.json:1: not UTF-8"),
    ("database_tuning_record.json", lambda b: b + b"[" * 100_000 + b"\n",
     r"database_tuning_record.json:2: JSON nested deeper than"),
    ("database_workload.json", lambda b: b"[" * 100 + b"]" * 100 + b"\n" + b,
     r"database_workload.json:1: JSON nested deeper than"),
    ("database_tuning_record.json", lambda b: b + b"[0, " + b"9" * 5000 + b"]\n",
     r"database_tuning_record.json:2: not JSON"),
    ("database_tuning_record.json", _bad_run_secs,
     r"database_tuning_record.json:1: not a MetaSchedule record"),
])
def test_damaged_metaschedule_files_are_typed_errors_and_store_nothing(tmp_path, store, target,
                                                                      name, damage, match):
    """Non-UTF-8 bytes used to raise UnicodeDecodeError (a traceback), and a record whose
    run_secs failed to convert was refused only after its workloads had been stored."""
    from vtatune.backends.tvm.store import import_json
    from vtatune.errors import RecordDecodeError
    db, _ = store
    d = _ms_dir(tmp_path, target)
    p = d / name
    p.write_bytes(damage(p.read_bytes()))
    with pytest.raises(RecordDecodeError, match=match):
        import_json(db, d)
    assert db.count() == 0 and db.workloads() == []


def test_metaschedule_file_without_newlines_is_read_in_bounded_memory(tmp_path, store, target):
    import tracemalloc

    from vtatune.backends.tvm.store import MS_MAX_LINE_BYTES, import_json
    from vtatune.errors import LogFileError
    db, _ = store
    d = _ms_dir(tmp_path, target)
    with open(d / "database_tuning_record.json", "wb") as f:   # 40 MB of zeros, no newline
        for _ in range(40):
            f.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(LogFileError, match=r"database_tuning_record.json:1: line longer"):
            import_json(db, d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MS_MAX_LINE_BYTES + (8 << 20)
    assert db.count() == 0 and db.workloads() == []
    (d / "database_tuning_record.json").unlink()
    (d / "database_tuning_record.json").mkdir()
    with pytest.raises(LogFileError, match="is a directory"):
        import_json(db, d)
