"""``vtatune tune MODEL``: a model's VTA layers become one tuning task per distinct shape,
with the AutoTVM/TopHub keys of those shapes; the tuning run resumes like any other."""
import json

import pytest

from vtatune.cli.main import main
from vtatune.task import VtaTask


@pytest.fixture(scope="module")
def extras(require_extra):
    require_extra("tvm", "tvm")
    require_extra("torch", "models")


def test_full_size_resnet18_tasks_are_the_tutorial_layers(extras):
    from vtatune.network.tasks import network_tasks
    tasks, placements, _ = network_tasks("resnet18:res=224")
    # vta-spec §6.9: C2..C11 are ResNet-18's offloaded conv shapes (C1, 3 input channels,
    # stays on the CPU), with these occurrence counts; the classifier is the dense task
    expected = {f"resnet18.C{i}": n for i, n in
                zip(range(2, 12), (4, 1, 1, 3, 1, 1, 3, 1, 1, 3))}
    keys = {VtaTask.create(name).key: n for name, n in expected.items()}
    convs = [t for t in tasks if t.task.template.startswith("conv2d")]
    assert {t.task.key: len(t.layers) for t in convs} == keys
    (dense,) = [t for t in tasks if t.task.template.startswith("dense")]
    assert (dense.task.workload.in_channels, dense.task.workload.out_channels) == (512, 1008)
    cpu = [p for p in placements if p.op in ("conv2d", "dense") and not p.on_vta]
    assert len(cpu) == 1 and cpu[0].workload is None and "3" in cpu[0].reason
    assert sum(p.on_vta for p in placements) == 19 + 1


def test_cli_tunes_a_model_and_resumes(extras, tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["tune", "resnet18:res=32,stages=1", "--target", "fsim", "--tuner", "random",
            "--trials", "3", "--db", db, "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first) >= 2 and all(s["new"] == 3 for s in first)
    assert main(args) == 0  # every layer already tuned: nothing new
    again = json.loads(capsys.readouterr().out)
    assert [s["workload"] for s in again] == [s["workload"] for s in first]
    assert all((s["resumed"], s["new"]) == (3, 0) for s in again)


def test_cli_model_errors_are_one_line(extras, tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["tune", "resnet18.C5", "--batch", "2", "--db", db]) == 2
    assert "--batch is for models" in capsys.readouterr().err
    assert main(["tune", "nosuchmodel", "--model", "--db", db]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuchmodel" in err[0]
    assert main(["tune", str(tmp_path / "missing.onnx"), "--db", db]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.onnx" in err[0]
