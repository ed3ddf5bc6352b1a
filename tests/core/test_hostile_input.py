"""Hostile input (issue 10): tiny files that asked for gigabytes, unvalidated timing fields,
tracebacks instead of typed errors.  Each test failed before the fix.

Cases that used to exhaust memory run in a child process with its address space capped
(``RLIMIT_AS``) and a timeout, so a regression fails the test instead of the machine.
"""
from __future__ import annotations

import io
import json
import math
import os
import resource
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from vtatune.cli.main import main as cli
from vtatune.errors import (BundleFormatError, ConfigurationError, DramRangeError,
                            ResourceLimitError, SramRangeError)
from vtatune.hardware import isa
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluInsn, AluOp, FinishInsn, GemmInsn, MemInsn, MemType, Opcode
from vtatune.sim import fsim as fsim_module
from vtatune.sim.bundle import MAX_BUNDLE_BYTES, Bundle, load_bundle, save_bundle
from vtatune.sim.dram import Dram
from vtatune.sim.fsim import MAX_INSNS, FunctionalSimulator
from vtatune.sim.tsim import TimingSimulator

HW = "pynq_1x16_i8w8a32_15_15_18_17"
INSN_BASE = 1 << 16
MEMORY_CAP = 1 << 30  # address space of the child processes


def program_bundle(insns, uops=()) -> Bundle:
    """Instructions at INSN_BASE, micro-op words at 4096 (elements 1024...)."""
    hw = HwConfig.load(HW)
    blob = np.frombuffer(isa.encode_program(insns, hw), dtype=np.uint8)
    words = np.array([isa.encode_uop(u, hw) for u in uops] or [0], dtype="<u4").view(np.uint8)
    return Bundle(HW, INSN_BASE, len(insns), [(4096, words.copy()), (INSN_BASE, blob.copy())])


def load_uops(n):
    return MemInsn(opcode=Opcode.LOAD, memory_type=MemType.UOP, sram_base=0, dram_base=1024,
                   y_size=1, x_size=n, x_stride=n)


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(script: str, timeout: float = 120) -> dict:
    """Run ``script`` in a child with MEMORY_CAP of address space; the exception it ends
    with (type name, field, insn_index, message), or error None."""
    code = ("import json\ntry:\n" + textwrap.indent(textwrap.dedent(script).strip(), "    ") + """
except BaseException as exc:
    print(json.dumps({"error": type(exc).__name__, "field": getattr(exc, "field", None),
                      "insn_index": getattr(exc, "insn_index", None), "message": str(exc)}))
else:
    print(json.dumps({"error": None}))
""")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_cap_memory)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_capped(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vtatune.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_cap_memory)


# ----------------------------------------------------------------------------- 1. simulators
@pytest.mark.parametrize("target,options", [("fsim", ""), ("tsim", ""), ("tsim", "functional=False")])
def test_gemm_of_16383_squared_iterations_is_refused_in_bounded_memory(tmp_path, target, options):
    # 16383 * 16383 iterations of one micro-op, every index in range: the index grids alone
    # were 6.4 GB (the 1.7 KB bundle)
    path = tmp_path / "huge.npz"
    save_bundle(path, program_bundle([GemmInsn(uop_bgn=0, uop_end=1, iter_out=16383, iter_in=16383),
                                      FinishInsn()]))
    assert path.stat().st_size < 4096
    cls = "FunctionalSimulator" if target == "fsim" else "TimingSimulator"
    got = run_capped(f"""
        from vtatune.sim.bundle import load_bundle
        from vtatune.sim.{target} import {cls}
        b = load_bundle({str(path)!r})
        {cls}(b.hw, b.to_dram(), {options}).run(b.insn_addr, b.insn_count)
    """)
    assert got["error"] == "ResourceLimitError", got
    assert got["insn_index"] == 0
    assert got["field"] == "iter_out*iter_in*(uop_end-uop_bgn)"
    assert str(16383 * 16383) in got["message"]


def test_huge_out_of_range_gemm_hits_the_cap_first(tmp_path):
    # its grids used to be built before the range check
    path = tmp_path / "huge.npz"
    save_bundle(path, program_bundle([GemmInsn(uop_bgn=0, uop_end=1, iter_out=16383, iter_in=16383,
                                               dst_factor_out=1, src_factor_in=1), FinishInsn()]))
    got = run_capped(f"""
        from vtatune.sim.bundle import load_bundle, run_bundle
        run_bundle(load_bundle({str(path)!r}))
    """)
    assert got["error"] == "ResourceLimitError" and got["insn_index"] == 0, got


