"""Fixtures of the board tests: a small compiled program with its numpy reference, in-process
servers on loopback, the fake ``pynq`` package."""
from __future__ import annotations

import io
import sys
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from vtatune.compiler.program import Program, compile_program
from vtatune.compiler.reference import reference
from vtatune.hardware.config import HwConfig
from vtatune.sim.bundle import Bundle, bundle_to_bytes
from vtatune.workloads import CONV2D, Workload

from . import fake_pynq

HW = HwConfig.load("pynq_1x16_i8w8a32_15_15_18_17")
BITSTREAM = "1x16_i8w8a32_15_15_18_17.bit"
# conv2d 8x8, 32 -> 32 channels, 3x3, pad 1, bias epilogue: LOAD UOP/INP (padded)/WGT/ACC,
# GEMM, ALU, STORE; 35 instructions
KNOBS = {"tile_b": 1, "tile_h": 8, "tile_w": 8, "tile_ci": 1, "tile_co": 2, "oc_nthread": 1,
         "h_nthread": 1}


@dataclass
class Prog:
    program: Program
    inputs: dict
    bundle: Bundle
    data: bytes          # the bundle's .npz bytes
    out_index: int       # region number of the output
    expected: np.ndarray  # numpy reference output

    def output(self, region: np.ndarray) -> np.ndarray:
        raw = np.asarray(region, dtype=np.uint8)[:self.program.regions["out"][1]].view(np.int8)
        return self.program.extra["lowering"].unpack_output(raw)


def make_prog(seed: int = 0, knobs=None, wl=None) -> Prog:
    wl = wl or Workload(CONV2D, 8, 8, 32, 32, 3, 3, 1, 1, 1, 1, epilogue="bias")
    prog = compile_program(wl, knobs or KNOBS, HW)
    inputs = prog.random_inputs(seed)
    bundle = prog.to_bundle(inputs)
    out_index = [b for b, _ in bundle.regions].index(prog.regions["out"][0])
    expected = reference(prog.workload, inputs["data"], inputs["kernel"], inputs.get("bias"))
    return Prog(prog, inputs, bundle, bundle_to_bytes(bundle), out_index, expected)


@pytest.fixture(scope="session")
def prog() -> Prog:
    return make_prog()


class Running:
    """An in-process BoardServer serving on a thread."""

    def __init__(self, server):
        self.server = server
        self.log = server._log_file
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_s": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.port

    def records(self) -> list[dict]:
        import json
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)


@pytest.fixture
def serve():
    """``serve(backend="fsim", **server options)`` -> a running server (stopped afterwards)."""
    from vtatune.board.backends import create_backend
    from vtatune.board.server import BoardServer

    running = []

    def start(backend="fsim", *, bitstream=None, coherent=True, **options):
        be = backend if not isinstance(backend, str) else create_backend(
            backend, hw=HW, bitstream=bitstream, coherent=coherent)
        options.setdefault("log_file", io.StringIO())
        r = Running(BoardServer(be, **options))
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def fake(monkeypatch):
    """The fake pynq package installed as ``pynq``; returns its module (``fake.BOARD``)."""
    fake_pynq.reset()
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    return fake_pynq


@pytest.fixture
def bitstream(tmp_path):
    path = tmp_path / "pynq" / "0.0.2" / BITSTREAM
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 64)
    return str(path)
