"""Hostile AutoTVM logs: every line is imported or rejected (line number, reason code, field),
only file-level faults raise (typed), memory stays bounded; the import validation hook."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import pathlib
import threading
import time
import tracemalloc

import pytest

from vtatune.db.autotvm import MAX_LINE_BYTES, iter_log, read_log
from vtatune.errors import (ConfigurationError, ErrorCategory, LogFileError, MeasureError,
                            RecordDecodeError)

LOG = pathlib.Path(__file__).parents[1] / "data" / "autotvm" / "handwritten_v02.log"
GOOD = LOG.read_text(encoding="utf-8").split("\n")[1]     # resnet18.C2, index 1234, 4.12 ms
GOOD2 = LOG.read_text(encoding="utf-8").split("\n")[6]    # another workload, index 77
V01 = LOG.read_text(encoding="utf-8").split("\n")[5]


def mutate(line: str, fn) -> str:
    obj = json.loads(line)
    fn(obj)
    return json.dumps(obj)


def setter(*path_and_value):
    *path, value = path_and_value

    def fn(obj):
        for p in path[:-1]:
            obj = obj[p]
        obj[path[-1]] = value
    return fn


# (line, reason, field): each is rejected; written between good lines
BAD_LINES = [
    ("[" * 100_000, "too_deep", None),
    ('{"input": ' + "[" * 300 + "]" * 300 + "}", "too_deep", None),
    (mutate(GOOD, setter("config", "index", -1)), "bad_field", "config.index"),
    (mutate(GOOD, setter("config", "index", 2 ** 63)), "bad_field", "config.index"),
    (mutate(GOOD, setter("config", "index", 10 ** 120)), "not_json", None),
    (mutate(GOOD, setter("config", "index", 12.0)), "bad_field", "config.index"),
    (mutate(GOOD, setter("result", 0, [float("nan")])), "bad_field", "result.costs"),
    (mutate(GOOD, setter("result", 0, [-0.5])), "bad_field", "result.costs"),
    (mutate(GOOD, setter("result", 2, float("inf"))), "bad_field", "result.all_cost"),
    (mutate(GOOD, setter("result", 3, float("-inf"))), "bad_field", "result.timestamp"),
    (mutate(GOOD, setter("result", 3, "yesterday")), "bad_field", "result.timestamp"),
    (mutate(GOOD, setter("result", 1, 99)), "bad_field", "result.error_no"),
    (mutate(GOOD, setter("result", 1, True)), "bad_field", "result.error_no"),
    (mutate(GOOD, setter("input", 0, "ext_dev -model=x\x00y")), "bad_field", "input.target"),
    (mutate(GOOD, setter("tvm_version", "\ud800")), "bad_field", "tvm_version"),
    (mutate(GOOD, setter("input", 5)), "bad_field", "input"),
    (mutate(GOOD, setter("config", "entity", "tile_h=4")), "bad_field", "config.entity"),
    (mutate(GOOD, setter("version", 0.1)), "not_v02", "version"),
    (V01, "autotvm_v01", None),
    ("null", "not_v02", None),
    (GOOD[: len(GOOD) // 2], "not_json", None),
]


def write(path: pathlib.Path, lines: list) -> pathlib.Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8",
                                                                         "surrogatepass"))
                              + b"\n" for ln in lines))
    return path


def test_every_bad_line_is_rejected_and_the_rest_imported(tmp_path, db):
    from vtatune.db import import_log

    lines = [GOOD] + [b for b, _, _ in BAD_LINES] + [b"\xff\xfe" + GOOD.encode(), "# ok", GOOD2]
    p = write(tmp_path / "hostile.log", lines)
    res = import_log(db, p)
    want = [(i + 2, reason, field) for i, (_, reason, field) in enumerate(BAD_LINES)]
    want.append((len(BAD_LINES) + 2, "not_utf8", None))
    assert [(r.lineno, r.reason, r.field) for r in res.rejected] == want
    assert res.n_rejected == len(want) and (res.read, res.inserted) == (2, 2)
    assert all(r.path == str(p) and isinstance(r.error, RecordDecodeError) for r in res.rejected)
    assert all(str(r).startswith(f"{p}:{r.lineno}: ") for r in res.rejected)
    assert [r.raw for r in db.records()] == [GOOD, GOOD2]
    assert res.rejected[2].as_dict() == {
        "path": str(p), "line": 4, "reason": "bad_field", "field": "config.index",
        "message": "'config.index' must be in [0, 2**63), got -1", "error": "RecordDecodeError"}


def test_index_minus_one_never_becomes_the_best(tmp_path, db):
    """A line with index -1 and the lowest cost used to be imported, and `best` printed
    "index -1"."""
    from vtatune.db import import_log

    cheat = mutate(GOOD, lambda o: (o["config"].__setitem__("index", -1),
                                    o["result"].__setitem__(0, [1e-9])))
    res = import_log(db, write(tmp_path / "cheat.log", [cheat, GOOD]))
    assert [(r.lineno, r.field) for r in res.rejected] == [(1, "config.index")]
    (best,) = db.best(db.records()[0].workload_key, "pynq_1x16_i8w8a32_15_15_18_17")
    assert best.config_index == 1234


def test_read_log_raises_for_the_first_rejected_line(tmp_path):
    p = write(tmp_path / "r.log", [GOOD, "# c", mutate(GOOD, setter("result", 1, -2)), "{"])
    with pytest.raises(RecordDecodeError, match=r"r.log:3: 'result.error_no'") as info:
        read_log(p)
    assert (info.value.lineno, info.value.reason, info.value.field) == (3, "bad_field",
                                                                        "result.error_no")


# ---------------------------------------------------------------------- file-level faults
def test_dev_zero_missing_files_and_directories_are_typed(tmp_path, db):
    from vtatune.db import import_log

    for path, match in (("/dev/zero", "is a device"), (tmp_path, "is a directory"),
                        (tmp_path / "nope.log", "cannot read: No such file")):
        with pytest.raises(LogFileError, match=match) as info:
            import_log(db, path)
        assert info.value.path == str(path) and str(path) in str(info.value)
    assert db.records() == []


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_endless_line_from_a_pipe_is_refused_in_bounded_memory(tmp_path, db):
    """/dev/zero behind a pipe (no device to refuse): the line cap stops it after 1 MiB."""
    from vtatune.db import import_log

    fifo = tmp_path / "zeros.fifo"
    os.mkfifo(fifo)
    written = []

    def feed():
        chunk = bytes(1 << 16)
        try:
            with open(fifo, "wb") as w:
                while True:
                    w.write(chunk)
                    written.append(len(chunk))
        except (BrokenPipeError, OSError):
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t0 = time.monotonic()

    def run():
        with pytest.raises(LogFileError, match=r"zeros.fifo:1: line longer than 1048576"):
            import_log(db, fifo)
    peak = _peak_bytes(run)
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 10
    assert peak < 3 * MAX_LINE_BYTES
    assert db.records() == []


def test_line_length_limit_is_exact(tmp_path, db):
    from vtatune.db import import_log

    padded = GOOD + " " * (MAX_LINE_BYTES - len(GOOD.encode()))   # exactly the limit
    assert len(padded.encode()) == MAX_LINE_BYTES
    res = import_log(db, write(tmp_path / "edge.log", [padded]))
    assert (res.read, res.n_rejected) == (1, 0)
    p = write(tmp_path / "over.log", [GOOD, padded + " "])
    with pytest.raises(LogFileError, match=r"over.log:2: line longer"):
        import_log(db, p)
    assert len(db.records()) == 1  # only edge.log's line: nothing of over.log
    big = tmp_path / "big.log"   # 3 MiB and no newline at all
    big.write_bytes(b"{" * (3 * MAX_LINE_BYTES))
    assert _peak_bytes(lambda: pytest.raises(LogFileError, import_log, db, big)) \
        < 3 * MAX_LINE_BYTES


def test_undecodable_file_name_and_comment(tmp_path, db):
    """A file name that is not UTF-8 becomes a printable session name (it used to reach the
    database as a lone surrogate); a comment line in another encoding is still a comment."""
    from vtatune.db import import_log

    raw_name = os.fsencode(tmp_path) + b"/caf\xe9.log"
    with open(raw_name, "wb") as f:
        f.write(b"# caf\xe9 au lait\n" + GOOD.encode() + b"\n")
    res = import_log(db, os.fsdecode(raw_name))
    assert (res.read, res.inserted, res.n_rejected) == (1, 1, 0)
    assert db.records()[0].session == "caf\\xe9.log"


# ---------------------------------------------------------------------- the validator hook
class Stub:
    """A hand-written validator: index >= 5000 is outside the space; a tile of 999 is not a
    valid split; index 77 is the wrong index of its entity (stored corrected as 7)."""

    def __init__(self):
        self.seen = []

    def __call__(self, rec):
        self.seen.append(rec.raw)
        if rec.config_index >= 5000:
            raise ConfigurationError("config.index", f"{rec.config_index} is outside the "
                                                     "space of 4608 configurations")
        for name, _, value in rec.config["entity"]:
            if isinstance(value, list) and 999 in value:
                raise MeasureError(ErrorCategory.INSTANTIATION_ERROR, "bad_split",
                                   f"{name} = {value} does not divide the axis")
        if rec.config_index == 77:
            return dataclasses.replace(rec, config_index=7, workload_name="resnet18.C5",
                                       attempt=3)
        return None


def test_validator_rejections_are_reported_and_not_stored(tmp_path, db):
    from vtatune.db import import_log

    def tile(o):
        o["config"]["entity"][1][2] = [-1, 999]
    lines = [GOOD,                                              # 1 accepted
             mutate(GOOD, setter("config", "index", 10 ** 12)),  # 2 validator: outside
             "{broken",                                          # 3 decoding: never validated
             mutate(GOOD, tile),                                 # 4 validator: tile 999
             GOOD2,                                              # 5 accepted, corrected
             mutate(GOOD, setter("config", "index", -1)),        # 6 db itself: never validated
             GOOD2]                                              # 7 again: attempt 1
    stub = Stub()
    res = import_log(db, write(tmp_path / "v.log", lines), validate=stub)
    assert stub.seen == [lines[i] for i in (0, 1, 3, 4, 6)]
    assert [(r.lineno, r.reason, r.field) for r in res.rejected] == [
        (2, "rejected", "config.index"), (3, "not_json", None), (4, "bad_split", None),
        (6, "bad_field", "config.index")]
    assert isinstance(res.rejected[0].error, ConfigurationError)
    assert "outside the space" in res.rejected[0].message
    assert isinstance(res.rejected[2].error, MeasureError)
    assert (res.read, res.inserted) == (3, 3)
    stored = db.records()
    assert [(r.raw, r.config_index, r.attempt) for r in stored] == [
        (GOOD, 1234, 0), (GOOD2, 7, 0), (GOOD2, 7, 1)]
    assert stored[1].workload_name == "resnet18.C5"
    again = import_log(db, tmp_path / "v.log", validate=Stub())
    assert (again.read, again.inserted, again.n_rejected) == (3, 0, 4)


def test_validator_output_must_be_storable_and_bugs_propagate(tmp_path, db):
    from vtatune.db import import_log

    p = write(tmp_path / "v.log", [GOOD, GOOD2])

    def negative(rec):
        return dataclasses.replace(rec, config_index=-3) if rec.config_index == 77 else rec
    res = import_log(db, p, validate=negative)
    assert [(r.lineno, r.field) for r in res.rejected] == [(2, "config_index")]
    assert [r.raw for r in db.records()] == [GOOD]

    def buggy(rec):
        raise KeyError("entity")
    with pytest.raises(KeyError):
        import_log(db, write(tmp_path / "w.log", [GOOD2]), validate=buggy)
    with pytest.raises(TypeError, match="returns a TuningRecord or None"):
        import_log(db, write(tmp_path / "x.log", [GOOD2]), validate=lambda rec: "ok")
    assert [r.raw for r in db.records()] == [GOOD]


def test_strict_and_read_log_raise_for_a_validator_rejection(tmp_path, db):
    from vtatune.db import import_log

    p = write(tmp_path / "s.log", [GOOD, mutate(GOOD, setter("config", "index", 9999))])
    for call in (lambda: import_log(db, p, validate=Stub(), strict=True),
                 lambda: read_log(p, validate=Stub())):
        with pytest.raises(RecordDecodeError, match=r"s.log:2: .*outside the space") as info:
            call()
        assert (info.value.lineno, info.value.field) == (2, "config.index")
    assert db.records() == []


def test_iter_log_yields_records_and_rejections_in_file_order(tmp_path):
    from vtatune.db import RejectedLine, TuningRecord

    p = write(tmp_path / "i.log", ["", GOOD, V01, "# c", GOOD])
    items = list(iter_log(p))
    assert [(n, type(x).__name__) for n, x in items] == [
        (2, "TuningRecord"), (3, "RejectedLine"), (5, "TuningRecord")]
    assert isinstance(items[1][1], RejectedLine) and items[1][1].reason == "autotvm_v01"
    assert isinstance(items[2][1], TuningRecord) and items[2][1].attempt == 1
    assert copy.copy(items[0][1]) == items[0][1]


def test_a_path_that_is_not_a_path_is_typed(db):
    from vtatune.db import import_log

    with pytest.raises(ConfigurationError, match="path"):
        import_log(db, 0)  # a file descriptor number: never read (nor closed)
