"""What a board server runs bundles on: ``pynq`` (the board, :mod:`.driver`), ``fsim`` or
``tsim`` (the simulators, for tests and for boards-less machines).

Every backend takes the same path for a bundle: parse (the hardened reader of
``vtatune.sim.bundle``, limits included), check that it was built for the server's hardware
configuration, check and plan the relocation of its stream (:mod:`.relocate`), then
:func:`.driver.execute`: fresh buffers, relocation, copy in, ``number`` launches, copy out.
The simulator backends place the regions in a simulated DRAM at other addresses than the
bundle's (a bump allocator from ``SimDevice.BASE``), so the relocation is exercised exactly
as on the board.

Times: ``pynq`` the wall time of each launch; ``fsim`` the simulator's wall time (not a
hardware time); ``tsim`` its simulated latency of one call (``latency_ms``, host work
included: the cost ``--target tsim`` records).

Run caps on the simulators: fsim and tsim stop a program beyond their resource caps
(``ResourceLimitError``: a bad bundle); a simulation still running after ``timeout_s`` is
reported as ``hang`` at the deadline.  A simulation cannot be interrupted: it finishes in
the background on its own simulated DRAM (bounded by those caps) while the next runs
proceed; with ``MAX_ABANDONED`` of them still running, runs are refused as ``busy``.
A program that would hang the board (token deadlock, no FINISH) is reported as ``hang``
at once.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__
from ..errors import (
    BoardBundleError,
    BoardBusyError,
    BoardDmaRangeError,
    BoardError,
    BoardHangError,
    BundleFormatError,
    ConfigurationError,
    DramRangeError,
    MissingFinishError,
    ResourceLimitError,
    SimulationError,
    TokenDeadlockError,
)
from ..hardware.config import HwConfig
from ..hardware.isa import FinishInsn
from ..sim.bundle import Bundle, load_bundle
from ..sim.dram import ADDR_LIMIT, Dram
from ..sim.simulators import create_simulator
from .driver import Device, DeviceBuffer, PynqDevice, check_bitstream, execute
from .protocol import DEFAULT_MAX_BUNDLE_BYTES
from .relocate import PAGE, plan_relocation

BACKENDS = ("pynq", "fsim", "tsim")
MAX_NUMBER = 10_000          # repetitions of one run request
MAX_TIMEOUT_S = 3600.0


@dataclass
class RunOutcome:
    regions: dict[int, np.ndarray]
    times_s: list[float]
    server_s: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- bundles
def _scratch_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def parse_bundle(data: bytes | memoryview, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> Bundle:
    """A bundle from the bytes of its ``.npz`` file, through the hardened file reader (a
    scratch file in /dev/shm when there is one); ``BoardBundleError`` naming the field."""
    n = memoryview(data).nbytes
    if n > max_bytes:
        raise BoardBundleError(f"bundle of {n} bytes exceeds the limit of {max_bytes}",
                               code="too_large", field="bundle")
    fd, path = tempfile.mkstemp(prefix="vtatune-bundle-", suffix=".npz", dir=_scratch_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return load_bundle(path)
    except BundleFormatError as exc:
        raise BoardBundleError(str(exc).replace(path, "<bundle>"), field=exc.field) from None
    except ResourceLimitError as exc:
        raise BoardBundleError(str(exc).replace(path, "<bundle>"), code="too_large",
                               field=exc.field) from None
    finally:
        try:
            os.unlink(path)
        except OSError:  # pragma: no cover
            pass


def _stream_of(bundle: Bundle) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Regions as (base, size) and the bytes of the instruction stream (empty if the
    stream is not inside one region: the plan reports it)."""
    spans = [(int(b), int(d.size)) for b, d in bundle.regions]
    n = bundle.insn_count * 16
    for b, d in bundle.regions:
        if b <= bundle.insn_addr and bundle.insn_addr + n <= b + d.size:
            off = bundle.insn_addr - b
            return spans, d[off:off + n]
    return spans, np.zeros(n, dtype=np.uint8)


