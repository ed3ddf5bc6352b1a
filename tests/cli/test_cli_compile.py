"""``vtatune compile | run | sweep | replay`` on the command line.

Expected numbers are derived by hand from the template schedules (vta-spec §6.3, §6.6) and
the knob index decoding (§6.1: first-defined knob = least-significant digit):

* resnet18.C2 (56x56, 64->64, 3x3, pad 1, s1): knobs tile_b(1) tile_h(8) tile_w(8)
  tile_ci(3) tile_co(3) oc_nthread(2) h_nthread(2).  Index 1584 = 0 + 8*(6 + 8*(0 + 3*(2 +
  3*(0 + 2*1)))) -> tile_h 1, tile_w 28, tile_ci 1, tile_co 4, oc 1, h 2.
  112 output tiles (56 rows x 2 column tiles x 1 channel tile), 4 reduction steps each.
* resnet18.C10 (14x14, 256->512, 1x1, s2, 7x7 out): 1*2*2*5*6*2*2 = 480 configurations;
  index 203 -> tile_h 7, tile_w 7, tile_ci 1, tile_co 16, oc_nthread 2, h_nthread 1.
"""
import json

import pytest

from vtatune.cli.main import main

MODEL = "pynq_1x16_i8w8a32_15_15_18_17"
TARGET = f"ext_dev -keys=vta,cpu -device=vta -model={MODEL}"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- compile
def test_compile_c2_1584_json(capsys):
    code, out, err = run(capsys, "compile", "resnet18.C2", "--index", 1584, "--json", "--sync", "tvm-0.14")
    assert code == 0, err
    d = json.loads(out)
    assert d["valid"] is True and d["index"] == 1584 and d["hw"] == MODEL
    assert d["knobs"] == {"tile_b": 1, "tile_h": 1, "tile_w": 28, "tile_ci": 1, "tile_co": 4,
                          "oc_nthread": 1, "h_nthread": 2}
    assert d["instructions"] == 3268
    k = d["by_kind"]
    assert sum(k.values()) == 3268
    tiles, steps = 56 * 2 * 1, 4
    assert k["STORE_OUT"] == tiles
    assert k["LOAD_INP"] == k["LOAD_WGT"] == tiles * steps
    assert k["GEMM"] == tiles * (1 + steps)          # reset + one GEMM per step
    assert k["ALU"] == tiles * 3                     # SHR, MIN, MAX
    assert k["LOAD_UOP"] == 2 * 5                    # 5 kernels per virtual thread, loaded once
    assert k["FINISH"] == 1
    # micro-ops per thread: reset (w, co folded) 1 + GEMM (w, kw folded; kh x co) 12 + 3 ALU
    assert d["uops"] == 2 * (1 + 3 * 4 + 3)
    assert d["dram_bytes"]["wgt"] == tiles * steps * (4 * 1 * 9) * 256
    assert d["dram_bytes"]["out"] == tiles * (4 * 1 * 28) * 16
    # per thread: input 1 ch x 3 rows x 30 cols, weights 4 x 1 x 9, acc 4 x 1 x 28
    assert d["sram_elements"] == {"inp": 2 * 90, "wgt": 2 * 36, "acc": 2 * 112}
    assert d["bundle"] is None


def test_compile_text_output(capsys):
    code, out, _ = run(capsys, "compile", "resnet18.C2", "--index", 1584, "--sync", "tvm-0.14")
    assert code == 0
    assert "instructions: 3268" in out and "micro-ops: 32" in out


