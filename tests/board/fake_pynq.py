"""A stand-in for the ``pynq`` package (``Overlay``, ``MMIO``, ``allocate``), installed as
module ``pynq`` by the tests (``sys.modules``).  It models one PYNQ-Z1 with the VTA design:

* ``allocate`` hands out buffers from a fake CMA allocator whose memory is a simulated
  DRAM (``BOARD.dram``) at physical addresses from ``CMA_BASE``; with ``coherent=False``
  the CPU view is a separate copy that reaches DRAM only on ``flush()`` and is refreshed
  only by ``invalidate()`` (a write-back cache without coherence);
* ``MMIO`` reads and writes 32-bit registers kept per module base, and logs every write;
* when the last of the four control registers gets its start bit, it checks the register
  sequence of the dossier's §5.1-§5.2 for this launch (instruction count and address and
  the five data base registers written 0 before any start; fetch started with 0x1; load,
  compute and store with 0x81), then runs the stream with fsim on the fake DRAM and sets
  compute+0x18 = 1 (compute writes 0 there when it starts);
* ``BOARD.hang = True``: the accelerator never completes until the next ``Overlay``
  (re-programming resets it); a stream fsim cannot run (e.g. unrelocated addresses) also
  never completes, and the error is kept in ``BOARD.errors``.

A sequence violation raises ``SequenceError`` from the offending ``MMIO.write`` (and is kept
in ``BOARD.violations``).
"""
from __future__ import annotations

import numpy as np

from vtatune.hardware.config import HwConfig
from vtatune.hardware.platforms import PLATFORMS
from vtatune.sim.dram import Dram
from vtatune.sim.simulators import create_simulator

CMA_BASE = 0x1F00_0000
PAGE = 4096
NAMES = dict(zip(PLATFORMS["pynq"].ip_base, ("fetch", "load", "compute", "store")))
ZERO_REGS = {("load", 0x10), ("load", 0x18), ("compute", 0x20), ("compute", 0x28), ("store", 0x10)}


class SequenceError(AssertionError):
    """The driver broke the launch sequence of §5.2."""


class FakeBoard:
    def __init__(self, *, coherent: bool = True, hw: str | None = None):
        self.hw = HwConfig.load(hw)
        self.coherent = coherent
        self.dram = Dram()
        self.next_phys = CMA_BASE
        self.live: dict[int, FakeBuffer] = {}
        self.regs: dict[str, dict[int, int]] = {n: {} for n in NAMES.values()}
        self.writes: list[tuple[str, int, int]] = []
        self.overlays: list[str] = []
        self.hang = False
        self.launches = 0
        self.completed = 0
        self.errors: list[BaseException] = []
        self.violations: list[str] = []
        self.flushes = 0
        self.invalidates = 0
        self._since: list[tuple[str, int, int]] = []  # writes since the last launch

    # ------------------------------------------------------------------ registers
    def write(self, module: str, offset: int, value: int) -> None:
        value &= 0xFFFFFFFF
        self.writes.append((module, offset, value))
        self._since.append((module, offset, value))
        self.regs[module][offset] = value
        if offset == 0x00 and value & 0x1:
            self._started(module, value)

    def _violation(self, message: str) -> None:
        self.violations.append(message)
        raise SequenceError(message)

    def _started(self, module: str, value: int) -> None:
        want = 0x1 if module == "fetch" else 0x81
        if value != want:
            self._violation(f"{module} started with {value:#x}, expected {want:#x}")
        before = self._since[:-1]
        seen = {(m, o) for m, o, _ in before}
        starts = [m for m, o, v in before if o == 0 and v & 1]
        if not starts:  # the first start of this launch: everything must be set up
            for reg in (("fetch", 0x10), ("fetch", 0x18)):
                if reg not in seen:
                    self._violation(f"{module} started before {reg[0]}+{reg[1]:#x} was written")
            for m, o in sorted(ZERO_REGS):
                if (m, o) not in seen:
                    self._violation(f"{module} started before {m}+{o:#x} was written 0")
                if self.regs[m][o] != 0:
                    self._violation(f"{m}+{o:#x} = {self.regs[m][o]:#x}, must be 0")
        if module in starts:
            self._violation(f"{module} started twice in one launch")
        if len(set(starts) | {module}) == 4:
            self._launch()

    def _launch(self) -> None:
        self.launches += 1
        self._since = []
        compute = self.regs["compute"]
        compute[0x18] = 0
        if self.hang:
            return
        count, addr = self.regs["fetch"][0x10], self.regs["fetch"][0x18]
        try:
            create_simulator("fsim", self.hw, self.dram).run(addr, count)
        except Exception as exc:  # the board would compute garbage or hang: it hangs here
            self.errors.append(exc)
            return
        compute[0x18] = 1
        self.completed += 1

    # ------------------------------------------------------------------ memory
    def allocate(self, nbytes: int) -> FakeBuffer:
        phys = self.next_phys
        self.next_phys += -(-nbytes // PAGE) * PAGE
        region = self.dram.map(phys, nbytes)
        if self.coherent:
            buf = region.data.view(FakeBuffer)
        else:
            buf = np.zeros(nbytes, dtype=np.uint8).view(FakeBuffer)
        buf.physical_address = phys
        buf._board = self
        buf._region = region
        self.live[phys] = buf
        return buf


class FakeBuffer(np.ndarray):
    physical_address = 0
    _board = None
    _region = None

    def __array_finalize__(self, obj):
        if obj is not None:
            self.physical_address = getattr(obj, "physical_address", 0)
            self._board = getattr(obj, "_board", None)
            self._region = getattr(obj, "_region", None)

    def flush(self):
        b = self._board
        b.flushes += 1
        if not b.coherent:
            self._region.data[:] = np.asarray(self)

    def invalidate(self):
        b = self._board
        b.invalidates += 1
        if not b.coherent:
            np.asarray(self)[:] = self._region.data

    def freebuffer(self):
        b = self._board
        if b.live.pop(self.physical_address, None) is not None:
            b.dram.free(self.physical_address)

    close = freebuffer


BOARD = FakeBoard()


def reset(**kwargs) -> FakeBoard:
    """A fresh board (every test starts with one)."""
    global BOARD
    BOARD = FakeBoard(**kwargs)
    return BOARD


# ----------------------------------------------------------------------------- pynq API
class Overlay:
    def __init__(self, bitfile_name, download=True, **kwargs):
        self.bitfile_name = str(bitfile_name)
        BOARD.overlays.append(self.bitfile_name)
        BOARD.hang = False      # the programmable logic is reset
        for regs in BOARD.regs.values():
            regs.clear()


class MMIO:
    def __init__(self, base_addr, length=4, **kwargs):
        if base_addr not in NAMES:
            raise ValueError(f"no VTA module at {base_addr:#x}")
        if length < 0x30:
            raise ValueError(f"length {length:#x} does not cover the registers")
        self.base_addr = base_addr
        self.length = length
        self.module = NAMES[base_addr]

    def read(self, offset=0, length=4):
        return BOARD.regs[self.module].get(offset, 0)

    def write(self, offset, data):
        BOARD.write(self.module, int(offset), int(data))


def allocate(shape, dtype=np.uint8, **kwargs):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = BOARD.allocate(n)
    return buf if np.dtype(dtype) == np.uint8 else buf.view(dtype)
