"""Fuzzing the file inputs of the VTA core (hypothesis): program bundles (random bytes,
byte-level mutations of real bundle files, field-level mutations of a real program's
instructions, hand-made loops of up to 16383 x 16383 iterations), hardware files
(mutations of a shipped configuration: NaN, infinities, zero, negative, huge and wrongly
typed values, deep nesting, broken bytes) and raw instruction streams for ``disasm``.

Every input must end in success or a VtatuneError, in bounded memory and time: each runs
in a child process (tests/fuzz/fuzz_worker.py) whose address space is capped at 1 GiB,
and may take at most 5 s of CPU time.
"""
from __future__ import annotations

import io
import json
import math
import os
import pathlib
import select
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtatune.hardware import isa
from vtatune.hardware.config import HwConfig
from vtatune.hardware.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, MemType, Opcode
from vtatune.hardware.timing_params import TIMING_FIELDS
from vtatune.sim.bundle import Bundle, load_bundle

HERE = pathlib.Path(__file__).parent
REF = HERE.parent / "data" / "reference-programs" / "C10_203.npz"
HW_NAME = "pynq_1x16_i8w8a32_15_15_18_17"
MEMORY_CAP = 1 << 30
CPU_SECONDS = 5.0
WATCHDOG_SECONDS = 120  # wall clock, for a worker that hangs (a loaded machine is slow)

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Worker:
    def __init__(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fuzz_worker.py"), str(MEMORY_CAP)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.outcomes: Counter = Counter()  # (kind, outcome or error type), for VTATUNE_FUZZ_STATS

    def run(self, kind: str, data: bytes, suffix: str) -> dict:
        head = json.dumps({"kind": kind, "size": len(data), "suffix": suffix}).encode() + b"\n"
        self.proc.stdin.write(head + data)
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], WATCHDOG_SECONDS)
        if not ready:
            self.close()
            raise AssertionError(f"{kind} input of {len(data)} bytes: no answer in {WATCHDOG_SECONDS} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"{kind} input of {len(data)} bytes: the worker died "
                                 f"(exit {self.proc.wait()})")
        got = json.loads(line)
        self.outcomes[kind, got.get("error") or got["outcome"]] += 1
        return got

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()
    if os.environ.get("VTATUNE_FUZZ_STATS"):  # what the inputs ran into
        print("\n" + "\n".join(f"{n:5d} {k}: {e}" for (k, e), n in sorted(w.outcomes.items())))


def check(worker: Worker, kind: str, data: bytes, suffix: str) -> dict:
    got = worker.run(kind, data, suffix)
    assert got["outcome"] != "untyped", got.get("traceback")
    assert got["cpu_s"] <= CPU_SECONDS, f"{kind} input took {got['cpu_s']:.1f} s of CPU"
    assert got["max_rss_mb"] < MEMORY_CAP / 2 ** 20
    return got


# ----------------------------------------------------------------------------- helpers
def npz_bytes(bundle: Bundle, compressed: bool = False) -> bytes:
    """A bundle file's bytes (the layout of sim.bundle.save_bundle)."""
    arrays = {"config": np.array(bundle.config), "insn_addr": np.array(bundle.insn_addr, dtype=np.int64),
              "insn_count": np.array(bundle.insn_count, dtype=np.int64),
              "region_addrs": np.array([b for b, _ in bundle.regions], dtype=np.int64)}
    for k, (_, data) in enumerate(bundle.regions):
        arrays[f"region_{k}"] = np.asarray(data, dtype=np.uint8)
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


HW = HwConfig.load(HW_NAME)
LAYOUTS = isa.layouts_for(HW)
REF_BUNDLE = load_bundle(REF)
REF_BYTES = REF.read_bytes()
TINY = Bundle(HW_NAME, 8192, 1, [(8192, np.frombuffer(isa.encode(FinishInsn(), HW), np.uint8).copy())])
TINY_BYTES = npz_bytes(TINY)


def mutate_bytes(seed: bytes):
    """Overwrite, insert, delete or truncate bytes of ``seed``."""
    n = len(seed)
    edit = st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, n - 1),
                     st.binary(min_size=1, max_size=8))

    def apply(args):
        edits, cut = args
        out = bytearray(seed)
        for op, at, blob in edits:
            at = min(at, len(out))
            if op == "set":
                out[at:at + len(blob)] = blob
            elif op == "insert":
                out[at:at] = blob
            else:
                del out[at:at + len(blob)]
        return bytes(out[:cut]) if cut is not None else bytes(out)

    return st.tuples(st.lists(edit, min_size=1, max_size=4),
                     st.one_of(st.none(), st.integers(0, n))).map(apply)