# ----------------------------------------------------------------------------- backends
class Backend:
    """One accelerator (board or simulator) behind a server; not thread-safe (the server
    serialises runs)."""

    def __init__(self, name: str, hw: HwConfig, device: Device, *, bitstream: str | None = None,
                 clock_mhz: float | None = None):
        self.name = name
        self.hw = hw
        self.device = device
        self.bitstream = bitstream
        self.clock_mhz = clock_mhz

    def info(self) -> dict:
        extra = {}
        fclk = getattr(self.device, "fclk0_mhz", None)
        if fclk is not None:
            extra["fclk0_mhz"] = fclk()
        return {"version": __version__, "backend": self.name,
                "bitstream": os.path.basename(self.bitstream) if self.bitstream else None,
                "hw": self.hw.name, "hw_ver": self.hw.hw_ver, "clock_mhz": self.clock_mhz,
                "coherent": bool(self.device.coherent), "host": socket.gethostname(),
                "pid": os.getpid(), **extra}

    def run(self, data: bytes | memoryview, *, number: int = 1, timeout_s: float = 10.0,
            regions: Sequence[int] | None = None,
            max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> RunOutcome:
        t0 = time.perf_counter()
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_NUMBER:
            raise BoardBundleError(f"number must be an integer in 1..{MAX_NUMBER}, got {number!r}",
                                   code="bad_request", field="number")
        if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                or not 0 < timeout_s <= MAX_TIMEOUT_S):
            raise BoardBundleError(f"timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}], got "
                                   f"{timeout_s!r}", code="bad_request", field="timeout_s")
        bundle = parse_bundle(data, max_bytes)
        if bundle.config != self.hw.name:
            raise BoardBundleError(f"the bundle was built for {bundle.config}; this server runs "
                                   f"{self.hw.name}", field="config")
        n = len(bundle.regions)
        if regions is None:
            regions = list(range(n))
        elif (not isinstance(regions, (list, tuple)) or
              not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < n for k in regions)):
            raise BoardBundleError(f"regions must list region numbers in 0..{n - 1}, got "
                                   f"{str(regions)[:80]}", field="regions")
        phases = {"parse": time.perf_counter() - t0}
        t = time.perf_counter()
        spans, stream = _stream_of(bundle)
        plan = plan_relocation(self.hw, spans, bundle.insn_addr, bundle.insn_count, stream)
        phases["relocate"] = time.perf_counter() - t
        out, times = execute(self.device, bundle, plan, number=number, timeout_s=float(timeout_s),
                             regions=list(dict.fromkeys(regions)), phases=phases)
        phases["total"] = time.perf_counter() - t0
        return RunOutcome(out, times, phases)

    def program(self) -> None:
        self.device.program()

    def warm_up(self) -> None:
        self.device.warm_up()

    def close(self) -> None:
        self.device.close()


