"""`vtatune tune --screen/--init`: the strategies reach the search loop through the CLI."""
import json

import pytest

from vtatune.cli.main import main
from vtatune.db import open_db
from vtatune.task import VtaTask

HW = "pynq_1x16_i8w8a32_15_15_18_17"


@pytest.fixture
def fake_pool(monkeypatch, verdict_pool):
    import vtatune.measure.pool as pool_module
    monkeypatch.setattr(pool_module, "MeasurePool", lambda n: verdict_pool)


def test_exact_screen_with_validity_init_measures_only_valid(tmp_path, fake_pool, capsys):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    assert main(["tune", "resnet18.C10", "--trials", "100", "--tuner", "random", "--screen",
                 "exact", "--init", "validity", "--db", url, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)[0]
    assert s["new"] == 100 and s["invalid"] == 0 and s["screened"] > 0
    db = open_db(url)
    task = VtaTask.create("resnet18.C10", HW)
    assert len(db.records(workload_key=task.key, source="predicted")) == s["screened"]
    db.close()


def test_probe_init_counts_its_probe(tmp_path, fake_pool, capsys):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert main(["tune", "resnet18.C10", "--trials", "30", "--init", "probe", "--db", url,
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)[0]
    assert s["new"] == 30 and s["screened"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--screen", "learned"], "--validity-model"),
    (["--threshold", "1.5"], "--threshold"),
    (["--weight-acquisition", "--tuner", "random"], "xgb"),
])
def test_validity_options_are_checked(tmp_path, argv, message, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["tune", "resnet18.C10", "--db", url, *argv]) == 2
    assert message in capsys.readouterr().err