def field_value(width: int):
    top = (1 << width) - 1
    return st.one_of(st.just(0), st.just(1), st.just(top), st.integers(0, top))


def set_field(word: int, f: isa.BitField, value: int) -> int:
    return (word & ~(f.mask << f.lo)) | ((value & f.mask) << f.lo)


ALL_FIELDS = [f for lay in (LAYOUTS.mem, LAYOUTS.gemm, LAYOUTS.alu) for f in lay.fields]


# ----------------------------------------------------------------------------- bundles
@settings(FUZZ, max_examples=120)
@given(st.one_of(st.binary(max_size=2048), mutate_bytes(REF_BYTES), mutate_bytes(TINY_BYTES)))
def test_fuzz_bundle_files(worker, data):
    check(worker, "bundle", data, ".npz")


def _insn_region():
    for k, (base, data) in enumerate(REF_BUNDLE.regions):
        if base <= REF_BUNDLE.insn_addr < base + data.size:
            return k, (REF_BUNDLE.insn_addr - base) // isa.INSN_BYTES
    raise AssertionError("no instruction region")


INSN_REGION, INSN_OFFSET = _insn_region()


@st.composite
def mutated_programs(draw):
    """The reference program with 1..4 instruction fields set to drawn values."""
    k = draw(st.integers(1, 4))
    regions = [(b, d.copy()) for b, d in REF_BUNDLE.regions]
    words = regions[INSN_REGION][1].view("<u8").reshape(-1, 2)
    count = REF_BUNDLE.insn_count
    for _ in range(k):
        i = INSN_OFFSET + draw(st.integers(0, count - 1))
        f = draw(st.sampled_from(ALL_FIELDS))
        v = draw(field_value(f.width))
        w = int(words[i, 0]) | int(words[i, 1]) << 64
        w = set_field(w, f, v)
        words[i, 0], words[i, 1] = w & (2 ** 64 - 1), w >> 64
    count = draw(st.one_of(st.just(count), st.integers(1, count + 8)))
    return npz_bytes(Bundle(HW_NAME, REF_BUNDLE.insn_addr, count, regions))


@settings(FUZZ, max_examples=60)
@given(mutated_programs())
def test_fuzz_mutated_programs(worker, data):
    check(worker, "bundle", data, ".npz")


def _loop_fields(draw, kind):
    g = {f.name: f.width for f in getattr(LAYOUTS, kind).fields}
    big = st.one_of(st.just(16383), st.integers(0, 16383), st.integers(0, 64))
    out = dict(iter_out=draw(big), iter_in=draw(big),
               uop_bgn=draw(st.integers(0, 64)), uop_end=draw(st.one_of(st.integers(0, 64), field_value(g["uop_end"]))),
               reset_reg=draw(st.integers(0, 1)))
    for name in ("dst_factor_out", "dst_factor_in", "src_factor_out", "src_factor_in"):
        out[name] = draw(st.one_of(st.integers(0, 4), field_value(g[name])))
    out["uop_end"] = min(out["uop_end"], (1 << g["uop_end"]) - 1)
    return out


