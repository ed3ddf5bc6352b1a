"""``vtatune study`` through the CLI entry point (the command is added to COMMANDS here,
as cli/main.py will list it)."""
import json
import re

import pytest

from vtatune.cli import main as cli_main
from vtatune.cli import study_cmd
from vtatune.study.plots import FIGURES
from vtatune.workloads import suites
from vtatune.workloads.spec import parse_spec

PNG = b"\x89PNG\r\n\x1a\n"
TINY = "conv2d:1,4,4,16,16,3,1,1"      # 36 configurations: 15 valid, 2 invalid reasons
TINY_1X1 = "conv2d:1,4,4,16,16,1,0,1"  # 36 configurations: 27 valid


@pytest.fixture(autouse=True)
def study_command(monkeypatch):
    if study_cmd not in cli_main.COMMANDS:
        monkeypatch.setattr(cli_main, "COMMANDS", cli_main.COMMANDS + (study_cmd,))


def run(capsys, *argv):
    rc = cli_main.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _check_report_dir(d, runner_label=None):
    report = (d / "report.md").read_text()
    for name in FIGURES.values():
        png = d / name
        assert png.read_bytes()[:8] == PNG, name
        assert f"]({name})" in report, name
    assert "vtatune study" in report and "machine:" in report and "date:" in report
    if runner_label:
        assert f"`{runner_label}`" in report
    return report


def test_study_writes_report_with_every_png_and_resumes(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    out = tmp_path / "rep"
    rc, stdout, err = run(capsys, "study", TINY, "--db", db, "--seeds", "2", "--sizes", "8,16",
                          "-o", str(out), "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    w, = res["workloads"]
    assert w["exploration"]["new"] == 36 and w["exploration"]["resumed"] == 0
    assert res["report"] == str(out / "report.md")
    label = w["exploration"]["runner"]
    report = _check_report_dir(out, label)
    assert "36 configurations" in report
    valid = w["e1"]["valid"]
    assert f"valid {valid} (" in report
    full = json.loads((out / "study.json").read_text())
    assert full["e1"]["valid"] == valid
    assert {r["n"] for r in full["e3"]["summary"]} == {8, 16}
    assert full["task"]["size"] == 36
    # the E3 table has one line per (n, metric): 2 sizes x 7 metrics
    assert len(re.findall(r"^\| (8|16) \| ", report, flags=re.MULTILINE)) == 14

    # rerun: nothing measured again, report rewritten
    (out / "report.md").unlink()
    rc, stdout, err = run(capsys, "study", TINY, "--db", db, "--seeds", "2", "--sizes", "8,16",
                          "-o", str(out))
    assert rc == 0, err
    assert "36 from the database, 0 measured" in stdout
    _check_report_dir(out, label)


def test_suite_writes_one_report_per_workload_and_a_summary(tmp_path, capsys, monkeypatch):
    tiny = [parse_spec(TINY), parse_spec(TINY_1X1)]
    real_list, real_suite = suites.list_suites, suites.suite
    monkeypatch.setattr(suites, "list_suites", lambda: real_list() + ["tiny"])
    monkeypatch.setattr(suites, "suite", lambda name: tiny if name == "tiny" else real_suite(name))
    db = f"sqlite:///{tmp_path / 's.db'}"
    out = tmp_path / "suite"
    rc, _, err = run(capsys, "study", "tiny", "--db", db, "--seeds", "1", "--sizes", "8",
                          "-o", str(out))
    assert rc == 0, err
    summary = (out / "report.md").read_text()
    for spec in (TINY, TINY_1X1):
        d = out / study_cmd._safe(spec)
        _check_report_dir(d)
        assert f"]({d.name}/report.md)" in summary
    assert summary.count("\n| [conv2d:") == 2


@pytest.mark.parametrize("argv,needle", [
    (["--seeds", "0"], "--seeds"), (["--workers", "0"], "--workers"),
    (["--sizes", "1"], "--sizes"), (["--sizes", "a,b"], "--sizes"), (["--sizes", ","], "--sizes"),
])
def test_bad_counts_are_usage_errors_naming_the_option(tmp_path, capsys, argv, needle):
    db = tmp_path / "never.db"
    rc, _, err = run(capsys, "study", TINY, "--db", f"sqlite:///{db}", "-o",
                     str(tmp_path / "o"), *argv)
    assert rc == 2 and needle in err
    assert not db.exists() and not (tmp_path / "o").exists()


def test_unknown_target_is_refused_before_anything_is_measured(tmp_path, capsys):
    db = tmp_path / "never.db"
    rc, _, err = run(capsys, "study", TINY, "--target", "board", "--db", f"sqlite:///{db}",
                     "-o", str(tmp_path / "o"))
    assert rc == 1 and "target" in err
    assert not db.exists()


def test_default_output_directory_names_the_workload(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli_main.build_parser().parse_args(["study", "resnet18.C5"])
    assert args.output is None and args.seeds == 20 and args.workers == 2
    assert study_cmd._safe("resnet18.C5") == "resnet18.C5"
    assert study_cmd._safe(TINY) == "conv2d_1_4_4_16_16_3_1_1"
    assert "--db" in study_cmd._command(
        cli_main.build_parser().parse_args(["study", "x", "--db", "postgresql://u:pw@h/d"]))
    cmd = study_cmd._command(
        cli_main.build_parser().parse_args(["study", "x", "--db", "postgresql://u:pw@h/d"]))
    assert "pw" not in " ".join(cmd) and "postgresql://u:***@h/d" in cmd


@pytest.mark.parametrize("pattern", ["none", "all"])
def test_report_of_a_space_with_no_or_only_valid_configurations(tmp_path, monkeypatch, pattern):
    """Degenerate spaces still give a complete report (synthetic table, no measurement)."""
    import numpy as np

    from vtatune.autotune import TuneSummary
    from vtatune.study import VALID, StudyData, run
    from vtatune.task import VtaTask
    task = VtaTask.create(TINY)
    n = task.space.size
    label = np.full(n, VALID if pattern == "all" else 0, dtype=np.int8)
    cost = np.where(label == VALID, 1e-3 + np.arange(n) * 1e-5, np.inf)
    data = StudyData(task.name, task.workload.spec, task.hw.name, "tsim/x", task.space, 1e9,
                     label, np.where(label == VALID, 0, 2).astype(np.int16),
                     np.where(label == VALID, "", "made_up").astype(object), cost)
    summary = TuneSummary(task.name, task.hw.name, "tsim", "grid", n, runner="tsim/x",
                          measured=n, resumed=n)
    monkeypatch.setattr(run, "explore", lambda *a, **k: (summary, data))
    st = run.study_workload(task, "tsim", db=None, out_dir=tmp_path,
                            options=run.StudyOptions(seeds=2, sizes=(8,)),
                            meta=run.run_meta(["study", TINY]))
    report = _check_report_dir(tmp_path, "tsim/x")
    e1 = st.result["e1"]
    if pattern == "none":
        assert e1["invalid_fraction"] == 1.0 and st.result["best"] is None
        assert st.result["e2"]["adjacent"]["components"] == 0
        assert "Not computed" in report
    else:
        assert e1["invalid_fraction"] == 0.0 and st.result["best"]["index"] == 0
        assert st.result["e2"]["adjacent"]["components"] == 1
        rows = st.result["e3"]["rows"]
        s1 = [r for r in rows if r["scenario"] == "S1"]
        s2 = [r for r in rows if r["scenario"] == "S2"]
        # nothing invalid to keep or remove: both scenarios fit the same data
        assert [r["pairwise"] for r in s1] == [r["pairwise"] for r in s2]
