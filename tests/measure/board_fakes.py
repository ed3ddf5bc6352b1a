"""Test helpers of the board runner: an in-process stand-in for ``BoardClient`` (runs the
bundle on fsim, or fails as scripted) and loopback board servers in subprocesses."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

HW = "pynq_1x16_i8w8a32_15_15_18_17"


def fake_info(backend: str = "fsim", **changes) -> dict:
    info = {"version": "test", "backend": backend, "bitstream": None, "hw": HW,
            "hw_ver": "0.0.2", "clock_mhz": 100.0, "coherent": True, "host": "test", "pid": 0}
    info.update(changes)
    return info


def run_bundle_bytes(blob: bytes, regions) -> dict[int, np.ndarray]:
    """Run a bundle (bytes) on fsim; the final contents of ``regions``."""
    from vtatune.hardware.config import HwConfig
    from vtatune.sim.dram import Dram
    from vtatune.sim.simulators import create_simulator
    z = np.load(io.BytesIO(blob), allow_pickle=False)
    hw = HwConfig.load(str(z["config"]))
    dram = Dram()
    addrs = [int(a) for a in z["region_addrs"]]
    for k, a in enumerate(addrs):
        dram.map(a, z[f"region_{k}"])
    create_simulator("fsim", hw, dram).run(int(z["insn_addr"]), int(z["insn_count"]))
    out = {}
    for k in regions:
        n = z[f"region_{k}"].size
        out[k] = np.frombuffer(dram.read(addrs[k], n), dtype=np.uint8).copy()
    return out


@dataclass
class FakeBoards:
    """Boards by name: ``infos[name]`` and a script of failures ``fail[name]`` (a list of
    exception classes raised by successive runs; then runs succeed).  ``runs`` logs
    (name, start, end)."""

    infos: dict
    fail: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    down: set = field(default_factory=set)

    def client(self, runner, addr):
        boards = self
        name = f"{addr[0]}:{addr[1]}"

        class Client:
            def info(self):
                from vtatune.errors import BoardConnectionError
                if name in boards.down:
                    raise BoardConnectionError("connection refused", server=name)
                return dict(boards.infos[name])

            def run(self, blob, *, number=1, timeout_s=10.0, regions=None):
                script = boards.fail.get(name) or []
                if name in boards.down:
                    from vtatune.errors import BoardConnectionError
                    raise BoardConnectionError("connection refused", server=name)
                if script:
                    raise script.pop(0)("scripted failure", server=name)
                t0 = time.time()
                out = run_bundle_bytes(blob, regions)
                boards.runs.append((name, t0, time.time()))
                return SimpleNamespace(regions=out, times_s=[1e-3 * (1 + i) for i in range(number)],
                                       server_s={"run": 0.001}, info=boards.infos[name])

            def close(self):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()
        return Client()


# ---------------------------------------------------------------------- loopback servers
class Server:
    """``vtatune board serve --backend fsim --port 0 --log LOG`` in a subprocess."""

    def __init__(self, log_path: str, backend: str = "fsim", extra: list | None = None):
        self.log_path = log_path
        cmd = [sys.executable, "-m", "vtatune", "board", "serve", "--backend", backend,
               "--host", "127.0.0.1", "--port", "0", "--log", log_path] + list(extra or [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.kill()
            raise RuntimeError(f"board server did not start: {line!r} "
                               f"{self.proc.stderr.read()[-2000:]}")
        self.address = line[len("listening on "):].split()[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def runs(self) -> list[dict]:
        """The completed runs of the server's JSON-lines log (``run_end`` events)."""
        out = []
        with open(self.log_path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        rec = json.loads(line)
                    except ValueError:  # a line cut by the kill
                        continue
                    out.append(rec)
        return out


def assert_runs_never_overlap(events: list[dict], who: str) -> int:
    """Per server: the (start, end) of every ``run_end`` are disjoint and no run was refused
    busy (leases keep a second client away).  Returns the number of runs."""
    runs = sorted((e["start"], e["end"]) for e in events if e.get("event") == "run_end")
    for (a0, a1), (b0, b1) in zip(runs, runs[1:]):
        assert b0 >= a1, f"{who}: runs overlap: [{a0}, {a1}] and [{b0}, {b1}]"
    assert not [e for e in events if e.get("event") == "busy"], f"{who}: a run found it busy"
    return len(runs)
