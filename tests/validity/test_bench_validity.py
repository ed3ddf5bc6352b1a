"""scripts/bench_validity.py: oracle, leave-one-workload-out split, one run's figures, and
the whole benchmark end to end on a tiny setting."""
import importlib.util
import json
import math
import pathlib
import sys

import pytest

from vtatune.compiler.sweep import verdict
from vtatune.errors import ConfigurationError
from vtatune.hardware.config import HwConfig
from vtatune.workloads.suites import resolve_workload

ROOT = pathlib.Path(__file__).resolve().parents[2]
HW = HwConfig.load()
TABLE = ROOT / "docs/data/resnet18_tsim.jsonl"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_validity", ROOT / "scripts/bench_validity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_validity"] = mod   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tables(bench):
    return bench.load_tables([TABLE])


def test_oracle_answers_from_the_table_and_the_verdict(bench, tables):
    o = bench.make_oracle("resnet18.C11", HW, tables)
    rows = {}
    for line in TABLE.read_text().splitlines():
        r = json.loads(line)
        if r["workload"] == "resnet18.C11":
            rows[r["index"]] = r["cost_s"]
    assert o.n_valid == len(rows) == 40   # 64 compile, 24 of them split 7 rows over 2 threads
    best = min(rows.values())
    assert [i for i, c in rows.items() if c == best] == o.optima.tolist()
    measure = bench.OracleMeasure(o)
    valid_i = next(iter(rows))
    invalid_i = next(i for i in range(o.task.space.size) if i not in rows)
    ov, oi = measure([valid_i, invalid_i])
    assert ov.valid and ov.costs == (rows[valid_i],) and ov.error_no == 0
    ok, cat, _, _ = verdict(o.task.workload, o.task.space.get(invalid_i).knobs, HW)
    assert not ok and not oi.valid and oi.error_no == cat
    assert ov.flops == o.task.flops
    assert [x.index for x in measure.log] == [valid_i, invalid_i]


def test_a_workload_without_a_table_is_refused(bench, tables):
    with pytest.raises(ConfigurationError) as e:
        bench.make_oracle("deepbench.4", HW, tables)
    assert e.value.field == "workloads" and "no exhaustive tsim table" in str(e.value)
    # a spec string of a tabled layer finds its table
    o = bench.make_oracle("conv2d:1,7,7,512,512,3,1,1", HW, tables)
    assert o.table.endswith("resnet18.C11")
    # an incomplete table is refused
    short = {k: dict(list(v.items())[:-1]) for k, v in tables.items()}
    with pytest.raises(ConfigurationError) as e:
        bench.make_oracle("resnet18.C11", HW, short)
    assert e.value.field == "tables"


def test_leave_one_workload_out_split(bench):
    cands = bench.training_candidates(["resnet18", "deepbench"], HW)
    names = {w.name for w in cands}
    assert "resnet18.C2" in names and "deepbench.1" in names
    for ref in bench.DEFAULT_WORKLOADS:
        target, _ = resolve_workload(ref, HW)
        train = bench.training_split(target, cands)
        # independently: nothing with the target's shape (batch aside) and epilogue
        same = [w for w in cands if w.shape[2:] == target.shape[2:] and w.epilogue == target.epilogue]
        assert same, ref
        assert all(w not in train for w in same)
        assert len(train) == len(cands) - len(same)
    # deepbench.9 is resnet18.C2's layer under another name: both left out
    c2, _ = resolve_workload("resnet18.C2", HW)
    three = [resolve_workload(n, HW)[0] for n in ("resnet18.C2", "deepbench.9", "resnet18.C5")]
    assert [w.name for w in bench.training_split(c2, three)] == ["resnet18.C5"]
    assert "deepbench.9" not in names     # candidates hold each layer once
    # the cross-hardware target (batch 4 on 4x8) also leaves out its 1x16 layer
    x, _ = resolve_workload("resnet18.C9", HwConfig.load(bench.CROSS_HW))
    assert "resnet18.C9" not in {w.name for w in bench.training_split(x, cands)}


def test_run_figures_and_budget_plus_one(bench, tables):
    o = bench.make_oracle("resnet18.C9", HW, tables)
    o.p_learned["main"] = o.verdict.astype(float) * 0.9 + 0.05
    r = bench.run_one(o, bench.VARIANTS["xgb-reg"], 0, 3)
    assert r["measured"] == 3 and not r["reached"] and r["trials_to_best"] == 4
    r = bench.run_one(o, bench.VARIANTS["xgb-reg"], 0, 480)
    assert r["reached"] and r["best_ratio"] == 1.0
    assert r["trials_to_best"] <= r["measured"] <= 480   # stops in the chunk that found the optimum
    assert 0 < r["invalid"] < r["trials_to_best"]
    r = bench.run_one(o, bench.VARIANTS["exact"], 0, 480)
    assert r["reached"] and r["invalid"] == 0 and not r["optimum_screened"]
    # a screen that drops the optimum is reported, and the run counts budget + 1
    o.p_learned["main"] = o.p_learned["main"].copy()
    o.p_learned["main"][o.optima] = 0.0
    r = bench.run_one(o, bench.VARIANTS["learned"], 0, 200)
    assert r["optimum_screened"] and not r["reached"] and r["trials_to_best"] == 201


def test_bench_end_to_end(bench, tmp_path):
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    rc = bench.main(["--workloads", "resnet18.C9,resnet18.C11", "--seeds", "2", "--budget", "120",
                     "--cross-hw", "", "--jobs", "1", "--train", "resnet18.C2,resnet18.C10,resnet18.C11",
                     "--trees", "15", "--per-workload", "300", "--tables", str(TABLE),
                     "--variants", "xgb-reg,learned,exact,probe", "--cache", str(tmp_path / "c"),
                     "--json", str(out), "--summary", str(tmp_path / "s.json"), "-o", str(md)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert {r["variant"] for r in rep["runs"]} == {"xgb-reg", "learned", "exact", "probe"}
    assert len(rep["runs"]) == 2 * 4 * 2
    for r in rep["runs"]:
        for k in ("workload", "variant", "seed", "trials_to_best", "invalid", "reached",
                  "optimum_screened", "screened", "measured", "budget"):
            assert k in r
        assert r["trials_to_best"] <= r["budget"] + 1
    for w in rep["workloads"].values():
        trained = w["classifier"]["main"]["trained_on"]
        assert w["name"] not in trained                      # leave-one-workload-out
        if w["name"] == "resnet18.C11":
            assert trained == ["resnet18.C2", "resnet18.C10"]
        else:
            assert trained == ["resnet18.C2", "resnet18.C10", "resnet18.C11"]
    ov = rep["summary"]["overall"]
    assert ov[f"{HW.name}|xgb-reg"]["ratio_median"] == 1.0
    for v in ("learned", "exact", "probe"):
        o = ov[f"{HW.name}|{v}"]
        assert math.isfinite(o["ratio_median"]) and 0 <= o["reached"] <= 1
        assert 0 <= o["optimum_screened"] <= 1
    assert ov[f"{HW.name}|exact"]["invalid_mean"] == 0
    assert "| resnet18.C9 |" in md.read_text()
    assert "runs" not in json.loads((tmp_path / "s.json").read_text())
    assert bench.rerender(str(out)) + "\n" == md.read_text()   # re-rendered from the runs
    with pytest.raises(ConfigurationError) as e:
        bench.main(["--variants", "xgb-reg,magic", "--cross-hw", ""])
    assert e.value.field == "variants"
