"""AutoTVM v0.2 log codec: hand-written lines -> import -> export byte-identical; new lines as
TVM v0.14 writes them; v0.1, comments and malformed lines (rejected line by line)."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from vtatune.db.autotvm import from_line, read_log, scan_log, to_line, write_log
from vtatune.db.records import TuningRecord, workload_key
from vtatune.errors import ConfigurationError, RecordDecodeError
from vtatune.hardware.config import HwConfig
from vtatune.space import space_for
from vtatune.task import VtaTask
from vtatune.workloads import get_workload
from vtatune.workloads.autotvm import parse_autotvm_input

LOG = pathlib.Path(__file__).parents[1] / "data" / "autotvm" / "handwritten_v02.log"
HW = "pynq_1x16_i8w8a32_15_15_18_17"
NEW_TARGET = f"ext_dev -keys=vta,cpu -device=vta -model={HW}"
TOPHUB_TARGET = f"ext_dev -device=vta -keys=cpu -model={HW}"
C2_ARGS = ('[["TENSOR", [1, 4, 56, 56, 1, 16], "int8"], ["TENSOR", [4, 4, 3, 3, 16, 16], "int8"], '
           '[1, 1], [1, 1, 1, 1], [1, 1], "NCHW1n16c", "int32"]')
V01_LINENO = 6  # the log's one AutoTVM v0.1 line
C2_ENTITY_1234 = ('{"index": 1234, "code_hash": null, "entity": [["tile_b", "sp", [-1, 1]], '
                  '["tile_h", "sp", [-1, 4]], ["tile_w", "sp", [-1, 4]], '
                  '["tile_ci", "sp", [-1, 2]], ["tile_co", "sp", [-1, 1]], '
                  '["oc_nthread", "ot", 1], ["h_nthread", "ot", 2]]}')


def v02_lines(path: pathlib.Path) -> list[bytes]:
    """The v0.2 record lines of a log, as bytes with their newline."""
    out = []
    for line in path.read_bytes().splitlines(keepends=True):
        s = line.strip()
        if s and not s.startswith(b"#") and b'"input"' in s:
            out.append(line)
    return out


def log_records() -> list[TuningRecord]:
    """The records of the test log; its v0.1 line is the only one rejected."""
    recs, rejected, n = scan_log(LOG)
    assert n == 1 and [(r.lineno, r.reason) for r in rejected] == [(V01_LINENO, "autotvm_v01")]
    assert LOG.read_text(encoding="utf-8").split("\n")[V01_LINENO - 1].startswith('{"i": ')
    return recs


@pytest.fixture(scope="module")
def hw():
    return HwConfig.load(HW)


# ---------------------------------------------------------------------- reading
def test_handwritten_lines_are_coherent():
    """The test log's inputs parse with vtatune's own parsers and every index matches its
    entity (TopHub's resolved splits included)."""
    for rec in log_records():
        task = parse_autotvm_input(json.loads(rec.raw)["input"])
        space = space_for(task.workload, task.hw)
        assert space.from_json_dict(rec.config).index == rec.config_index


def test_read_log_fields():
    recs = log_records()
    assert len(recs) == 6  # comment and blank lines skipped, the v0.1 line rejected
    lines = LOG.read_text(encoding="utf-8").split("\n")
    first = recs[0]
    assert first.raw == lines[1]
    assert (first.backend, first.hw, first.target) == ("vta", HW, NEW_TARGET)
    assert (first.source, first.runner, first.tool_version) == ("imported", "import", "0.14.0")
    assert first.session == LOG.name
    assert first.config_index == 1234 and first.error_no == 0
    assert first.costs == [0.00412, 0.00409, 0.00415]
    assert (first.all_cost, first.timestamp) == (1.873, 1700000000.25)
    assert first.mean_cost == pytest.approx(0.0041199999)
    assert first.workload_key == workload_key("conv2d_packed.vta", json.loads(C2_ARGS))
    tophub = recs[1]
    assert tophub.target == TOPHUB_TARGET and tophub.hw == HW
    assert tophub.tool_version == "0.7.dev0"
    assert tophub.config["entity"][1] == ["tile_h", "sp", [8, 7]]
    failed = recs[2]
    assert failed.error_no == 2 and failed.mean_cost == float("inf")
    # the compact line and the TopHub line are the same task as the first one
    assert {r.workload_key for r in recs} == {first.workload_key, recs[3].workload_key}
    assert recs[4].raw.startswith('{"input":["ext_dev')
    assert recs[4].workload_key == first.workload_key
    # the same config measured twice in one file: both kept, told apart by attempt
    assert recs[5].config == first.config and (first.attempt, recs[5].attempt) == (0, 1)


def test_to_line_of_imported_records_is_the_input_line():
    lines = v02_lines(LOG)
    recs = log_records()
    assert [(to_line(r) + "\n").encode() for r in recs] == lines


def test_import_export_byte_identical(tmp_path, db):
    from vtatune.db import export_log, import_log

    first = import_log(db, LOG)
    assert first == (6, 6) and (first.read, first.inserted) == (6, 6)
    assert [(r.lineno, r.reason) for r in first.rejected] == [(V01_LINENO, "autotvm_v01")]
    assert import_log(db, LOG) == (6, 0)  # idempotent
    out = tmp_path / "export.log"
    assert export_log(db, out) == 6
    assert out.read_bytes() == b"".join(v02_lines(LOG))


def test_crlf_log_round_trips_byte_identical(tmp_path, db):
    from vtatune.db import export_log, import_log

    crlf = tmp_path / "crlf.log"
    crlf.write_bytes(b"".join(line.rstrip(b"\n") + b"\r\n" for line in v02_lines(LOG)))
    assert import_log(db, crlf) == (6, 6)
    out = tmp_path / "out.log"
    export_log(db, out)
    assert out.read_bytes() == crlf.read_bytes()


def test_export_filters_by_workload_and_hw(tmp_path, db):
    from vtatune.db import export_log, import_log

    import_log(db, LOG)
    recs = log_records()
    out = tmp_path / "c5.log"
    assert export_log(db, out, workload_key=recs[3].workload_key) == 1
    assert out.read_text(encoding="utf-8") == recs[3].raw + "\n"
    assert export_log(db, out, hw="pynq_4x8_i8w8a32_15_16_16_18") == 0
    assert export_log(db, out, hw=HW) == 6


def test_v01_lines_rejected_by_every_reader(tmp_path, db):
    """v0.1 lines used to be skipped with a warning by import while replay failed on them:
    every reader now treats them alike, as rejected lines with the reason autotvm_v01."""
    from vtatune.db import import_log

    v01 = [ln for ln in LOG.read_text(encoding="utf-8").splitlines() if ln.startswith('{"i"')]
    assert len(v01) == 1
    good = v02_lines(LOG)[0].decode()
    p = tmp_path / "old.log"
    p.write_text(v01[0] + "\n" + good + v01[0] + "\n" + v01[0] + "\n", encoding="utf-8")
    res = import_log(db, p)
    assert (res.read, res.inserted, res.n_rejected) == (1, 1, 3)
    assert [(r.path, r.lineno, r.reason) for r in res.rejected] == [
        (str(p), 1, "autotvm_v01"), (str(p), 3, "autotvm_v01"), (str(p), 4, "autotvm_v01")]
    assert all(isinstance(r.error, RecordDecodeError) and "v0.1" in r.message
               for r in res.rejected)
    assert str(res.rejected[1]).startswith(f"{p}:3: AutoTVM v0.1")
    assert [r.raw for r in db.records()] == [good.rstrip("\n")]
    with pytest.raises(RecordDecodeError, match="v0.1") as info:
        read_log(p)
    assert (info.value.lineno, info.value.reason) == (1, "autotvm_v01")
    with pytest.raises(RecordDecodeError, match="v0.1"):
        from_line(v01[0])


def test_comments_blank_lines_and_missing_final_newline(tmp_path):
    line = v02_lines(LOG)[0].decode().rstrip("\n")
    p = tmp_path / "c.log"
    p.write_text(f"# header\n\n   \n  # indented comment\n{line}", encoding="utf-8")
    (rec,) = read_log(p)
    assert rec.raw == line


@pytest.mark.parametrize("bad, match", [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('{"config": {}, "result": [[1.0], 0, 1.0, 1.0]}', "missing key 'input'"),
    ('{"input": ["ext_dev -model=x", "t", [], {}], "config": {}, "result": [[1.0], 0, 1.0]}',
     "result"),
    ('{"input": ["ext_dev -model=x", "t", [], {}], "config": {}, '
     '"result": [[1.0], "0", 1.0, 1.0]}', "error_no"),
    ('{"input": ["ext_dev -model=x", "t", [], {}], "config": {}, '
     '"result": [["fast"], 0, 1.0, 1.0]}', "costs"),
    ('{"input": ["ext_dev -model=x", "t", []], "config": {}, "result": [[1.0], 0, 1.0, 1.0]}',
     "input"),
    ('{"input": ["ext_dev -model=x", "t", [], {}], "config": {"index": "7"}, '
     '"result": [[1.0], 0, 1.0, 1.0]}', "index"),
    ('{"input": ["ext_dev -model=x", "t", [], {}], "config": {}, '
     '"result": [[1.0], 0, 1.0, 1.0], "version": 0.3}', "version"),
])
def test_malformed_lines_name_path_and_line(tmp_path, bad, match):
    good = v02_lines(LOG)[0].decode()
    p = tmp_path / "bad.log"
    p.write_text("# c\n" + good + bad + "\n" + good, encoding="utf-8")
    with pytest.raises(RecordDecodeError, match=match) as info:
        read_log(p)
    assert str(info.value).startswith(f"{p}:3: ")
    assert (info.value.path, info.value.lineno) == (str(p), 3)


def test_malformed_line_rejected_rest_imported(tmp_path, db):
    """A malformed line is reported (line number, reason) and the import goes on; strict
    imports stop at it and store nothing."""
    from vtatune.db import import_log

    good = v02_lines(LOG)[0].decode()
    p = tmp_path / "bad.log"
    p.write_text(good + "{oops\n", encoding="utf-8")
    with pytest.raises(RecordDecodeError, match=":2: not JSON"):
        import_log(db, p, strict=True)
    assert db.records() == []
    res = import_log(db, p)
    assert (res.read, res.inserted) == (1, 1)
    assert [(r.lineno, r.reason) for r in res.rejected] == [(2, "not_json")]
    assert [r.raw for r in db.records()] == [good.rstrip("\n")]


# ---------------------------------------------------------------------- writing
def new_record(hw, **kw) -> TuningRecord:
    w = get_workload("resnet18.C2", hw)
    cfg = space_for(w, hw).get(1234)
    kw.setdefault("costs", [0.0041, 0.00405])
    kw.setdefault("runner", "tsim")
    return VtaTask(w, hw).record(cfg, all_cost=kw.pop("all_cost", 2.25),
                                 timestamp=kw.pop("timestamp", 1700000100.5), session="s1", **kw)


def test_new_record_written_as_tvm_0_14_writes_it(hw):
    rec = new_record(hw)
    assert rec.source == "measured" and rec.raw is None and rec.workload_name == "resnet18.C2"
    expected = ('{"input": ["' + NEW_TARGET + '", "conv2d_packed.vta", ' + C2_ARGS + ', {}], '
                '"config": ' + C2_ENTITY_1234 + ', '
                '"result": [[0.0041, 0.00405], 0, 2.25, 1700000100.5], '
                '"version": 0.2, "tvm_version": "0.14.0"}')
    line = to_line(rec)
    assert line == expected
    obj = json.loads(line)
    assert list(obj) == ["input", "config", "result", "version", "tvm_version"]
    assert list(obj["config"]) == ["index", "code_hash", "entity"]


def test_failed_record_writes_1e9_costs(hw):
    rec = new_record(hw, costs=[], error_no=2, all_cost=0.03, timestamp=1700000101.0,
                     reason="inp_sram_overflow", message="Allocation exceed bound")
    line = to_line(rec)
    assert '"result": [[1000000000.0], 2, 0.03, 1700000101.0], "version": 0.2' in line
    back = from_line(line)
    assert back.costs == [1e9] and back.error_no == 2 and back.mean_cost == float("inf")


def test_new_line_reads_back(hw):
    rec = new_record(hw)
    back = from_line(to_line(rec) + "\n")
    assert back.raw == to_line(rec)
    for f in ("backend", "workload_key", "target", "hw", "config", "config_index", "costs",
              "error_no", "all_cost", "timestamp"):
        assert getattr(back, f) == getattr(rec, f), f


def test_measured_record_exported_from_db_as_written(tmp_path, db, hw):
    from vtatune.db import export_log

    rec = new_record(hw)
    assert db.add([rec]) == 1
    out = tmp_path / "m.log"
    export_log(db, out)
    assert out.read_text(encoding="utf-8") == to_line(rec) + "\n"


def test_predicted_records_never_exported(tmp_path, db, hw):
    from vtatune.db import export_log

    measured = new_record(hw)
    predicted = new_record(hw, costs=[], error_no=2, source="predicted", runner="classifier",
                           reason="inp_sram_overflow")
    assert db.add([measured, predicted]) == 2
    out = tmp_path / "p.log"
    assert export_log(db, out) == 1
    assert out.read_text(encoding="utf-8") == to_line(measured) + "\n"
    assert write_log(tmp_path / "w.log", [predicted, measured], append=False) == 1


def test_record_validation():
    with pytest.raises(ConfigurationError, match="source"):
        TuningRecord(backend="vta", workload_key="k", target="t", hw="h", config={},
                     source="guessed")
    with pytest.raises(ConfigurationError, match="costs"):
        TuningRecord(backend="vta", workload_key="k", target="t", hw="h", config={},
                     costs=["x"])
    with pytest.raises(ConfigurationError, match="raw"):
        TuningRecord(backend="vta", workload_key="k", target="t", hw="h", config={},
                     raw="a\nb")


def test_codec_imports_without_sqlalchemy(tmp_path):
    """The VTA core and the log codec work without SQLAlchemy; opening a database then says
    what to install."""
    code = f"""
import sys
sys.modules['sqlalchemy'] = None  # make 'import sqlalchemy' fail
import vtatune, vtatune.hardware.config, vtatune.db
from vtatune.db import scan_log, to_line, TuningRecord
recs, rejected, n = scan_log({str(LOG)!r})
assert len(recs) == 6 and to_line(recs[0]) == recs[0].raw and n == 1
from vtatune.errors import StorageError
try:
    vtatune.db.open_db('sqlite:///{tmp_path / "x.db"}')
except StorageError as exc:
    assert "vtatune[db]" in str(exc), exc
else:
    raise SystemExit("open_db worked without SQLAlchemy")
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_pick_best_writes_one_best_line_per_workload(tmp_path, db):
    from vtatune.db import import_log, pick_best

    import_log(db, LOG)
    recs = log_records()
    out = tmp_path / "best.log"
    assert pick_best(db, out) == 2
    # C2: the TopHub line (0.00398 s) beats 0.00412 s, 0.0042 s and 0.0061 s; C5 has one line
    assert out.read_text(encoding="utf-8") == recs[1].raw + "\n" + recs[3].raw + "\n"
    assert pick_best(db, out, hw="pynq_4x8_i8w8a32_15_16_16_18") == 0


# ---------------------------------------------------------------------- older signatures
HW48 = "pynq_4x8_i8w8a32_15_16_16_18"
# TopHub's 4x8 ResNet-18 form: an output layout between layout and out_dtype
EIGHT_ARGS = [["TENSOR", [1, 8, 56, 56, 4, 8], "int8"], ["TENSOR", [16, 8, 3, 3, 8, 8], "int8"],
              [2, 2], [1, 1, 1, 1], [1, 1], "NCHW4n8c", "NCHW4n8c", "int32"]


def test_eight_argument_conv2d_signature_parses():
    """[data, kernel, strides, padding, dilation, layout, out_layout, out_dtype]: batch
    1 x 4, 8 x 8 = 64 input and 16 x 8 = 128 output channels, 56 x 56, 3x3, pad 1, stride 2."""
    target = f"ext_dev -device=vta -keys=cpu -model={HW48}"
    task = parse_autotvm_input([target, "conv2d_packed.vta", EIGHT_ARGS, {}])
    w = task.workload
    assert (w.template, w.batch, w.height, w.width, w.in_channels, w.out_channels) == \
        ("conv2d_packed.vta", 4, 56, 56, 64, 128)
    assert (w.kernel_h, w.kernel_w, w.pad_h, w.pad_w, w.stride_h, w.stride_w) == \
        (3, 3, 1, 1, 2, 2)
    assert w.name == "conv2d:4,56,56,64,128,3,1,2" and task.hw.name == HW48
    # the same task in the 7-argument form is the same workload
    seven = EIGHT_ARGS[:6] + EIGHT_ARGS[7:]
    assert parse_autotvm_input([target, "conv2d_packed.vta", seven, {}]).workload == w
    # on 1x16, the TopHub C2 shape in the 8-argument form is the 7-argument task
    c2 = json.loads(C2_ARGS)
    c2_8 = c2[:6] + ["NCHW1n16c"] + c2[6:]
    assert parse_autotvm_input([TOPHUB_TARGET, "conv2d_packed.vta", c2_8, {}]).workload == \
        parse_autotvm_input([TOPHUB_TARGET, "conv2d_packed.vta", c2, {}]).workload


@pytest.mark.parametrize("mutate, field", [
    (lambda a: a.__setitem__(6, "NCHW1n16c"), "out_layout"),   # another hardware's layout
    (lambda a: a.__setitem__(6, "int32"), "out_layout"),       # 7 args with a stray dtype
    (lambda a: a.__setitem__(7, "int8"), "out_dtype"),
    (lambda a: a.append("int32"), "args"),                     # 9 arguments
])
def test_eight_argument_signature_checks(mutate, field):
    from vtatune.workloads.workload import WorkloadError

    args = json.loads(json.dumps(EIGHT_ARGS))
    mutate(args)
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input([f"ext_dev -device=vta -model={HW48}", "conv2d_packed.vta", args,
                             {}])
    assert e.value.field == field


def test_other_templates_take_only_their_signatures():
    """group_conv2d has no 8-argument form; conv2d_transpose's 5-argument form (TopHub's
    vta_v0.08.log, before output_padding) is its 6-argument form with [0, 0]."""
    from vtatune.workloads.workload import WorkloadError

    group = [["TENSOR", [1, 2, 112, 112, 1, 16], "int8"], ["TENSOR", [2, 1, 3, 3, 16, 16], "int8"],
             [1, 1], [1, 1, 1, 1], [1, 1], 2, "int32"]
    assert parse_autotvm_input([TOPHUB_TARGET, "group_conv2d_packed.vta", group, {}]) \
        .workload.groups == 2
    with pytest.raises(WorkloadError) as e:
        parse_autotvm_input([TOPHUB_TARGET, "group_conv2d_packed.vta",
                             group[:6] + ["NCHW1n16c"] + group[6:], {}])
    assert e.value.field == "args"
    five = [["TENSOR", [1, 64, 4, 4, 1, 16], "int8"], ["TENSOR", [32, 64, 4, 4, 16, 16], "int8"],
            [2, 2], [1, 1, 1, 1], "int32"]
    w5 = parse_autotvm_input([TOPHUB_TARGET, "conv2d_transpose_packed.vta", five, {}]).workload
    w6 = parse_autotvm_input([TOPHUB_TARGET, "conv2d_transpose_packed.vta", five + [[0, 0]],
                              {}]).workload
    assert w5 == w6 and (w5.height, w5.in_channels, w5.out_channels) == (4, 1024, 512)


def test_packed_for_another_configuration_names_the_tensor():
    """A 1x16-packed conv2d filed under a 4x8 target: the data tensor is named, with its
    packing and the hardware's."""
    from vtatune.workloads.autotvm import PackedForOtherHardwareError

    with pytest.raises(PackedForOtherHardwareError) as e:
        parse_autotvm_input([f"ext_dev -device=vta -model={HW48}", "conv2d_packed.vta",
                             json.loads(C2_ARGS), {}])
    assert e.value.field == "data" and e.value.blocks == {"BATCH": (1, 4), "BLOCK_IN": (16, 8)}
    assert e.value.shape == [1, 4, 56, 56, 1, 16]
    # a 4x8 data tensor with a 1x16 kernel: the kernel is named
    args = json.loads(json.dumps(EIGHT_ARGS))
    args[1][1] = [8, 4, 3, 3, 16, 16]
    with pytest.raises(PackedForOtherHardwareError) as e:
        parse_autotvm_input([f"ext_dev -device=vta -model={HW48}", "conv2d_packed.vta", args,
                             {}])
    assert e.value.field == "kernel"
    assert e.value.blocks == {"BLOCK_OUT": (16, 8), "BLOCK_IN": (16, 8)}


