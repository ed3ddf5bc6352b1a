"""The command line: conventions (--json, --hw), outputs and clean errors."""
import json
import subprocess
import sys

import numpy as np

from vtatune.cli.main import main

SHIPPED = {"pynq_1x16_i8w8a32_15_15_18_17", "pynq_4x8_i8w8a32_15_16_16_18",
           "ultra96_1x16_i8w8a32_15_15_18_17", "zcu104_1x16_i8w8a32_15_15_18_17",
           "de10nano_1x16_i8w8a32_15_15_18_17"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hw_list_json(capsys):
    code, out, _ = run(capsys, "hw", "list", "--json")
    assert code == 0
    assert {r["name"] for r in json.loads(out)} == SHIPPED


def test_hw_show_default_and_named(capsys):
    code, out, _ = run(capsys, "hw", "show", "--json")
    d = json.loads(out)
    assert code == 0 and d["name"] == "pynq_1x16_i8w8a32_15_15_18_17"
    assert (d["derived"]["INP_BUFF_DEPTH"], d["derived"]["WGT_BUFF_DEPTH"],
            d["derived"]["ACC_BUFF_DEPTH"], d["derived"]["UOP_BUFF_DEPTH"]) == (2048, 1024, 2048, 8192)
    code, out, _ = run(capsys, "hw", "show", "pynq_4x8_i8w8a32_15_16_16_18", "--json")
    d = json.loads(out)
    assert (d["derived"]["BATCH"], d["derived"]["BLOCK_IN"], d["derived"]["INP_ELEM_BYTES"]) == (4, 8, 32)
    code, out, _ = run(capsys, "hw", "show")
    assert code == 0 and "LOG_ACC_BUFF_SIZE" in out and "ACC_BUFF_DEPTH" in out


def test_hw_show_from_file(tmp_path, capsys):
    cfg = dict(TARGET="ultra96", HW_VER="0.0.2", LOG_INP_WIDTH=3, LOG_WGT_WIDTH=3,
               LOG_ACC_WIDTH=5, LOG_BATCH=0, LOG_BLOCK=5, LOG_UOP_BUFF_SIZE=15,
               LOG_INP_BUFF_SIZE=15, LOG_WGT_BUFF_SIZE=18, LOG_ACC_BUFF_SIZE=17)
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(cfg))
    code, out, _ = run(capsys, "hw", "show", "--hw", str(p), "--json")
    d = json.loads(out)
    assert code == 0 and d["name"] == "ultra96_1x32_i8w8a32_15_15_18_17"
    # 1x32 column of the dossier's table: WGT elem 1024 B, depth 256; uop fields 10/10/8
    assert (d["derived"]["WGT_ELEM_BYTES"], d["derived"]["WGT_BUFF_DEPTH"]) == (1024, 256)
    assert (d["derived"]["UOP_DST_BITS"], d["derived"]["UOP_SRC_BITS"], d["derived"]["UOP_WGT_BITS"]) == (10, 10, 8)
    assert d["derived"]["BUS_WIDTH"] == 128


def test_bad_hw_is_a_clean_error(capsys, tmp_path):
    code, out, err = run(capsys, "hw", "show", "no_such_config")
    assert code == 1 and "ConfigurationError" in err and "Traceback" not in err
    p = tmp_path / "bad.json"
    p.write_text('{"TARGET": "pynq"}')
    code, out, err = run(capsys, "hw", "show", str(p))
    assert code == 1 and "HW_VER" in err


def test_disasm_bundle(ref_dir, capsys):
    code, out, _ = run(capsys, "disasm", str(ref_dir / "C10_203.npz"))
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 1 + 189
    assert "LOAD UOP" in lines[1] and lines[-1].endswith("FINISH")
    code, out, _ = run(capsys, "disasm", str(ref_dir / "C10_203.npz"), "--json", "--uops")
    d = json.loads(out)
    first = d["instructions"][0]
    # LOAD UOP of 7 micro-ops; the reset kernel walks dst 0, 7, ..., 42 (1 per output row)
    assert first["kind"] == "MemInsn" and first["x_size"] == 7
    assert [u["dst_idx"] for u in first["uops"]] == [0, 7, 14, 21, 28, 35, 42]
    assert d["instructions"][-1]["kind"] == "FinishInsn"


def test_disasm_raw_file(tmp_path, capsys):
    # FINISH = opcode 3 in bits 0..2; a LOAD INP (memory_type 2 in bits 7..9) with only
    # push_next (bit 6) and x_size 0: a load-module NOP that pushes to compute (l2g)
    raw = (3).to_bytes(16, "little") + ((2 << 7) | (1 << 6)).to_bytes(16, "little")
    p = tmp_path / "insns.bin"
    p.write_bytes(raw)
    code, out, _ = run(capsys, "disasm", str(p))
    assert code == 0 and "FINISH" in out and "NOP-LOAD" in out and "push l2g" in out
    p.write_bytes(raw[:20])
    code, _, err = run(capsys, "disasm", str(p))
    assert code == 1 and "multiple of 16" in err


def test_sim_run_writes_final_state(ref_dir, tmp_path, capsys):
    out_path = tmp_path / "out.npz"
    code, out, _ = run(capsys, "sim", "run", str(ref_dir / "C10_203.npz"), "-o", str(out_path), "--json")
    d = json.loads(out)
    assert code == 0 and d["counters"]["gemm_counter"] == 25088
    with np.load(ref_dir / "C10_203.after.npz") as after, np.load(out_path) as got:
        base = int(after["region_addrs"][0])
        k = list(got["region_addrs"]).index(base)
        assert np.array_equal(got[f"region_{k}"], after["region_0"])
        assert json.loads(str(got["counters"][()]))["alu_counter"] == 4704
        assert str(got["config"][()]) == "pynq_1x16_i8w8a32_15_15_18_17"


def test_sim_run_bad_bundle(tmp_path, capsys):
    p = tmp_path / "bad.npz"
    np.savez(p, config=np.array("pynq_1x16_i8w8a32_15_15_18_17"))
    code, _, err = run(capsys, "sim", "run", str(p))
    assert code == 1 and "insn_addr" in err and "Traceback" not in err


def test_demo_main_job(capsys):
    code, out, _ = run(capsys, "demo", "--json")
    d = json.loads(out)
    assert code == 0 and d["correct"] is True
    # 4x4 input blocks, 2x4 weight blocks, 4x2 outputs; GEMM iterations 4*2*4; ALU 3 ops x 8
    assert d["counters"]["gemm_counter"] == 32 and d["counters"]["alu_counter"] == 24
    code, out, _ = run(capsys, "demo", "--hw", "pynq_4x8_i8w8a32_15_16_16_18")
    assert code == 0 and "matches the numpy reference" in out


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "vtatune", "hw", "list"], capture_output=True, text=True)
    assert r.returncode == 0 and "pynq_4x8_i8w8a32_15_16_16_18" in r.stdout


def test_wheel_ships_hardware_configs(tmp_path):
    """The JSON files of hw/ must be inside the wheel (usable outside a checkout)."""
    import pathlib
    import zipfile
    root = pathlib.Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wheel, = tmp_path.glob("vtatune-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"vtatune/_hw/{n}.json" for n in SHIPPED} <= names
    for pkg in ("hardware", "sim", "compiler", "space", "workloads", "cli"):
        assert f"vtatune/{pkg}/__init__.py" in names
