"""Child process of tests/fuzz: runs fuzzed inputs one at a time with its address space
capped, and reports how each ended.

Protocol on stdin: a line of JSON ``{"kind": ..., "size": n, "suffix": ...}`` followed by n
bytes of input.  On stdout one line of JSON per input: ``outcome`` ("ok", "typed": a
VtatuneError, "untyped": anything else, with its traceback), ``error`` (the exception type)
and ``cpu_s`` (CPU seconds the input took).  Run as ``python fuzz_worker.py CAP_BYTES``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import resource
import sys
import tempfile
import time
import traceback

cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

# the protocol keeps the real stdout; everything the code under test prints is dropped
proto = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
sys.stdout = open(os.devnull, "w")

from vtatune.cli.main import main as cli  # noqa: E402
from vtatune.errors import VtatuneError  # noqa: E402
from vtatune.hardware.config import HwConfig  # noqa: E402
from vtatune.hardware.isa import FinishInsn, GemmInsn  # noqa: E402
from vtatune.sim.bundle import load_bundle, run_bundle  # noqa: E402
from vtatune.sim.tsim import TimingSimulator  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "data", "reference-programs", "C10_203.npz")


def run_bundle_file(path: str) -> None:
    bundle = load_bundle(path)
    run_bundle(bundle, "fsim")
    TimingSimulator(bundle.hw, bundle.to_dram(), functional=False).run(bundle.insn_addr, bundle.insn_count)


def run_hw_file(path: str) -> None:
    hw = HwConfig.load(path)
    assert HwConfig.from_dict(hw.to_dict()) == hw
    # whatever the file's timing, tsim gives finite numbers on a small program ...
    res = TimingSimulator(hw).execute([GemmInsn(uop_bgn=0, uop_end=1, iter_out=3, iter_in=5), FinishInsn()])
    assert res.cycles == res.cycles and res.cycles < float("inf"), res.cycles
    res.timing_dict()
    # ... and on a real one, when the file describes the reference program's hardware
    ref = load_bundle(REFERENCE)
    if hw.name == ref.config:
        res = TimingSimulator(dataclasses.replace(ref.hw, timing=hw.timing, queues=hw.queues),
                              ref.to_dram(), functional=False).run(ref.insn_addr, ref.insn_count)
        res.timing_dict()


def run_disasm(path: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli(["disasm", path, "--json"])
    if rc not in (0, 1) or "Traceback" in err.getvalue():
        raise AssertionError(f"disasm exit {rc}: {err.getvalue()[-2000:]}")


KINDS = {"bundle": run_bundle_file, "hw": run_hw_file, "raw": run_disasm}


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="vtatune-fuzz-")
    for line in sys.stdin.buffer:
        head = json.loads(line)
        data = sys.stdin.buffer.read(head["size"])
        path = os.path.join(tmp, "input" + head["suffix"])
        with open(path, "wb") as f:
            f.write(data)
        t0 = time.process_time()
        try:
            KINDS[head["kind"]](path)
        except VtatuneError as exc:
            out = {"outcome": "typed", "error": type(exc).__name__, "message": str(exc)[:500]}
        except BaseException as exc:  # noqa: BLE001 - reporting it is the point
            out = {"outcome": "untyped", "error": type(exc).__name__,
                   "traceback": traceback.format_exc()[-4000:]}
        else:
            out = {"outcome": "ok"}
        out["cpu_s"] = time.process_time() - t0
        out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        proto.write(json.dumps(out) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()