# ---------------------------------------------------------------------- import warnings
def _line(config: dict) -> str:
    return json.dumps({"input": [TOPHUB_TARGET, "conv2d_packed.vta", json.loads(C2_ARGS), {}],
                       "config": config, "result": [[0.004], 0, 1.0, 1.0], "version": 0.2,
                       "tvm_version": "0.7.dev0"})


def test_index_mismatch_is_a_warning_reported_per_line(tmp_path, db):
    """A line whose index is not its entity's is imported (the entity applied, as
    ApplyHistoryBest does) and reported in ImportResult.warnings with its line number."""
    from vtatune.db import import_log
    from vtatune.task import vta_record_validator

    good = json.loads(C2_ENTITY_1234)
    wrong = {**good, "index": 7}
    # a split that does not multiply: tile_ci [5, 2] on 4 input blocks (inner 2 applies)
    loose = json.loads(json.dumps(good))
    loose["entity"][3][2] = [5, 2]
    p = tmp_path / "w.log"
    p.write_text("# header\n" + "\n".join([_line(good), _line(wrong), _line(loose)]) + "\n",
                 encoding="utf-8")
    res = import_log(db, p, validate=vta_record_validator())
    assert (res.read, res.inserted, res.n_rejected) == (3, 3, 0)
    assert [(w.lineno, w.reason, w.field) for w in res.warnings] == [
        (3, "index_mismatch", "config.index"),
        (4, "split_outer_ignored", "config.entity.tile_ci")]
    assert res.n_warnings == 2 and res.warnings[0].path == str(p)
    assert "log index 7" in res.warnings[0].message and "1234" in res.warnings[0].message
    assert str(res.warnings[1]).startswith(f"{p}:4: split [5, 2]")
    assert res.warnings[0].as_dict()["line"] == 3
    # every line is stored as the entity's point, index 1234; the notes are in message
    assert sorted((r.config_index, bool(r.message)) for r in db.records()) == [
        (1234, False), (1234, True), (1234, True)]
    import pickle
    back = pickle.loads(pickle.dumps(res))
    assert back == res and [w.lineno for w in back.warnings] == [3, 4]


def test_warnings_of_a_rejected_line_are_not_reported(tmp_path, db):
    from vtatune.db import import_log
    from vtatune.db.autotvm import warn_line

    def validator(rec):
        warn_line("index_mismatch", "noted", "config.index")
        if rec.config.get("index") == 7:
            raise ConfigurationError("config", "refused after a warning")
        return rec

    good = json.loads(C2_ENTITY_1234)
    p = tmp_path / "r.log"
    p.write_text(_line(good) + "\n" + _line({**good, "index": 7}) + "\n", encoding="utf-8")
    res = import_log(db, p, validate=validator)
    assert [r.lineno for r in res.rejected] == [2]
    assert [(w.lineno, w.message) for w in res.warnings] == [(1, "noted")]
    warn_line("index_mismatch", "outside an import: nothing happens")
