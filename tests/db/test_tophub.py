"""TopHub's VTA log (tests/data/autotvm/tophub_vta_v0.10.log, shipped without its times)
applied as AutoTVM applies it: the 8-argument conv2d signature, split entities whose factors
do not multiply to the axis length (applied by the inner factor, with warnings), a record
packed for another batch block (a typed error naming the field), and every VTA record
replayed with the correctness check on fsim."""
from __future__ import annotations

import json
import pathlib

import pytest

from vtatune.measure.replay import replay_log, replay_record
from vtatune.space.config import INDEX_MISMATCH, SPLIT_OUTER_IGNORED
from vtatune.space.knobs import SpaceError
from vtatune.task import VtaTask
from vtatune.workloads.autotvm import PackedForOtherHardwareError, parse_autotvm_input

LOG = pathlib.Path(__file__).parents[1] / "data" / "autotvm" / "tophub_vta_v0.10.log"
HW16 = "pynq_1x16_i8w8a32_15_15_18_17"
HW48 = "pynq_4x8_i8w8a32_15_16_16_18"


def records() -> list[tuple[int, dict]]:
    """(line number, parsed JSON) of every record line of the shipped log."""
    out = []
    for lineno, line in enumerate(LOG.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((lineno, json.loads(line)))
    return out


def is_vta(rec: dict) -> bool:
    return rec["input"][0].startswith("ext_dev")


def axis_lengths(rec: dict) -> dict[str, int]:
    """The split axes of a VTA record, from its packed shapes alone (the templates' own
    arithmetic, written out here independently of vtatune's spaces)."""
    task, args = rec["input"][1], rec["input"][2]
    data, kern = args[0][1], args[1][1]
    if task == "dense_packed.vta":
        return {"tile_b": data[0], "tile_ci": data[1], "tile_co": kern[0]}
    stride, pad = args[2], args[3]
    if task == "conv2d_transpose_packed.vta":  # out = (in - 1) * s - 2p + k
        oh = (data[2] - 1) * stride[0] - 2 * pad[0] + kern[2]
        ow = (data[3] - 1) * stride[1] - 2 * pad[1] + kern[3]
    else:
        oh = (data[2] + 2 * pad[0] - kern[2]) // stride[0] + 1
        ow = (data[3] + 2 * pad[1] - kern[3]) // stride[1] + 1
    return {"tile_b": data[0], "tile_h": oh, "tile_w": ow, "tile_ci": kern[1],
            "tile_co": kern[0]}


def non_multiplying(rec: dict) -> list[str]:
    """Knobs whose resolved [outer, inner] split does not multiply to the axis length."""
    lengths = axis_lengths(rec)
    return [name for name, kind, v in rec["config"]["entity"]
            if kind == "sp" and v[0] != -1 and v[0] * v[1] != lengths[name]]


def kind_of(rec: dict) -> str:
    args = rec["input"][2]
    if rec["input"][1] == "dense_packed.vta" and rec["input"][0].endswith(HW48) \
            and args[0][1][2:] != [4, 8]:
        return "other_batch"
    if rec["input"][1] == "conv2d_packed.vta" and len(args) == 8:
        return "eight_args"
    if non_multiplying(rec):
        return "non_multiplying"
    return "plain"


def first_of_each_kind() -> dict[str, tuple[int, dict]]:
    out: dict[str, tuple[int, dict]] = {}
    for lineno, rec in records():
        if is_vta(rec):
            out.setdefault(kind_of(rec), (lineno, rec))
    return out


# ---------------------------------------------------------------------- the data file
def test_shipped_log_keeps_no_measured_time():
    """Every record's result is the documented placeholder [[0.0], 0, 0.0, timestamp]."""
    recs = records()
    assert len(recs) == 106 and sum(is_vta(r) for _, r in recs) == 100
    for _, rec in recs:
        costs, error_no, all_cost, timestamp = rec["result"]
        assert (costs, error_no, all_cost) == ([0.0], 0, 0.0)
        assert isinstance(timestamp, float) and timestamp > 1.5e9
    header = LOG.read_text(encoding="utf-8").split("\n", 12)[:12]
    assert any("[[0.0], 0, 0.0, <original timestamp>]" in h for h in header)


def test_the_log_holds_the_kinds_of_records_this_file_is_about():
    kinds = [kind_of(r) for _, r in records() if is_vta(r)]
    assert (kinds.count("eight_args"), kinds.count("non_multiplying"),
            kinds.count("other_batch"), kinds.count("plain")) == (10, 11, 1, 78)


# ---------------------------------------------------------------------- entity application
# TopHub's YOLO-tiny line: conv2d 208x208, 16 -> 32 channels, 3x3, pad 1, stride 1, on 1x16
YOLO_INPUT = [f"ext_dev -device=vta -keys=cpu -model={HW16}", "conv2d_packed.vta",
              [["TENSOR", [1, 1, 208, 208, 1, 16], "int8"],
               ["TENSOR", [2, 1, 3, 3, 16, 16], "int8"],
               [1, 1], [1, 1, 1, 1], [1, 1], "NCHW1n16c", "int32"], {}]
YOLO_CONFIG = {"index": 13, "code_hash": None, "entity": [
    ["tile_b", "sp", [1, 1]], ["tile_h", "sp", [1, 16]], ["tile_w", "sp", [1, 16]],
    ["tile_ci", "sp", [1, 1]], ["tile_co", "sp", [2, 1]], ["oc_nthread", "ot", 2],
    ["h_nthread", "ot", 1]]}


def yolo_task() -> VtaTask:
    parsed = parse_autotvm_input(YOLO_INPUT)
    return VtaTask(parsed.workload, parsed.hw)


def test_non_multiplying_split_applied_as_split_entity_does():
    """SplitEntity.apply does split(axis, factor=inner) and never reads the outer factor:
    [1, 16] on OH = 208 tiles the rows by 16 (13 tiles).  By hand: OH = OW = (208 + 2 - 3)
    // 1 + 1 = 208; the batch axis is 1, the input-channel axis 1 block, the output-channel
    axis 2 blocks, so the knob values (inner factors) are tile_b 1, tile_h 16, tile_w 16,
    tile_ci 1, tile_co 1, and the threads as written."""
    cfg, notes = yolo_task().space.apply_entity(YOLO_CONFIG)
    assert cfg.knobs == {"tile_b": 1, "tile_h": 16, "tile_w": 16, "tile_ci": 1, "tile_co": 1,
                         "oc_nthread": 2, "h_nthread": 1}
    # its index, by hand (first knob least significant): candidates of 208 are
    # 1,2,4,8,13,16,26,52,104,208 (16 is position 5, 10 candidates); tile_b, tile_ci: 1
    # candidate; tile_co: [1, 2] (position 0); oc_nthread [1, 2] (position 1); so
    # 5 + 5 * 10 + 0 * 100 + 0 * 100 + 1 * 200 + 0 * 400 = 255
    assert cfg.index == 255
    assert cfg.entity[1] == ["tile_h", "sp", [-1, 16]]
    # [1, 16], [1, 16] and [2, 1] multiply to 16, 16 and 2: tile_h and tile_w are noted
    # (tile_co's [2, 1] multiplies to its 2 blocks); the log's index 13 is not 255
    assert [(n.reason, n.field) for n in notes] == [
        (SPLIT_OUTER_IGNORED, "tile_h"), (SPLIT_OUTER_IGNORED, "tile_w"),
        (INDEX_MISMATCH, "index")]
    assert "outer 13" in notes[0].message and "13" in notes[2].message


def test_strict_reading_still_refuses_a_non_multiplying_split():
    with pytest.raises(SpaceError) as e:
        yolo_task().space.from_json_dict(YOLO_CONFIG, check_index=False)
    assert e.value.field == "tile_h"


def test_an_inner_factor_that_does_not_divide_the_axis_is_no_point():
    config = json.loads(json.dumps(YOLO_CONFIG))
    config["entity"][1][2] = [14, 15]  # 15 does not divide 208
    with pytest.raises(SpaceError) as e:
        yolo_task().space.apply_entity(config)
    assert e.value.field == "tile_h" and "15" in str(e.value)


def test_every_non_multiplying_record_is_applied_by_its_inner_factors():
    """For each such TopHub record the applied knob values are the entity's inner factors
    (read from the line), and the notes name exactly the knobs that do not multiply."""
    seen = 0
    for lineno, rec in records():
        if not is_vta(rec) or kind_of(rec) != "non_multiplying":
            continue
        seen += 1
        parsed = parse_autotvm_input(rec["input"])
        cfg, notes = VtaTask(parsed.workload, parsed.hw).space.apply_entity(rec["config"])
        assert cfg.knobs == {name: (v[1] if kind == "sp" else v)
                             for name, kind, v in rec["config"]["entity"]}, lineno
        assert [n.field for n in notes if n.reason == SPLIT_OUTER_IGNORED] \
            == non_multiplying(rec), lineno
    assert seen == 11


# ---------------------------------------------------------------------- other batch block
def test_a_record_packed_for_another_batch_block_is_a_typed_error():
    lineno, rec = first_of_each_kind()["other_batch"]
    with pytest.raises(PackedForOtherHardwareError) as e:
        parse_autotvm_input(rec["input"])
    err = e.value
    # data [4, 16, 1, 16]: packed with batch block 1 and input block 16; the 4x8 hardware
    # has BATCH 4 and BLOCK_IN 8
    assert err.field == "data" and err.hw == HW48 and err.shape == [4, 16, 1, 16]
    assert err.blocks == {"BATCH": (1, 4), "BLOCK_IN": (16, 8)}
    assert HW16 in err.fits and HW48 not in err.fits
    assert err.reason == "packed_for_other_hw"
    assert str(err).startswith("data: packed for BATCH=1, BLOCK_IN=16")
    assert f"the hardware {HW48} has BATCH=4, BLOCK_IN=8" in str(err)


def test_import_applies_tophub_with_warnings_per_line(tmp_path):
    pytest.importorskip("sqlalchemy")
    from vtatune.db import import_log, open_db
    from vtatune.task import vta_record_validator

    recs = records()
    warned = {n for n, r in recs if is_vta(r) and kind_of(r) == "non_multiplying"}
    other = [n for n, r in recs if is_vta(r) and kind_of(r) == "other_batch"]
    db = open_db(f"sqlite:///{tmp_path / 'tophub.db'}")
    try:
        res = import_log(db, LOG, validate=vta_record_validator())
        assert (res.read, res.n_rejected) == (105, 1)  # 99 VTA + 6 arm_cpu records
        (bad,) = res.rejected
        assert [bad.lineno] == other
        assert (bad.reason, bad.field) == ("packed_for_other_hw", "data")
        assert isinstance(bad.error, PackedForOtherHardwareError)
        # every non-multiplying record is imported with an index-mismatch warning, and one
        # warning per knob whose split does not multiply
        assert {w.lineno for w in res.warnings} == warned
        by_line = {n: r for n, r in recs}
        for n in warned:
            got = [(w.reason, w.field) for w in res.warnings if w.lineno == n]
            want = [(SPLIT_OUTER_IGNORED, f"config.entity.{k}")
                    for k in non_multiplying(by_line[n])] + [(INDEX_MISMATCH, "config.index")]
            assert got == want, n
        assert res.n_warnings == len(res.warnings) == sum(
            len(non_multiplying(by_line[n])) + 1 for n in warned)
        stored = {r.raw: r for r in db.records()}
        yolo = stored[LOG.read_text(encoding="utf-8").splitlines()[min(warned) - 1]]
        assert yolo.config_index == 255 and "log index 13" in yolo.message
    finally:
        db.close()


# ---------------------------------------------------------------------- replay
def _check_row(row: dict, kind: str) -> None:
    if kind == "other_batch":
        assert row["error"].startswith("PackedForOtherHardwareError: data: ")
        assert (row["field"], row["reason"]) == ("data", "packed_for_other_hw")
        return
    assert "error" not in row and "entity_error" not in row, row
    assert row["valid"] is True and row["correct"] is True, row
    assert bool(row["warnings"]) == (kind == "non_multiplying")
    assert row["index_matches"] == (kind != "non_multiplying")


def test_replay_one_record_of_each_kind():
    kinds = first_of_each_kind()
    assert set(kinds) == {"eight_args", "non_multiplying", "other_batch", "plain"}
    for kind, (lineno, rec) in kinds.items():
        try:
            row = replay_record(rec, lineno, None, None, True)
        except PackedForOtherHardwareError as exc:  # replay_log turns it into a row
            row = {"error": f"{type(exc).__name__}: {exc}", "field": exc.field,
                   "reason": exc.reason}
        _check_row(row, kind)


@pytest.mark.slow
def test_replay_the_whole_log_with_the_correctness_check():
    """Every VTA record applies, compiles and computes the numpy reference on fsim, except
    the one packed for another batch block; the arm_cpu records are skipped."""
    kinds = {n: (kind_of(r) if is_vta(r) else "other_target") for n, r in records()}
    rows = list(replay_log(str(LOG), check=True))
    assert [r["line"] for r in rows] == list(kinds)
    for row in rows:
        kind = kinds[row["line"]]
        if kind == "other_target":
            assert "skipped" in row and "error" not in row
        else:
            _check_row(row, kind)
    assert sum(r.get("correct") is True for r in rows) == 99


def test_cli_replay_prints_skips_and_applied_splits(tmp_path, capsys):
    """``vtatune replay``: an arm_cpu record is skipped (not a failure), a non-multiplying
    record is valid with its ignored outer factors shown, an 8-argument record is valid."""
    from vtatune.cli.main import main

    lines = LOG.read_text(encoding="utf-8").splitlines()
    kinds = first_of_each_kind()
    arm = next(n for n, r in records() if not is_vta(r))
    picked = [kinds["eight_args"][0], kinds["non_multiplying"][0], arm]
    p = tmp_path / "three.log"
    p.write_text("\n".join(lines[n - 1] for n in picked) + "\n", encoding="utf-8")
    assert main(["replay", str(p)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert out[0].startswith("line 1: conv2d:4,56,56,64,64,3,1,1 index 2873: valid")
    assert out[1].startswith("line 2: conv2d:1,208,208,16,32,3,1,1 index 13: valid")
    assert "applied index 255" in out[1] and "ignored (AutoTVM's SplitEntity): tile_h, tile_w" \
        in out[1]
    assert out[2].startswith("line 3: skipped: not a VTA target")


def test_db_import_command_reports_the_warnings(tmp_path, capsys):
    pytest.importorskip("sqlalchemy")
    import json as _json

    from vtatune.cli.main import main
    recs = records()
    warned = {n for n, r in recs if is_vta(r) and kind_of(r) == "non_multiplying"}
    by_line = dict(recs)
    want = sum(len(non_multiplying(by_line[n])) + 1 for n in warned)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "import", str(LOG), "--db", url, "--json"]) == 1  # one line rejected
    out = _json.loads(capsys.readouterr().out)
    assert out["n_rejected"] == 1 and out["n_warnings"] == want
    assert {w["line"] if "line" in w else w["lineno"] for w in out["warnings"]} == warned
