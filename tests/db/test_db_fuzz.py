"""Fuzzing the AutoTVM log import (hypothesis): valid lines of the test log, mutated at the
JSON level (values replaced by huge numbers, NaN, wrong types, NUL or lone surrogates,
deep nesting; keys deleted) and at the byte level (truncated, bytes inserted, non-UTF-8,
wrapped in brackets), are imported into a fresh SQLite database.

Every record line must be either imported or reported rejected with a typed error, and the
verdict must agree with an oracle written here from the documented rules
(docs/database.md), independently of the decoder; the import never raises (no file-level
fault can occur: every line is under the length limit), and the accepted lines export
byte-identical.  Each example has a time limit (10 s) and a memory limit (a small multiple
of the file); the whole test takes a few seconds.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtatune.errors import VtatuneError

LOG = pathlib.Path(__file__).parents[1] / "data" / "autotvm" / "handwritten_v02.log"
SEEDS = [ln for ln in LOG.read_bytes().split(b"\n") if ln.strip() and not ln.startswith(b"#")]
REASONS = {"not_utf8", "not_json", "too_deep", "autotvm_v01", "not_v02", "bad_field"}

# ---------------------------------------------------------------------- the oracle
_TOO_BIG = object()


def _depth(v) -> int:
    """Nesting depth of a parsed JSON value: containers within containers (no recursion)."""
    depth, level = 0, [v]
    while True:
        containers = [c for c in level if isinstance(c, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [x for c in containers for x in (c.values() if isinstance(c, dict) else c)]


def _has(v, pred) -> bool:
    """Whether any value inside ``v`` satisfies ``pred`` (no recursion)."""
    stack = [v]
    while stack:
        x = stack.pop()
        if pred(x):
            return True
        if isinstance(x, (list, dict)):
            stack.extend(x.values() if isinstance(x, dict) else x)
    return False


def _text_ok(s) -> bool:
    return isinstance(s, str) and "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF
                                                              for c in s)


def _num(v) -> bool:
    return type(v) in (int, float)


def _finite(v) -> bool:
    return _num(v) and (isinstance(v, int) or math.isfinite(v)) and abs(v) < 1.7e308


def expected(line: bytes) -> set[str] | None:
    """None for a line that is skipped (blank, comment); {"ok"} for a line the documented
    rules accept; else the reasons it may be rejected with (a line can be bad in several
    ways; "bad" stands for any rule about the record's structure and fields)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None if line.lstrip().startswith(b"#") else {"not_utf8"}
    if not text.strip() or text.strip().startswith("#"):
        return None
    deep_text = text.count("[") + text.count("{") > 64
    try:
        obj = json.loads(text, parse_int=lambda s: _TOO_BIG if len(s.lstrip("-")) > 100
                         else int(s))
    except RecursionError:
        return {"too_deep", "not_json"}
    except ValueError:
        return {"not_json", "too_deep"} if deep_text else {"not_json"}
    reasons = set()
    if _depth(obj) > 64:
        reasons.add("too_deep")
    if _has(obj, lambda v: v is _TOO_BIG):
        reasons.add("not_json")
    return reasons or {_fields(obj)}


def _fields(obj) -> str:
    if not isinstance(obj, dict) or any(k not in obj for k in ("input", "config", "result")):
        return "bad"
    if "version" in obj and obj["version"] != 0.2:
        return "bad"
    inp, cfg, res = obj["input"], obj["config"], obj["result"]
    if not (isinstance(inp, list) and len(inp) == 4 and _text_ok(inp[0]) and inp[0].strip()
            and isinstance(inp[1], str) and inp[1] and isinstance(inp[2], list)
            and isinstance(inp[3], dict)):
        return "bad"
    if not isinstance(cfg, dict):
        return "bad"
    idx = cfg.get("index")
    if idx is not None and not (type(idx) is int and 0 <= idx < 2 ** 63):
        return "bad"
    if "entity" in cfg and not isinstance(cfg["entity"], list):
        return "bad"
    if not (isinstance(res, list) and len(res) == 4 and isinstance(res[0], list)):
        return "bad"
    costs, error_no, all_cost, timestamp = res
    if type(error_no) is not int or not 0 <= error_no <= 8:
        return "bad"
    if error_no == 0 and not all(_finite(c) and c >= 0 for c in costs):
        return "bad"
    if not all(_finite(c) for c in costs if _num(c)):
        return "bad"
    if not (_finite(all_cost) and _finite(timestamp)):
        return "bad"
    if "tvm_version" in obj and not _text_ok(obj["tvm_version"]):
        return "bad"
    return "ok"


# ---------------------------------------------------------------------- mutations
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.sampled_from([-1, 0, 7, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 10 ** 12, 10 ** 99, 10 ** 100,
                     -(10 ** 150), 0.2, 1e308, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "#", "\x00", "\ud800", "ext_dev -model=x", "TENSOR", "\u2028"]),
)
VALUES = st.recursive(LEAVES, lambda ch: st.lists(ch, max_size=4)
                      | st.dictionaries(st.text(max_size=6), ch, max_size=4), max_leaves=8)


