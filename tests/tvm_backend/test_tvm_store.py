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