@st.composite
def handmade_programs(draw):
    """A micro-op load, then GEMM / ALU / LOAD / STORE instructions with drawn loop bounds,
    factors, sizes and pads, then FINISH."""
    n_uops = draw(st.integers(1, 64))
    uops = np.array(draw(st.lists(st.integers(0, 2 ** 32 - 1), min_size=n_uops, max_size=n_uops)),
                    dtype="<u4")
    insns = [MemInsn(opcode=Opcode.LOAD, memory_type=MemType.UOP, dram_base=4096 // 4, y_size=1,
                     x_size=n_uops, x_stride=n_uops)]
    mem = {f.name: f.width for f in LAYOUTS.mem.fields}
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["gemm", "alu", "load", "store"]))
        if kind == "gemm":
            insns.append(GemmInsn(**_loop_fields(draw, "gemm"),
                                  wgt_factor_out=draw(st.integers(0, 4)), wgt_factor_in=draw(st.integers(0, 4))))
        elif kind == "alu":
            insns.append(AluInsn(**_loop_fields(draw, "alu"), alu_opcode=draw(st.integers(0, 3)),
                                 use_imm=draw(st.integers(0, 1)), imm=draw(st.integers(-2 ** 15, 2 ** 15 - 1))))
        else:
            vals = {n: draw(st.one_of(st.integers(0, 3), field_value(mem[n])))
                    for n in ("sram_base", "y_size", "x_size", "x_stride", "y_pad_0", "y_pad_1",
                              "x_pad_0", "x_pad_1")}
            insns.append(MemInsn(opcode=Opcode.LOAD if kind == "load" else Opcode.STORE,
                                 memory_type=draw(st.integers(0, 5)), dram_base=(1 << 20) // 256, **vals))
    insns.append(FinishInsn())
    blob = np.frombuffer(isa.encode_program(insns, HW), np.uint8).copy()
    regions = [(4096, uops.view(np.uint8).copy()), (1 << 20, np.zeros(1 << 16, np.uint8)), (1 << 24, blob)]
    return npz_bytes(Bundle(HW_NAME, 1 << 24, len(insns), regions))


@settings(FUZZ, max_examples=60)
@given(handmade_programs())
def test_fuzz_handmade_loops(worker, data):
    check(worker, "bundle", data, ".npz")


# ----------------------------------------------------------------------------- hardware files
NESTED = "@@NESTED@@"
HOSTILE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 0.5, 1e308, -1e308, 10 ** 30, 2 ** 63,
                     True, False, None, "", "pynq", [], {}]),
    st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(1, 100_000).map(lambda d: (NESTED, d)))
PLAUSIBLE = st.one_of(st.integers(0, 2000), st.floats(0.01, 1024.0))  # often valid: tsim must run
SHIPPED = HwConfig.load(HW_NAME).to_dict()
ROOT_KEYS = [k for k in SHIPPED if k != "timing"]


@st.composite
def hw_files(draw):
    d = json.loads(json.dumps(SHIPPED))
    d.setdefault("queues", {"insn_queue_depth": 512, "dep_queue_depth": 1024})
    nested = []
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["root", "timing", "timing", "queues"]))
        target = d if section == "root" else d[section] if isinstance(d.get(section), dict) else d
        keys = ROOT_KEYS if section == "root" else list(TIMING_FIELDS) if section == "timing" else list(target)
        # explicit odds: an unknown key 1 in 8, a deletion 1 in 10, a hostile value 1 in 2
        key = draw(st.text(max_size=8) if draw(st.integers(0, 7)) == 0 else st.sampled_from(keys or ["x"]))
        if draw(st.integers(0, 9)) == 0:
            target.pop(key, None)
            continue
        value = draw(HOSTILE if draw(st.booleans()) else PLAUSIBLE)
        if isinstance(value, tuple):
            nested.append(value[1])
            value = f"{NESTED}{len(nested) - 1}"
        target[key] = value
    text = json.dumps(d)
    for k, depth in enumerate(nested):
        text = text.replace(f'"{NESTED}{k}"', "[" * depth + "]" * depth)
    raw = text.encode()
    return raw if draw(st.integers(0, 3)) else draw(mutate_bytes(raw))  # bytes broken 1 in 4


@settings(FUZZ, max_examples=150)
@given(hw_files())
def test_fuzz_hw_files(worker, data):
    check(worker, "hw", data, ".json")


# ----------------------------------------------------------------------------- raw streams
@settings(FUZZ, max_examples=60)
@given(st.one_of(st.binary(max_size=1024),
                 st.lists(st.binary(min_size=16, max_size=16), max_size=64).map(b"".join)))
def test_fuzz_raw_streams_for_disasm(worker, data):
    check(worker, "raw", data, ".bin")


def test_harness_tells_typed_from_untyped_errors(worker):
    # an empty file is a typed error; a KeyError inside the worker (an unknown kind) is not,
    # and check() fails on it
    got = worker.run("bundle", b"", ".npz")
    assert got["outcome"] == "typed" and got["error"] == "BundleFormatError"
    with pytest.raises(AssertionError):
        check(worker, "nonexistent-kind", b"", ".x")
