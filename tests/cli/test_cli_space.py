"""``vtatune workloads`` and ``vtatune space``."""
import json

from vtatune.cli.main import main

HW4x8 = "pynq_4x8_i8w8a32_15_16_16_18"
EXAMPLE = ["ext_dev -keys=vta,cpu -device=vta -model=pynq_1x16_i8w8a32_15_15_18_17",
           "conv2d_packed.vta",
           [["TENSOR", [1, 16, 14, 14, 1, 16], "int8"], ["TENSOR", [32, 16, 1, 1, 16, 16], "int8"],
            [2, 2], [0, 0, 0, 0], [1, 1], "NCHW1n16c", "int32"], {}]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_workloads_json_all(capsys):
    code, out, _ = run(capsys, "workloads", "--json")
    d = json.loads(out)
    assert code == 0 and d["hw"] == "pynq_1x16_i8w8a32_15_15_18_17"
    rows = {r["name"]: r for r in d["workloads"]}
    assert len(rows) == 11 + 9 + 3 + 3 + 49
    assert rows["resnet18.C2"]["space_size"] == 2304 and rows["resnet18.C2"]["offloadable"]
    assert rows["resnet18.C1"]["space_size"] is None and not rows["resnet18.C1"]["offloadable"]
    assert "ARM CPU" in rows["resnet18.C1"]["reason"]
    assert rows["resnet18.C10"]["shape"] == "conv2d:B,14,14,256,512,1,0,2"
    assert not any(n.endswith((".bias", ".relu")) for n in rows)


def test_workloads_suite_text_and_4x8(capsys):
    code, out, _ = run(capsys, "workloads", "resnet18")
    assert code == 0 and "resnet18.C11" in out and "576" in out and "mobilenet" not in out
    code, out, _ = run(capsys, "workloads", "dense", "--hw", HW4x8, "--json")
    rows = {r["name"]: r for r in json.loads(out)["workloads"]}
    assert rows["dense.1"]["offloadable"] is False and "BATCH 4" in rows["dense.1"]["reason"]
    assert rows["dense.2"]["space_size"] == 60


def test_workloads_help_mentions_variants(capsys):
    try:
        main(["workloads", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out, _ = capsys.readouterr()
    assert ".bias" in out and ".relu" in out


def test_workloads_unknown_suite(capsys):
    code, out, err = run(capsys, "workloads", "nosuch")
    assert code == 1 and "WorkloadError" in err and "resnet18" in err and "Traceback" not in err


def test_space_knobs(capsys):
    code, out, _ = run(capsys, "space", "resnet18.C2", "--json")
    d = json.loads(out)
    assert code == 0 and d["size"] == 2304 and "config" not in d
    assert [k["name"] for k in d["knobs"]] == ["tile_b", "tile_h", "tile_w", "tile_ci", "tile_co",
                                                "oc_nthread", "h_nthread"]
    assert d["knobs"][1]["candidates"] == [1, 2, 4, 7, 8, 14, 28, 56]
    code, out, _ = run(capsys, "space", "resnet18.C2")
    assert code == 0 and "2304 configurations" in out and "1 2 4 7 8 14 28 56" in out


def test_space_index(capsys):
    code, out, _ = run(capsys, "space", "resnet18.C10", "--index", "203", "--json")
    c = json.loads(out)["config"]
    assert code == 0 and c["index"] == 203
    assert c["knobs"] == {"tile_b": 1, "tile_h": 7, "tile_w": 7, "tile_ci": 1, "tile_co": 16,
                          "oc_nthread": 2, "h_nthread": 1}
    assert c["entity"][4] == ["tile_co", "sp", [-1, 16]]
    code, out, _ = run(capsys, "space", "resnet18.C2", "--index", "1584")
    assert code == 0 and "tile_w=28" in out and '["h_nthread", "ot", 2]' in out


def test_space_knobs_to_index(capsys):
    code, out, _ = run(capsys, "space", "resnet18.C11", "--json", "--knobs",
                       "tile_b=1,tile_h=7,tile_w=1,tile_ci=1,tile_co=16,oc_nthread=2,h_nthread=1")
    assert code == 0 and json.loads(out)["config"]["index"] == 241


def test_space_spec_autotvm_and_hw(capsys):
    code, out, _ = run(capsys, "space", json.dumps(EXAMPLE), "--json")
    d = json.loads(out)
    assert code == 0 and d["size"] == 480 and d["hw"] == "pynq_1x16_i8w8a32_15_15_18_17"
    code, out, _ = run(capsys, "space", "conv2d:B,8,8,16,16,3,1,1", "--hw", HW4x8, "--json")
    d = json.loads(out)
    assert code == 0 and d["hw"] == HW4x8 and d["shape"] == "conv2d:4,8,8,16,16,3,1,1"
    assert d["knobs"][3] == {"name": "tile_ci", "kind": "sp", "candidates": [1, 2], "length": 2}


def test_space_errors_are_clean(capsys):
    for argv, needle in ((["space", "resnet18.C2", "--index", "2304"], "out of range"),
                         (["space", "resnet18.C1"], "ARM CPU"),
                         (["space", "conv2d:1,56,56,64,64,3,1"], "spec"),
                         (["space", "resnet18.C2", "--knobs", "tile_h=3"], "tile_b"),
                         (["space", json.dumps(EXAMPLE), "--hw", HW4x8], "-model="),
                         (["space", "[not json"], "JSON")):
        code, out, err = run(capsys, *argv)
        assert code == 1, argv
        assert needle in err and "Traceback" not in err and out == ""