def test_small_out_of_range_gemm_still_names_the_index():
    hw = HwConfig.load(HW)
    small = GemmInsn(uop_bgn=0, uop_end=1, iter_out=hw.acc_buff_depth + 1, iter_in=1, dst_factor_out=1)
    with pytest.raises(SramRangeError) as err:
        FunctionalSimulator(hw).execute([small, FinishInsn()])
    assert f"ACC index {hw.acc_buff_depth} >= depth {hw.acc_buff_depth}" in str(err.value)


def test_iteration_cap_per_instruction():
    hw = HwConfig.load(HW)
    sim = FunctionalSimulator(hw)
    n = sim.max_insn_iterations
    # just below the cap runs: every iteration adds inp[0] . wgt[0] (all zero) into acc[0]
    below = GemmInsn(uop_bgn=0, uop_end=1, iter_out=n // 16383, iter_in=16383)
    sim.execute([below, FinishInsn()])
    assert sim.counters["gemm_counter"] == (n // 16383) * 16383
    ok = AluInsn(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=AluOp.ADD, use_imm=1, imm=1)
    over = AluInsn(uop_bgn=0, uop_end=1, iter_out=n // 16383 + 1, iter_in=16383,
                   alu_opcode=AluOp.MAX, use_imm=1, imm=0)
    with pytest.raises(ResourceLimitError) as err:
        FunctionalSimulator(hw).execute([ok, over, FinishInsn()])
    assert err.value.insn_index == 1
    assert err.value.value == (n // 16383 + 1) * 16383 and err.value.limit == n


def test_alu_steps_count_as_work(monkeypatch):
    # 100 iterations that all update acc[0] from acc[0] are 100 sequential numpy steps:
    # 100 + 64 * 100 units, over a cap of 5000
    monkeypatch.setattr(fsim_module, "MAX_RUN_WORK", 5000)
    alu = AluInsn(uop_bgn=0, uop_end=1, iter_out=10, iter_in=10, alu_opcode=AluOp.ADD)
    with pytest.raises(ResourceLimitError) as err:
        FunctionalSimulator(HwConfig.load(HW)).execute([alu, FinishInsn()])
    assert err.value.value == 100 + fsim_module.CHUNK_WORK * 100


def test_iteration_cap_leaves_room_for_every_shipped_configuration():
    # 1x16: 1240 bytes per GEMM iteration (3 int64 indices, 16+256 float32, 16 float32 + 16
    # int32) in 256 MiB; 4x8: 24 + 4*(32+64) + 8*32 = 664 bytes
    assert FunctionalSimulator(HwConfig.load(HW)).max_insn_iterations == (1 << 28) // 1240
    assert FunctionalSimulator(HwConfig.load("pynq_4x8_i8w8a32_15_16_16_18")).max_insn_iterations \
        == (1 << 28) // 664


def test_run_work_cap_names_the_instruction_that_crosses_it(monkeypatch):
    # 10 GEMMs of 8 x 16 iterations = 128 units each; with a cap of 1000 units the eighth
    # (index 7, 1024 units done) is refused before it runs
    monkeypatch.setattr(fsim_module, "MAX_RUN_WORK", 1000)
    gemm = GemmInsn(uop_bgn=0, uop_end=1, iter_out=8, iter_in=16)
    sim = FunctionalSimulator(HwConfig.load(HW))
    with pytest.raises(ResourceLimitError) as err:
        sim.execute([gemm] * 10 + [FinishInsn()])
    assert (err.value.insn_index, err.value.field, err.value.value) == (7, "run", 1024)
    assert sim.counters["gemm_counter"] == 7 * 128


def test_tsim_times_padding_rows_within_the_work_cap(monkeypatch):
    # an INP load of x_size 0 with y padding moves nothing but was timed row by row
    # (65535 rows per instruction, any number of instructions): the rows count as work
    monkeypatch.setattr(fsim_module, "MAX_RUN_WORK", 100_000)
    rows = MemInsn(opcode=Opcode.LOAD, memory_type=MemType.INP, y_size=65535, x_size=0, y_pad_0=1)
    last = MemInsn(opcode=Opcode.LOAD, memory_type=MemType.INP, y_size=65535, x_size=0, y_pad_0=1,
                   push_next=1)
    sim = TimingSimulator(HwConfig.load(HW))
    with pytest.raises(ResourceLimitError) as err:  # FINISH waits for the last load's token
        sim.execute([rows, rows, last, FinishInsn(pop_prev=1)])
    assert err.value.insn_index == 1 and err.value.value == 2 * 65535


def test_instruction_count_cap_before_any_decoding():
    sim = FunctionalSimulator(HwConfig.load(HW))
    with pytest.raises(ResourceLimitError) as err:
        sim.run(4096, MAX_INSNS + 1)
    assert err.value.field == "insn_count" and err.value.limit == MAX_INSNS


def test_race_checker_keeps_a_bounded_number_of_pending_accesses():
    from vtatune.sim.tsim import _RaceChecker
    rc = _RaceChecker()
    cap = _RaceChecker.MAX_PENDING
    for k in range(3 * cap):  # load writes nobody orders against compute
        rc.access(k, 0, "w", "inp", 2 * k, 2 * k + 1)
        rc.done(0)
    assert len(rc.pending["inp"]) <= cap
    # a recent unordered write is still caught when compute reads it
    rc.access(10 ** 6, 1, "r", "inp", 2 * (3 * cap - 1), 2 * (3 * cap - 1) + 1)
    assert len(rc.races) == 1 and f"instruction {3 * cap - 1} (load)" in rc.races[0]


# ----------------------------------------------------------------------------- 1. bundle files
def _npy_header(shape, descr="|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _good_members() -> dict:
    out = {}
    for key, arr in dict(config=np.array(HW), insn_addr=np.array(4096), insn_count=np.array(1),
                         region_addrs=np.array([4096]),
                         region_0=np.frombuffer(isa.encode(FinishInsn(), HwConfig.load(HW)), np.uint8)).items():
        buf = io.BytesIO()
        np.save(buf, arr)
        out[f"{key}.npy"] = buf.getvalue()
    return out


def test_good_members_helper_is_a_valid_bundle(tmp_path):
    b = load_bundle(_zip(tmp_path / "ok.npz", _good_members()))
    assert (b.config, b.insn_addr, b.insn_count) == (HW, 4096, 1)


def test_member_header_claiming_1e15_elements(tmp_path):
    members = _good_members()
    members["region_0.npy"] = _npy_header((10 ** 15,)) + b"\x03" + bytes(15)
    path = _zip(tmp_path / "claims.npz", members)
    got = run_capped(f"""
        from vtatune.sim.bundle import load_bundle
        load_bundle({str(path)!r})
    """)
    assert got["error"] == "BundleFormatError" and got["field"] == "region_0", got
    assert "1000000000000000" in got["message"]


def test_archive_inflating_beyond_the_cap(tmp_path):
    # MAX_BUNDLE_BYTES + 1 MiB of zeros deflate to a file of a few hundred KB
    members = _good_members()
    path = tmp_path / "bomb.npz"
    n = MAX_BUNDLE_BYTES + (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name != "region_0.npy":
                zf.writestr(name, data)
        with zf.open("region_0.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((n,)))
            zeros = bytes(1 << 20)
            for _ in range(n >> 20):
                f.write(zeros)
    assert path.stat().st_size < 2 * (1 << 20)
    got = run_capped(f"""
        from vtatune.sim.bundle import load_bundle
        load_bundle({str(path)!r})
    """)
    assert got["error"] == "ResourceLimitError" and got["field"] == "region_0", got


@pytest.mark.parametrize("content", [b"", b"PK\x05\x06" + bytes(18)], ids=["zero-bytes", "empty-zip"])
def test_empty_npz(tmp_path, content):
    path = tmp_path / "empty.npz"
    path.write_bytes(content)
    with pytest.raises(BundleFormatError) as err:
        load_bundle(path)
    assert err.value.field == ("<file>" if not content else "config")


def test_corrupt_deflate_data(tmp_path):
    path = tmp_path / "corrupt.npz"
    big = np.arange(4096, dtype=np.uint8)
    save_bundle(path, Bundle(HW, 8192, 1, [(8192, big)]), compressed=True)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("region_0.npy")
    # local header: 30 bytes + name + extra, then the deflate stream
    name_len, extra_len = np.frombuffer(bytes(raw[info.header_offset + 26:info.header_offset + 30]), "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    raw[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleFormatError) as err:
        load_bundle(path)
    assert err.value.field == "region_0"


@pytest.mark.parametrize("declared,data,why", [
    ((20,), bytes(16), "holds 16 bytes"),            # shorter than declared
    ((16,), bytes(20), "holds 20 bytes"),            # longer than declared
    ((-16,), bytes(16), "malformed array header"),
])
def test_member_sizes_must_match_their_headers(tmp_path, declared, data, why):
    members = _good_members()
    members["region_0.npy"] = _npy_header(declared) + data
    with pytest.raises(BundleFormatError) as err:
        load_bundle(_zip(tmp_path / "b.npz", members))
    assert err.value.field == "region_0" and why in str(err.value)


def test_counters_member_nested_too_deeply(tmp_path):
    members = _good_members()
    buf = io.BytesIO()
    np.save(buf, np.array("[" * 100_000))
    members["counters.npy"] = buf.getvalue()
    with pytest.raises(BundleFormatError) as err:
        load_bundle(_zip(tmp_path / "b.npz", members))
    assert err.value.field == "counters"


def test_zip_directory_cap(tmp_path):
    members = _good_members()
    members.update({f"pad{i:06d}": b"" for i in range(30_000)})  # ~1.6 MB of directory entries
    with pytest.raises(ResourceLimitError) as err:
        load_bundle(_zip(tmp_path / "b.npz", members))
    assert err.value.field == "<file>"


def test_bundle_just_under_the_cap_runs_within_the_memory_bound(tmp_path):
    # the caps and the 1 GiB bound agree: the largest bundle loads and runs on fsim
    path = tmp_path / "max.npz"
    fin = np.frombuffer(isa.encode(FinishInsn(), HwConfig.load(HW)), np.uint8).copy()
    big = np.zeros(MAX_BUNDLE_BYTES - (1 << 16), np.uint8)
    save_bundle(path, Bundle(HW, 4096, 1, [(4096, fin), (1 << 20, big)]), compressed=True)
    del big
    got = run_capped(f"""
        from vtatune.sim.bundle import load_bundle, run_bundle
        final, res = run_bundle(load_bundle({str(path)!r}))
        assert final.region_at(1 << 20).size == {MAX_BUNDLE_BYTES - (1 << 16)}
    """)
    assert got["error"] is None, got


def test_dram_placement_is_checked_before_allocating():
    with pytest.raises(DramRangeError):
        Dram().map(1 << 31, 1 << 40)  # used to allocate a terabyte of zeros first


def test_dev_zero_as_a_bundle():
    with pytest.raises(BundleFormatError) as err:
        load_bundle("/dev/zero")
    assert "not a regular file" in str(err.value)


# ----------------------------------------------------------------------------- 2. timing fields
def _hw_file(tmp_path, text: str):
    path = tmp_path / "hw.json"
    path.write_text(text)
    return str(path)


def _shipped_json(**timing) -> dict:
    d = HwConfig.load(HW).to_dict()
    d["timing"].update(timing)
    return d


@pytest.mark.parametrize("field,value", [
    ("mem_latency", "NaN"), ("mem_latency", "Infinity"), ("mem_write_latency", "-Infinity"),
    ("bus_bytes_per_cycle", "0"), ("bus_bytes_per_cycle", "-8.0"), ("bus_bytes_per_cycle", "1e308"),
    ("fetch_burst", "0"), ("alu_ii", "0"), ("gemm_fill", "-1"), ("mem_latency", "16.5"),
    ("mem_latency", "1e30"), ("host_launch_us", "NaN"), ("host_per_insn_ns", "1e300"),
    ("nop_cycles", "true"), ("insn_overhead", "\"1\""), ("alu_fill", "[4]"),
])
def test_timing_fields_are_validated_when_loaded(tmp_path, field, value):
    d = _shipped_json()
    d["timing"][field] = "PLACEHOLDER"
    text = json.dumps(d).replace('"PLACEHOLDER"', value)
    with pytest.raises(ConfigurationError) as err:
        HwConfig.load(_hw_file(tmp_path, text))
    assert err.value.field == f"timing.{field}"


def test_nan_latency_no_longer_gives_a_fast_result(tmp_path, capsys):
    d = _shipped_json()
    d["timing"]["mem_latency"] = float("nan")
    path = _hw_file(tmp_path, json.dumps(d))  # json writes NaN
    assert cli(["hw", "show", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vtatune: ConfigurationError: timing.mem_latency: must be finite")


def test_timing_is_checked_on_programmatic_replace_too():
    import dataclasses
    hw = HwConfig.load(HW)
    with pytest.raises(ConfigurationError) as err:
        dataclasses.replace(hw.timing, bus_bytes_per_cycle=0)
    assert err.value.field == "timing.bus_bytes_per_cycle"
    # an integral float is accepted for an integer parameter, as an int
    t = dataclasses.replace(hw.timing, mem_latency=32.0)
    assert t.mem_latency == 32 and isinstance(t.mem_latency, int)


def test_extreme_valid_timing_stays_finite(ref_dir):
    # the largest latencies and the slowest bus the ranges allow: times stay finite numbers
    import dataclasses
    b = load_bundle(ref_dir / "C10_203.npz")
    hw = b.hw
    tm = dataclasses.replace(hw.timing, mem_latency=1_000_000, mem_write_latency=1_000_000,
                             bus_bytes_per_cycle=0.01, host_launch_us=1e6, host_per_insn_ns=1e6,
                             host_per_uop_ns=1e6, alu_ii=1_000_000, gemm_fill=1_000_000)
    res = TimingSimulator(dataclasses.replace(hw, timing=tm), b.to_dram(), functional=False).run(
        b.insn_addr, b.insn_count)
    assert math.isfinite(res.cycles) and math.isfinite(res.latency_ms) and res.cycles > 1e9
    assert res.timing_dict()["cycles"] == round(res.cycles)


# ----------------------------------------------------------------------------- 4. tracebacks
def test_deeply_nested_hw_file(tmp_path, capsys):
    path = _hw_file(tmp_path, "[" * 100_000)
    with pytest.raises(ConfigurationError) as err:
        HwConfig.load(path)
    assert err.value.field == "<file>" and "nested too deeply" in str(err.value)
    assert cli(["hw", "show", path]) == 1
    assert capsys.readouterr().err.startswith("vtatune: ConfigurationError: <file>:")


def test_nested_value_that_parses_is_reported_briefly(tmp_path):
    d = _shipped_json()
    d["TARGET"] = json.loads("[" * 500 + "]" * 500)  # parses; repr() of it must not recurse
    with pytest.raises(ConfigurationError) as err:
        HwConfig.load(_hw_file(tmp_path, json.dumps(d)))
    assert err.value.field == "TARGET" and len(str(err.value)) < 200


def test_non_utf8_hw_file(tmp_path, capsys):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"TARGET": "pynq\xe9"}'.encode("latin-1"))
    assert cli(["hw", "show", str(path)]) == 1
    assert capsys.readouterr().err.startswith("vtatune: ConfigurationError: <file>:")
    assert cli(["disasm", "--hw", str(path), os.devnull]) == 1
    assert "is not UTF-8" in capsys.readouterr().err


def test_huge_integer_in_hw_file(tmp_path):
    d = _shipped_json()
    d["LOG_BATCH"] = "PLACEHOLDER"
    with pytest.raises(ConfigurationError) as err:
        HwConfig.load(_hw_file(tmp_path, json.dumps(d).replace('"PLACEHOLDER"', "9" * 5000)))
    assert err.value.field == "<file>"


def test_dev_zero_as_disasm_input():
    proc = cli_capped("disasm", "/dev/zero")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("vtatune: ResourceLimitError: field <file>: /dev/zero: more bytes than")
    proc = cli_capped("disasm", "--hw", "/dev/zero", os.devnull)  # not a file: no such config
    assert proc.returncode == 1 and proc.stderr.startswith("vtatune: ConfigurationError: hw:")


def test_empty_and_corrupt_npz_through_the_cli(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert cli(["sim", "run", str(empty)]) == 1
    assert capsys.readouterr().err.startswith("vtatune: BundleFormatError: ")
    assert cli(["disasm", str(empty)]) == 1
    assert capsys.readouterr().err.startswith("vtatune: BundleFormatError: ")


# ----------------------------------------------------------------------------- disasm output
def test_disasm_listing_in_pieces_matches_the_whole(ref_dir, capsys, monkeypatch):
    from vtatune.cli import disasm_cmd
    from vtatune.hardware.disasm import format_insn
    path = str(ref_dir / "C10_203.npz")
    b = load_bundle(path)
    insns = isa.decode_program(b.to_dram().read(b.insn_addr, b.insn_count * 16), b.hw)
    monkeypatch.setattr(disasm_cmd, "CHUNK", 7)  # many pieces, a ragged last one
    assert cli(["disasm", path, "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert [r["text"] for r in doc["instructions"]] == [format_insn(i) for i in insns]
    assert out == json.dumps(doc, indent=2) + "\n"  # exactly what one json.dump writes
    assert cli(["disasm", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    width = len(str(len(insns) - 1))
    assert lines[1:] == [f"{i:>{width}}: {format_insn(x)}" for i, x in enumerate(insns)]


def test_disasm_of_an_empty_raw_stream(tmp_path, capsys):
    path = tmp_path / "none.bin"
    path.write_bytes(b"")
    assert cli(["disasm", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["instructions"] == []