def test_compile_dump_replays_in_sim(tmp_path, capsys):
    bundle = tmp_path / "c2.npz"
    code, out, err = run(capsys, "compile", "resnet18.C2", "--index", 1584, "--json", "--dump", bundle,
                         "--sync", "tvm-0.14")
    assert code == 0, err
    assert json.loads(out)["bundle"] == str(bundle) and bundle.exists()
    code, out, err = run(capsys, "sim", "run", bundle, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["insn_count"] == 3268 and d["config"] == MODEL
    c = d["counters"]
    # one GEMM op per (output pixel, out block, in block, kh, kw): 56*56 * 4 * 4 * 9
    assert c["gemm_counter"] == 56 * 56 * 4 * 4 * 9 == 451584
    assert c["alu_counter"] == 3 * 56 * 56 * 4
    assert c["out_store_nbytes"] == 56 * 56 * 64
    assert c["wgt_load_nbytes"] == 112 * 4 * 36 * 256
    assert d["leftover_tokens"] == {}


@pytest.mark.parametrize("index,knobs,reason", [
    # tile_h 56 (digit 7), tile_w 56 (digit 7), tile_ci 4 (digit 2): 7 + 8*7 + 64*2 = 191.
    # The padded input tile 4 x 58 x 58 = 13456 elements > 2048 (StorageFlatten).
    (191, {"tile_h": 56, "tile_w": 56, "tile_ci": 4, "tile_co": 1}, "inp_sram_overflow"),
    # tile_h 2 (1), tile_w 28 (6), tile_ci 1 (0), tile_co 2 (1): 1 + 8*6 + 192*1 = 241.
    # Store tile (co 2, h 2, w 28 < 56) cannot be one 2-D DMA.
    (241, {"tile_h": 2, "tile_w": 28, "tile_ci": 1, "tile_co": 2}, "dma_not_2d"),
])
def test_compile_invalid_config(capsys, index, knobs, reason):
    code, out, err = run(capsys, "compile", "resnet18.C2", "--index", index, "--json")
    assert code == 1
    d = json.loads(out)
    assert d["valid"] is False and d["index"] == index
    assert d["category"] == 2 and d["reason"] == reason and d["message"]
    assert {k: d["knobs"][k] for k in knobs} == knobs
    assert "Traceback" not in err
    # text mode says so too
    code, out, _ = run(capsys, "compile", "resnet18.C2", "--index", index)
    assert code == 1 and "INVALID" in out and reason in out


def test_run_invalid_config_reports_it(capsys):
    code, out, _ = run(capsys, "run", "resnet18.C2", "--index", 191, "--json")
    assert code == 1
    d = json.loads(out)
    assert (d["valid"], d["category"], d["reason"]) == (False, 2, "inp_sram_overflow")


@pytest.mark.parametrize("argv", [
    ["compile", "resnet18.C10", "--index", "480"],
    ["compile", "resnet18.C10", "--index", "-1"],
    ["run", "resnet18.C10", "--index", "100000"],
])
def test_index_out_of_range(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "outside the space of" in err and ("480" in err)
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("name", ["resnet18.C99", "nosuchsuite.C2", "conv2d:1,56", "resnet18.C1"])
def test_bad_workload_is_a_clean_error(capsys, name):
    code, out, err = run(capsys, "compile", name, "--index", "0")
    assert code == 1
    assert err.startswith("vtatune: ") and "Traceback" not in err
    assert out == ""


def test_compile_spec_string_equals_suite_workload(capsys):
    """resnet18.C10 written as a spec string compiles to the same program."""
    code, out, _ = run(capsys, "compile", "conv2d:1,14,14,256,512,1,0,2", "--index", 203, "--json")
    spec = json.loads(out)
    code2, out2, _ = run(capsys, "compile", "resnet18.C10", "--index", 203, "--json")
    named = json.loads(out2)
    assert code == code2 == 0
    assert spec["workload"] == "conv2d:1,14,14,256,512,1,0,2" and named["workload"] == "resnet18.C10"
    for key in ("knobs", "instructions", "by_kind", "uops", "dram_bytes", "sram_elements"):
        assert spec[key] == named[key], key


# ---------------------------------------------------------------------------- run
def test_run_c10_203_check(capsys):
    code, out, err = run(capsys, "run", "resnet18.C10", "--index", 203, "--check", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["correct"] is True and d["target"] == "fsim"
    assert d["knobs"] == {"tile_b": 1, "tile_h": 7, "tile_w": 7, "tile_ci": 1, "tile_co": 16,
                          "oc_nthread": 2, "h_nthread": 1}
    c = d["counters"]
    # 7*7 pixels x 32 out blocks x 16 in blocks (1x1 kernel)
    assert c["gemm_counter"] == 49 * 32 * 16
    assert c["alu_counter"] == 3 * 49 * 32
    assert c["out_store_nbytes"] == 49 * 512
    assert c["wgt_load_nbytes"] == 32 * 16 * 256  # every weight once
    assert d["instructions"] > 0


def test_run_text_mode(capsys):
    code, out, _ = run(capsys, "run", "resnet18.C10", "--index", 203, "--check")
    assert code == 0 and "matches the numpy reference" in out


# ---------------------------------------------------------------------------- sweep
def test_sweep_dense1(tmp_path, capsys):
    """dense.1 = (1, 256, 128): tile_b 1 candidate, tile_ci divisors of 16 (5), tile_co
    divisors of 8 (4), oc_nthread 2 -> 40 configurations.  The native profile compiles all
    of them (tiny tiles, one free variable at most in the micro-op closure); the original
    (default ``tvm-0.14`` profile) refuses the 5 that split one output-channel tile (tile_co
    8) over 2 virtual threads: the bound check of that ragged split guards the copies."""
    path = tmp_path / "d1.jsonl"
    code, out, err = run(capsys, "sweep", "dense.1", "-o", path, "--json", "--profile", "native")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["hw"] == MODEL and summary["output"] == str(path) and summary["profile"] == "native"
    assert [(w["workload"], w["configs"], w["valid"]) for w in summary["workloads"]] == [("dense.1", 40, 40)]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 40
    keys = {"workload", "hw", "profile", "sync", "index", "knobs", "valid", "category", "reason", "message"}
    assert all(set(r) == keys for r in rows)
    assert [r["index"] for r in rows] == list(range(40))
    assert all(r["valid"] and r["category"] == 0 and r["reason"] == "" for r in rows)
    code, out, err = run(capsys, "sweep", "dense.1", "-o", path, "--json")
    strict = [json.loads(line) for line in path.read_text().splitlines()]
    refused = [r["index"] for r in strict if not r["valid"]]
    # tile_co 8 is the 4th of 4 tile_co values, oc_nthread 2 the 2nd: index = ci + 5*(3 + 4*1)
    assert refused == [ci + 5 * (3 + 4) for ci in range(5)]
    assert {r["reason"] for r in strict if not r["valid"]} == {"copy_pattern_guarded"}
    # index 1: tile_ci (second knob) is the least significant non-trivial digit
    assert rows[1]["knobs"] == [["tile_b", "sp", [-1, 1]], ["tile_ci", "sp", [-1, 2]],
                                ["tile_co", "sp", [-1, 1]], ["oc_nthread", "ot", 1]]
    # index 39 = 4 + 5*(3 + 4*1): tile_ci 16, tile_co 8, oc_nthread 2
    assert rows[39]["knobs"] == [["tile_b", "sp", [-1, 1]], ["tile_ci", "sp", [-1, 16]],
                                 ["tile_co", "sp", [-1, 8]], ["oc_nthread", "ot", 2]]


def test_sweep_text_mode(tmp_path, capsys):
    path = tmp_path / "d1.jsonl"
    code, out, err = run(capsys, "sweep", "dense.1", "-o", path)
    assert code == 0 and "40 configurations" in out and "dense.1" in err
    assert len(path.read_text().splitlines()) == 40


# ---------------------------------------------------------------------------- replay
def _conv_input(h, w, ci, co, k, pad, stride, target=TARGET):
    return [target, "conv2d_packed.vta",
            [["TENSOR", [1, ci // 16, h, w, 1, 16], "int8"],
             ["TENSOR", [co // 16, ci // 16, k, k, 16, 16], "int8"],
             [stride, stride], [pad, pad, pad, pad], [1, 1], "NCHW1n16c", "int32"], {}]


def _line(inp, index, entity, error_no=0):
    rec = {"input": inp, "config": {"index": index, "code_hash": None, "entity": entity},
           "result": [[0.00123], error_no, 1.5, 1700000000.0], "version": 0.2, "tvm_version": "0.14.0"}
    return json.dumps(rec)


C10 = dict(h=14, w=14, ci=256, co=512, k=1, pad=0, stride=2)
C2 = dict(h=56, w=56, ci=64, co=64, k=3, pad=1, stride=1)
ENT_203 = [["tile_b", "sp", [-1, 1]], ["tile_h", "sp", [-1, 7]], ["tile_w", "sp", [-1, 7]],
           ["tile_ci", "sp", [-1, 1]], ["tile_co", "sp", [-1, 16]], ["oc_nthread", "ot", 2],
           ["h_nthread", "ot", 1]]
# TopHub-style: splits resolved to [outer, inner] (7 = 1*7, 16 blocks = 16*1, 32 = 2*16)
ENT_203_RESOLVED = [["tile_b", "sp", [1, 1]], ["tile_h", "sp", [1, 7]], ["tile_w", "sp", [1, 7]],
                    ["tile_ci", "sp", [16, 1]], ["tile_co", "sp", [2, 16]], ["oc_nthread", "ot", 2],
                    ["h_nthread", "ot", 1]]
ENT_C2_191 = [["tile_b", "sp", [-1, 1]], ["tile_h", "sp", [-1, 56]], ["tile_w", "sp", [-1, 56]],
              ["tile_ci", "sp", [-1, 4]], ["tile_co", "sp", [-1, 1]], ["oc_nthread", "ot", 1],
              ["h_nthread", "ot", 1]]
KNOBS_203 = {"tile_b": 1, "tile_h": 7, "tile_w": 7, "tile_ci": 1, "tile_co": 16, "oc_nthread": 2,
             "h_nthread": 1}


def _write_log(tmp_path, lines):
    p = tmp_path / "tune.log"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_replay_hand_written_log(tmp_path, capsys):
    log = _write_log(tmp_path, [
        "# hand-written AutoTVM v0.2 records",
        _line(_conv_input(**C10), 203, ENT_203),
        _line(_conv_input(**C10, target=f"ext_dev -device=vta -keys=cpu -model={MODEL}"), 203,
              ENT_203_RESOLVED),
        _line(_conv_input(**C10), 202, ENT_203),       # index does not match the entity
        _line(_conv_input(**C2), 191, ENT_C2_191, error_no=2),
        "",
        _line(_conv_input(**C10, target="ext_dev -keys=vta,cpu -device=vta -model=pynq_9x9_nope"), 203,
              ENT_203),
    ])
    code, out, err = run(capsys, "replay", log, "--json")
    assert "Traceback" not in err
    rows = json.loads(out)
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 7]
    r1, r2, r3, r4, r5 = rows

    assert (r1["index"], r1["index_matches"], r1["valid"], r1["reason"], r1["category"]) == (203, True, True, "", 0)
    assert r1["knobs"] == KNOBS_203 and r1["hw"] == MODEL and r1["recorded_error_no"] == 0
    assert "correct" not in r1  # only with --check

    assert (r2["index"], r2["index_matches"], r2["valid"]) == (203, True, True)
    assert r2["knobs"] == KNOBS_203

    assert r3["index"] == 202 and r3["index_matches"] is False
    assert "203" in r3["index_error"]              # the entity's own index is named
    assert r3["knobs"] == KNOBS_203 and r3["valid"] is True

    assert (r4["index"], r4["index_matches"], r4["valid"]) == (191, True, False)
    assert (r4["category"], r4["reason"], r4["recorded_error_no"]) == (2, "inp_sram_overflow", 2)

    assert "error" in r5 and "pynq_9x9_nope" in r5["error"]
    assert "valid" not in r5
    assert code == 1  # a line could not be evaluated


def test_replay_check_runs_valid_records(tmp_path, capsys):
    log = _write_log(tmp_path, [
        _line(_conv_input(**C10), 203, ENT_203),
        _line(_conv_input(**C10), 202, ENT_203),
        _line(_conv_input(**C2), 191, ENT_C2_191, error_no=2),
    ])
    code, out, err = run(capsys, "replay", log, "--check", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r.get("correct") for r in rows] == [True, True, None]
    assert [r["valid"] for r in rows] == [True, True, False]
    assert [r["index_matches"] for r in rows] == [True, False, True]


def test_replay_text_mode(tmp_path, capsys):
    log = _write_log(tmp_path, [
        _line(_conv_input(**C10), 203, ENT_203),
        _line(_conv_input(**C10), 202, ENT_203),
        _line(_conv_input(**C2), 191, ENT_C2_191),
        "{not json",
    ])
    code, out, err = run(capsys, "replay", log)
    lines = out.splitlines()
    assert code == 1 and len(lines) == 4
    assert "valid" in lines[0] and "index 203" in lines[0]
    assert "index does not decode" in lines[1]
    assert "invalid (inp_sram_overflow)" in lines[2]
    assert lines[3].startswith("line 4:") and "Error" in lines[3]


def test_replay_missing_file(tmp_path, capsys):
    code, out, err = run(capsys, "replay", tmp_path / "nope.log")
    assert code == 1 and "Traceback" not in err and err.startswith("vtatune: ")


def test_replay_malformed_records_are_reported_per_line(tmp_path, capsys):
    """Malformed records are reported on their line (``error``) and the remaining lines are
    still evaluated -- never an uncaught exception.  (Fails at the time of writing:
    ``"result": []`` raises IndexError and a non-object ``config`` AttributeError out of
    ``cmd_replay``.)"""
    good = _line(_conv_input(**C10), 203, ENT_203)
    empty_result = json.loads(good)
    empty_result["result"] = []
    config_list = json.loads(good)
    config_list["config"] = [["tile_h", "sp", [-1, 7]]]
    log = _write_log(tmp_path, [json.dumps(empty_result), json.dumps(config_list), good])
    code, out, err = run(capsys, "replay", log, "--json")
    assert "Traceback" not in err
    rows = json.loads(out)
    assert [r["line"] for r in rows] == [1, 2, 3]
    # a record without a recorded result can still be evaluated (or reported), not crash
    assert "error" in rows[0] or rows[0]["valid"] is True
    assert "error" in rows[1]
    assert rows[2]["valid"] is True and rows[2]["index_matches"] is True
    assert code == 1
