"""``vtatune validity train|predict|eval`` through an argparse harness (the module is not
registered in vtatune/cli/main.py yet)."""
import argparse
import json

import pytest

from vtatune.cli import validity_cmd
from vtatune.errors import CLIUsageError, ValidityModelError


def run(capsys, *argv):
    p = argparse.ArgumentParser(prog="vtatune")
    validity_cmd.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(list(argv))
    code = args.func(args)
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tmp_path_factory.mktemp("validity") / "c9c10.joblib"


def test_train_predict_eval(capsys, model_path, tmp_path):
    code, out = run(capsys, "validity", "train", "resnet18.C9", "resnet18.C10", "--model", "gb",
                    "--features", "derived", "-o", str(model_path), "--json",
                    "--cache", str(tmp_path / "cache"))
    info = json.loads(out)
    assert code == 0 and model_path.is_file() and list((tmp_path / "cache").glob("sweep-*.npz"))
    assert info["kind"] == "gb" and info["features"] == "derived"
    assert info["template"] == "conv2d_packed.vta"
    assert [t["n"] for t in info["trained_on"]] == [480, 480]
    assert [t["valid"] for t in info["trained_on"]] == [40, 132]   # docs/sweeps.md (tvm-0.14)

    jsonl = tmp_path / "p.jsonl"
    code, out = run(capsys, "validity", "predict", str(model_path), "resnet18.C11", "-o", str(jsonl),
                    "--json")
    summary = json.loads(out)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert code == 0 and len(lines) == 576 == summary["configs"]
    assert [x["index"] for x in lines] == list(range(576))
    assert all(0 <= x["p_valid"] <= 1 and x["workload"] == "resnet18.C11" for x in lines)
    assert summary["predicted_valid"] == sum(x["p_valid"] >= 0.5 for x in lines)
    assert summary["seen_in_training"] is False

    code, out = run(capsys, "validity", "predict", str(model_path), "resnet18.C11")
    assert [json.loads(line)["p_valid"] for line in out.splitlines()] == [x["p_valid"] for x in lines]

    code, out = run(capsys, "validity", "eval", str(model_path), "resnet18.C11", "resnet18.C9", "--json")
    res = json.loads(out)
    rows = {r["workload"]: r for r in res["per_workload"]}
    assert rows["resnet18.C9"]["seen"] is True and rows["resnet18.C11"]["seen"] is False
    assert rows["resnet18.C11"]["n"] == 576 and rows["resnet18.C11"]["valid"] == 40
    assert res["overall"]["n"] == 576 + 480
    code, out = run(capsys, "validity", "eval", str(model_path), "resnet18.C11", "resnet18.C9")
    assert "resnet18.C9 *" in out and "not a held-out figure" in out and "overall" in out


def test_cli_errors(capsys, model_path, tmp_path):
    with pytest.raises(CLIUsageError):
        run(capsys, "validity", "train", "resnet18.C9", "dense.0", "-o", str(tmp_path / "x"))
    with pytest.raises(ValidityModelError) as e:
        run(capsys, "validity", "predict", str(model_path), "dense.0")
    assert e.value.field == "template"
    with pytest.raises(ValidityModelError) as e:
        run(capsys, "validity", "eval", str(model_path), "resnet18.C11", "--threshold", "1.5")
    assert e.value.field == "threshold"
    with pytest.raises(ValidityModelError) as e:
        run(capsys, "validity", "predict", str(model_path), "resnet18.C11",
            "--hw", "pynq_4x8_i8w8a32_15_16_16_18")
    assert e.value.field == "hw"