def _slots(obj):
    """(container, key) of every value inside a parsed line."""
    out, stack = [], [obj]
    while stack:
        c = stack.pop()
        keys = list(c) if isinstance(c, dict) else range(len(c))
        for k in keys:
            out.append((c, k))
            if isinstance(c[k], (list, dict)):
                stack.append(c[k])
    return out


@st.composite
def json_mutated(draw, seed: bytes) -> bytes:
    obj = json.loads(seed)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(obj)
        if not slots:
            break
        c, k = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest"]))
        if action == "replace":
            c[k] = draw(VALUES)
        elif action == "delete":
            del c[k]
        else:
            v = c[k]
            for _ in range(draw(st.integers(1, 80))):
                v = [v]
            c[k] = v
    ascii_only = draw(st.booleans())
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def byte_mutated(draw, line: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "insert", "replace", "wrap", "digits"]))
    i = draw(st.integers(0, len(line)))
    if kind == "truncate":
        return line[:i]
    if kind == "insert":
        return line[:i] + draw(st.binary(min_size=1, max_size=6)) + line[i:]
    if kind == "replace":
        return line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1:]
    if kind == "wrap":
        n = draw(st.sampled_from([1, 63, 64, 65, 1000, 100_000]))
        return b"[" * n + line + b"]" * draw(st.sampled_from([0, n]))
    return b"1" * draw(st.sampled_from([100, 101, 5000, 300_000]))


@st.composite
def log_lines(draw) -> list[bytes]:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        line = draw(st.sampled_from(SEEDS))
        how = draw(st.sampled_from(["keep", "json", "bytes", "both"]))
        if how in ("json", "both"):
            line = draw(json_mutated(line))
        if how in ("bytes", "both"):
            line = draw(byte_mutated(line))
        lines.append(line)
    return lines


# ---------------------------------------------------------------------- the property
@settings(max_examples=250, deadline=10_000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(log_lines())
def test_every_line_is_imported_or_rejected_as_documented(lines):
    from vtatune.db import export_log, import_log, open_db

    data = b"".join(ln + b"\n" for ln in lines)
    physical = data.split(b"\n")[:-1]        # inserted bytes may hold a newline
    verdicts = {no: expected(ln) for no, ln in enumerate(physical, 1)}
    record_lines = {no for no, v in verdicts.items() if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.log")
        with open(path, "wb") as f:
            f.write(data)
        with open_db("sqlite://") as db:
            tracemalloc.start()
            try:
                res = import_log(db, path)
            except VtatuneError as exc:  # pragma: no cover - no line reaches the limit
                raise AssertionError(f"file-level error for lines under the limit: {exc}")
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            # bounded memory: a small multiple of the file, whatever its lines hold
            assert peak < 32 * len(data) + (4 << 20), (peak, len(data))
            rejected = {r.lineno: r for r in res.rejected}
            assert res.n_rejected == len(rejected) == len(res.rejected)
            assert set(rejected) <= record_lines
            assert res.read + res.n_rejected == len(record_lines)
            accepted = sorted(record_lines - set(rejected))
            for no in record_lines:
                want = verdicts[no]
                if no in rejected:
                    r = rejected[no]
                    assert isinstance(r.error, VtatuneError) and r.reason in REASONS
                    assert "ok" not in want, (physical[no - 1][:300], r)
                    if "bad" not in want:
                        assert r.reason in want, (physical[no - 1][:300], r)
                else:
                    assert want == {"ok"}, (physical[no - 1][:300], want)
            stored = db.records()
            assert res.inserted == res.read == len(stored)
            assert [r.raw.encode() for r in stored] == [physical[no - 1] for no in accepted]
            out = os.path.join(tmp, "out.log")
            export_log(db, out)
            with open(out, "rb") as f:
                assert f.read() == b"".join(physical[no - 1] + b"\n" for no in accepted)
