"""The paper-like transfer-tuning benchmark's helpers (scripts/bench_transfer_pairs.py,
issue 16): pair parsing, kernel selection, the active-time timeline, the match and
equal-time look-ups, the consistent copy of a WAL database, dlight's default schedule."""
from __future__ import annotations

import importlib.util
import math
import pathlib
import sqlite3
from types import SimpleNamespace as K

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_transfer_pairs",
                                                  ROOT / "scripts/bench_transfer_pairs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pairs_parse_and_bad_pairs_name_the_field(bench, capsys):
    assert bench.parse_pair(" resnet18:res=96,width=0.5 -> resnet50:res=64,stages=3 ") == (
        "resnet18:res=96,width=0.5", "resnet50:res=64,stages=3")
    for text, field in (("resnet18 resnet50", "pair"), ("a->b->c", "pair"),
                        ("resnet18->", "pair"), ("toy->toy", "pair"),
                        ("resnet18->nosuchnet", "pair target"),
                        ("resnet18:depth=3->resnet50", "pair source")):
        with pytest.raises(bench.BenchError) as ei:
            bench.parse_pair(text)
        assert ei.value.field.startswith(field), (text, ei.value.field)
    with pytest.raises(bench.BenchError) as ei:
        bench.parse_pair("resnet18:depth=3->resnet50")
    assert "depth" in str(ei.value)                 # the bad option is named
    with pytest.raises(SystemExit) as ei:
        bench.main(["--pair", "bert->nosuchnet", "--out", "/nonexistent"])
    assert ei.value.code == 2 and "pair target" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--budget", "0"])
    assert "budget" in capsys.readouterr().err
    with pytest.raises(bench.BenchError) as ei:
        bench.parse_hhmm("25:00")
    assert ei.value.field == "extend-until"


def test_selection_skips_identical_and_foreign_kernels_and_covers_every_class(bench):
    src = [K(name="s_conv_big", klass="conv", weight=1, flops=50.0),
           K(name="s_conv_small", klass="conv", weight=2, flops=10.0),
           K(name="s_conv_add", klass="conv_add", weight=1, flops=5.0),
           K(name="s_pool", klass="pool", weight=1, flops=100.0)]
    tgt = [K(name="t_same", klass="conv", weight=4, flops=100.0),     # identical: reuse
           K(name="t_conv", klass="conv", weight=2, flops=40.0),      # work 80
           K(name="t_dense", klass="dense", weight=9, flops=90.0),    # no source class
           K(name="t_conv_add", klass="conv_add", weight=3, flops=20.0),   # work 60
           K(name="t_conv2", klass="conv", weight=1, flops=30.0),     # work 30
           K(name="t_reshape", klass="conv_add", weight=5, flops=0.0)]
    t, s = bench.select_kernels(src, tgt, {"t_same": "s_conv_big"}, k=2, k_src=2)
    assert [x.name for x in t] == ["t_conv", "t_conv_add"]
    # one per class first (conv's heaviest, then conv_add's), never the pool kernel
    assert [x.name for x in s] == ["s_conv_big", "s_conv_add"]
    t, s = bench.select_kernels(src, tgt, {}, k=1, k_src=3)
    assert [x.name for x in t] == ["t_same"]
    assert [x.name for x in s] == ["s_conv_big", "s_conv_small"]   # only the conv class


def test_active_time_leaves_out_the_pause_between_sessions(bench):
    sessions = [[100.0, 160.0], [1000.0, 1030.0]]
    assert bench.active_time(130.0, sessions) == 30.0
    assert bench.active_time(500.0, sessions) == 60.0          # during the pause
    assert bench.active_time(1010.0, sessions) == 60.0 + 10.0
    assert bench.active_time(50.0, sessions) == 0.0


def test_match_and_equal_time_lookups_and_share(bench):
    # (active seconds, trials so far, kernel-level sum) after each improvement
    events = [(70.0, 32, 9.0), (140.0, 64, 5.0), (300.0, 160, 2.0), (500.0, 288, 1.5)]
    assert bench.match_point(events, 2.0) == (300.0, 160, 2.0)
    assert bench.match_point(events, 1.0) is None
    assert bench.latency_at(events, 30.0, 20.0) == 20.0        # nothing measured yet
    assert bench.latency_at(events, 150.0, 20.0) == 5.0
    assert bench.latency_at(events, 1e9, 20.0) == 1.5
    # S_TT = 10, S_full = 19: (10 - 1) / (19 - 1) = 50 %
    assert bench.share(10.0, 19.0) == pytest.approx(50.0)
    assert bench.share(2.0, 1.0) is None
    s = bench.spread([1.0, None, 3.0, math.inf])
    assert s == {"mean": 2.0, "min": 1.0, "max": 3.0, "n": 2}


def test_convergence_is_reported_not_raised(bench):
    improving = [10.0] * 60 + [9.0] * 20 + [8.0] * 20
    c = bench.check_convergence(improving)
    assert not c["converged"] and c["gain"] == pytest.approx(1 - 8.0 / 9.0)
    assert bench.check_convergence([5.0])["text"].startswith("not judged")
    assert bench.check_convergence([5.0] * 8)["converged"]


def test_wal_copy_keeps_uncheckpointed_rows(bench, tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    con = sqlite3.connect(src)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
    con.commit()                      # still in a-db-wal, the open connection keeps it there
    bench.copy_sqlite(src, dst)
    con.close()
    with sqlite3.connect(dst) as c2:
        assert c2.execute("SELECT count(*), sum(x) FROM t").fetchone() == (50, sum(range(50)))


def test_dlight_default_does_not_rewrite_the_kernel_in_place(bench, target):
    import tvm_ffi

    from vtatune.backends.tvm.importer import extract_kernels, load_model
    ks = {k.name: k for k in extract_kernels(load_model("toy", with_reference=False), target)}
    conv = next(k for n, k in ks.items() if "conv2d" in n)
    before = tvm_ffi.structural_hash(conv.mod)
    mod, rule = bench.dlight_default(conv.mod, target)
    assert tvm_ffi.structural_hash(conv.mod) == before      # dlight's pass alone mutates it
    assert rule == "Reduction" and not tvm_ffi.structural_equal(mod, conv.mod)
