"""Labels from records (measured/imported only, never predicted) and from sweeps."""
from types import SimpleNamespace

import numpy as np
import pytest

from vtatune.compiler.sweep import verdict
from vtatune.errors import ValidityModelError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.validity import (
    LABEL_SOURCES,
    ValidityModel,
    record_label,
    record_labels,
    record_set,
    sweep_labels,
    sweep_set,
)
from vtatune.validity import labels as labels_mod
from vtatune.workloads.suites import resolve_workload

HW = HwConfig.load()


def rec(index, error_no=0, source="measured", reason="", workload_name="w"):
    return SimpleNamespace(config_index=index, error_no=error_no, source=source, reason=reason,
                           workload_name=workload_name)


def test_category_mapping():
    assert LABEL_SOURCES == ("measured", "imported")
    expected = {0: 1, 1: None, 2: 0, 3: 0, 4: 0, 5: 0, 6: None, 7: None, 8: None}
    for err, lab in expected.items():
        assert record_label(rec(0, err)) == lab, err
        assert record_label(rec(0, err, source="imported")) == lab, err
        assert record_label(rec(0, err, source="predicted")) is None, err
    # crashes and timeouts are never labels, whatever the category says
    for reason in ("build_crashed", "run_crashed", "worker_crashed", "run_timeout", "not_modelled"):
        assert record_label(rec(0, 2 if "build" in reason else 4, reason=reason)) is None
    assert record_label(rec(0, 4, reason="uop_hazard")) == 0
    assert record_label({"source": "measured", "error_no": 2, "config_index": 3}) == 0


def test_bad_record_fields_are_named():
    for bad, field in [(rec(0, "2"), "error_no"), (rec(0, True), "error_no"),
                       (rec(0, 9), "error_no"), (rec(0, 0, source=None), "source")]:
        with pytest.raises(ValidityModelError) as e:
            record_label(bad)
        assert e.value.field == field
    with pytest.raises(ValidityModelError) as e:
        record_labels([rec(-1, 0)])
    assert e.value.field == "config_index"


def test_predicted_records_are_never_labels():
    recs = [rec(1, 0), rec(2, 2), rec(3, 0, "imported"), rec(2, 2, "imported"),
            rec(4, 0, "predicted"),             # only a prediction: no label
            rec(2, 0, "predicted"),             # contradicts measurements: ignored
            rec(5, 4), rec(5, 0),               # measured both ways: dropped
            rec(6, 7), rec(7, 4, reason="run_crashed"), rec(None, 0),
            rec(8, 0, workload_name="other")]
    rl = record_labels(recs, workload_name="w")
    assert rl.indices.tolist() == [1, 2, 3] and rl.labels.tolist() == [1, 0, 1]
    assert rl.counts["skipped_source:predicted"] == 2
    assert rl.counts["conflicting"] == 1 and rl.counts["skipped_no_index"] == 1
    assert rl.counts["used_measured"] == 4 and rl.counts["used_imported"] == 2


def test_predicted_records_do_not_change_a_model():
    wl, hw = resolve_workload("resnet18.C11", HW)
    lab = sweep_labels(wl, hw)
    idx, y = lab.labels()
    measured = [rec(int(i), 0 if v else 2) for i, v in zip(idx, y)]
    # predictions claiming the opposite of every measurement, and on every index
    predicted = [rec(int(i), 2 if v else 0, "predicted") for i, v in zip(idx, y)]
    a = record_set(wl, hw, measured)
    b = record_set(wl, hw, measured + predicted)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.labels, b.labels)
    pa = ValidityModel("gb", "derived", n_estimators=20).fit([a]).predict_proba(wl, hw)
    pb = ValidityModel("gb", "derived", n_estimators=20).fit([b]).predict_proba(wl, hw)
    assert np.array_equal(pa, pb)
    with pytest.raises(ValidityModelError) as e:     # predictions alone give no labels
        ValidityModel("gb", "derived").fit([record_set(wl, hw, predicted)])
    assert e.value.field == "labels"


def test_sweep_labels_match_verdicts_and_cache(tmp_path):
    wl, hw = resolve_workload("resnet18.C9", HW)
    space = space_for(wl, hw)
    first = sweep_labels(wl, hw, cache_dir=tmp_path)
    files = list(tmp_path.glob("sweep-*.npz"))
    assert len(files) == 1 and first.valid.size == space.size
    for i in (0, 17, 200, 479):
        v, cat, reason, _ = verdict(wl, space.get(i).knobs, hw)
        assert (first.valid[i], first.category[i], first.reason[i]) == (v, cat, reason)
    labels_mod._MEMO.clear()                          # the next read comes from disk
    again = sweep_labels(wl, hw, cache_dir=tmp_path)
    assert again is not first
    assert np.array_equal(again.valid, first.valid) and np.array_equal(again.reason, first.reason)
    s = sweep_set(wl, hw, indices=[3, 5, 8])
    assert s.indices.tolist() == [3, 5, 8] and s.labels.tolist() == first.valid[[3, 5, 8]].astype(int).tolist()
    # the same shape under another epilogue is another cache entry
    assert labels_mod.sweep_key(wl, hw) != labels_mod.sweep_key(resolve_workload("resnet18.C9.bias", HW)[0], hw)