class SimDevice(Device):
    """fsim or tsim on a simulated DRAM, one per bundle, regions bump-allocated from
    ``BASE`` (far from where the compiler places them) so every address is relocated."""

    BASE = 0x4000_0000
    MAX_ABANDONED = 2

    def __init__(self, target: str, hw: HwConfig):
        self.target = target
        self.hw = hw
        self.coherent = True
        self.dram = Dram()
        self._next = self.BASE
        self._abandoned: list[threading.Thread] = []

    def begin(self) -> None:
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        if len(self._abandoned) >= self.MAX_ABANDONED:
            raise BoardBusyError(f"{len(self._abandoned)} timed-out simulations are still "
                                 "running; retry later")
        self.dram = Dram()  # an abandoned simulation keeps its own
        self._next = self.BASE

    def alloc(self, nbytes: int) -> DeviceBuffer:
        base = self._next
        if base + nbytes > ADDR_LIMIT:
            raise BoardBundleError("the bundle's regions do not fit the simulated DRAM",
                                   code="too_large", field="region_addrs")
        region = self.dram.map(base, nbytes)
        self._next = base + -(-nbytes // PAGE) * PAGE + PAGE  # a guard page between buffers
        return DeviceBuffer(region.data, base, region)

    def free(self, buf: DeviceBuffer) -> None:
        self.dram.free(buf.phys)

    def warm_up(self) -> None:
        # fsim's compiled core is compiled (or loaded from numba's cache) on its first
        # run, which on a fresh machine takes longer than a run's timeout
        create_simulator(self.target, self.hw, Dram()).execute([FinishInsn()])

    def launch(self, insn_addr: int, insn_count: int, timeout_s: float) -> float:
        box: dict = {}
        dram = self.dram

        def work():
            try:
                sim = create_simulator(self.target, self.hw, dram)
                t = time.perf_counter()
                res = sim.run(insn_addr, insn_count)
                box["wall"] = time.perf_counter() - t
                box["result"] = res
            except BaseException as exc:  # reported by the waiting thread
                box["error"] = exc

        th = threading.Thread(target=work, name=f"vtatune-{self.target}-run", daemon=True)
        t0 = time.perf_counter()
        th.start()
        th.join(timeout_s)
        if th.is_alive():
            self._abandoned.append(th)
            raise BoardHangError(f"the {self.target} run did not finish within {timeout_s:g} s "
                                 "(it finishes in the background on its own DRAM)",
                                 field="timeout_s")
        if "error" in box:
            raise _board_error(box["error"])
        if box["wall"] > timeout_s:  # finished, but later than the deadline
            raise BoardHangError(f"the {self.target} run took {time.perf_counter() - t0:.3g} s, "
                                 f"more than timeout_s = {timeout_s:g}", field="timeout_s")
        if self.target == "tsim":
            return box["result"].latency_ms / 1e3
        return box["wall"]


def _board_error(exc: BaseException) -> BaseException:
    """The board error a simulator's error stands for."""
    if isinstance(exc, BoardError):
        return exc
    idx, fld = getattr(exc, "insn_index", None), getattr(exc, "field", None)
    if isinstance(exc, (TokenDeadlockError, MissingFinishError)):
        return BoardHangError(f"the board would hang: {type(exc).__name__}: {exc}",
                              insn_index=idx, field=fld)
    if isinstance(exc, DramRangeError):
        return BoardDmaRangeError(f"{type(exc).__name__}: {exc}", insn_index=idx, field=fld)
    if isinstance(exc, ResourceLimitError):
        return BoardBundleError(f"{type(exc).__name__}: {exc}", insn_index=idx, field=fld)
    if isinstance(exc, SimulationError):
        return BoardBundleError(f"{type(exc).__name__}: {exc}", insn_index=idx, field=fld)
    return exc


def create_backend(name: str, *, hw: HwConfig | str | None = None, bitstream: str | None = None,
                   coherent: bool = True) -> Backend:
    """A backend by name; ``ConfigurationError`` for an unknown one, a bitstream that does
    not match ``hw`` (checked before the board is touched), or pynq without a bitstream."""
    if name not in BACKENDS:
        raise ConfigurationError("backend", f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    hw = hw if isinstance(hw, HwConfig) else HwConfig.load(hw)
    if name == "pynq":
        if not bitstream:
            raise ConfigurationError("bitstream", "the pynq backend needs --bitstream FILE "
                                                  f"(for {hw.name}: {hw.bitstream}.bit)")
        device = PynqDevice(hw, bitstream, coherent=coherent)
        return Backend("pynq", hw, device, bitstream=bitstream, clock_mhz=device.clock_mhz())
    if bitstream:
        check_bitstream(bitstream, hw, must_exist=False)
    clock = float(hw.platform.freq_mhz) if name == "tsim" else None
    return Backend(name, hw, SimDevice(name, hw), bitstream=bitstream, clock_mhz=clock)
