"""Running a relocated bundle on a device, and the PYNQ driver (dossier §5.1-§5.4).

:func:`execute` is the board sequence every backend shares: allocate one buffer per region
(at the region's offset within a 4 KiB page, :func:`~vtatune.board.relocate.placed_base`),
relocate the checked stream to those buffers, copy the regions in, flush the CPU cache
where the port is not coherent, launch ``number`` times (each launch timed from the start
writes to the completion read), invalidate and copy the requested regions out, free.

:class:`PynqDevice` drives the four HLS modules through the ``pynq`` package, exactly as
VTA's ``pynq_driver.cc`` does (§5.2):

1. one ``pynq.MMIO(base, 0x1000)`` per module at the platform's IP bases (§5.1);
2. fetch+0x10 = instruction count, fetch+0x18 = physical address of the instructions;
   0 to load+0x10, load+0x18, compute+0x20, compute+0x28, store+0x10 (data base registers:
   instruction ``dram_base`` fields are absolute physical addresses);
3. start: fetch+0x00 = 0x1 (one pass over the stream), then load, compute and store
   +0x00 = 0x81 (ap_start + auto_restart: each HLS invocation executes one instruction);
4. sleep 1 us, poll compute+0x18 until it reads 1, until ``timeout_s`` has passed.

A launch that does not complete is a hang: the device re-programs the bitstream
(``pynq.Overlay``), which resets the programmable logic, and raises ``BoardHangError``; the
next launch runs on the fresh design without a process restart.  ``pynq`` is imported only
when a PynqDevice is created, so this module imports on any machine.
"""
from __future__ import annotations

import abc

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BoardHangError, ConfigurationError, MissingDependencyError
from ..hardware import isa
from ..hardware.config import HwConfig
from ..sim.bundle import Bundle
from .relocate import PAGE, RelocationPlan, placed_base

log = logging.getLogger(__name__)

MODULE_NAMES = ("fetch", "load", "compute", "store")
MMIO_LENGTH = 0x1000
# register offsets (§5.1)
CTRL = 0x00
FETCH_INSN_COUNT = 0x10
FETCH_INSN_ADDR = 0x18
LOAD_INP_ADDR = 0x10
LOAD_WGT_ADDR = 0x18
COMPUTE_DONE = 0x18
COMPUTE_UOP_ADDR = 0x20
COMPUTE_BIAS_ADDR = 0x28
STORE_OUT_ADDR = 0x10
AP_START = 0x1
AP_START_AUTO_RESTART = 0x81
#: the data base registers written 0 before every launch, in the original driver's order
ZEROED = (("load", LOAD_INP_ADDR), ("load", LOAD_WGT_ADDR), ("compute", COMPUTE_UOP_ADDR),
          ("compute", COMPUTE_BIAS_ADDR), ("store", STORE_OUT_ADDR))
#: boards the pynq package drives (their IP bases are in hardware.platforms)
PYNQ_TARGETS = ("pynq", "ultra96", "zcu104")
SPIN_S = 0.002      # poll without sleeping for this long, then sleep POLL_SLEEP_S between reads
POLL_SLEEP_S = 50e-6


@dataclass
class DeviceBuffer:
    """A physically contiguous buffer: ``array`` (uint8, CPU view), ``phys`` its physical
    byte address, ``handle`` the device's own object."""

    array: np.ndarray
    phys: int
    handle: Any = None


class Device(abc.ABC):
    """What :func:`execute` needs of a device (PynqDevice, the simulator devices)."""

    coherent: bool = True

    def begin(self) -> None:
        """Before a bundle's buffers are allocated."""

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> DeviceBuffer:
        """A buffer of ``nbytes`` the accelerator can reach (CMA on a board)."""

    @abc.abstractmethod
    def free(self, buf: DeviceBuffer) -> None:
        """Give ``buf`` back."""

    def flush(self, buf: DeviceBuffer) -> None:
        """Write the CPU cache's lines of ``buf`` back to DRAM (non-coherent ports)."""

    def invalidate(self, buf: DeviceBuffer) -> None:
        """Drop the CPU cache's lines of ``buf`` (non-coherent ports), before reading it."""

    @abc.abstractmethod
    def launch(self, insn_addr: int, insn_count: int, timeout_s: float) -> float:
        """Run the stream once; the seconds from launch to completion."""

    def program(self) -> None:
        """(Re-)program the accelerator."""

    def warm_up(self) -> None:
        """Pay one-time costs (compiling a simulator's core) before the first timed run."""

    def close(self) -> None:
        pass


def execute(device: Device, bundle: Bundle, plan: RelocationPlan, *, number: int,
            timeout_s: float, regions: Sequence[int], phases: dict[str, float]
            ) -> tuple[dict[int, np.ndarray], list[float]]:
    """Run a checked bundle ``number`` times on ``device``; returns the final contents of
    ``regions`` and the time of each run.  ``phases`` receives the seconds spent in
    ``relocate``, ``copy_in`` (allocation included), ``run`` and ``copy_out``."""
    t = time.perf_counter()
    bufs: list[tuple[DeviceBuffer, int]] = []  # buffer, offset of the region inside it
    try:
        device.begin()
        for base, data in bundle.regions:
            buf = device.alloc(int(data.size) + PAGE)
            bufs.append((buf, placed_base(base, buf.phys) - buf.phys))
        t_alloc = time.perf_counter() - t
        t = time.perf_counter()
        reloc = plan.apply([buf.phys + off for buf, off in bufs])
        phases["relocate"] = phases.get("relocate", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        for (buf, off), (_, data) in zip(bufs, bundle.regions):
            buf.array[off:off + data.size] = data
        ibuf, ioff = bufs[reloc.insn_region]
        at = ioff + reloc.insn_offset
        ibuf.array[at:at + len(reloc.stream)] = np.frombuffer(reloc.stream, dtype=np.uint8)
        if not device.coherent:
            for buf, _ in bufs:
                device.flush(buf)
        phases["copy_in"] = t_alloc + time.perf_counter() - t
        t = time.perf_counter()
        times = [device.launch(reloc.insn_addr, bundle.insn_count, timeout_s) for _ in range(number)]
        phases["run"] = time.perf_counter() - t
        t = time.perf_counter()
        out = {}
        for k in regions:
            buf, off = bufs[k]
            if not device.coherent:
                device.invalidate(buf)
            out[k] = np.array(buf.array[off:off + bundle.regions[k][1].size], dtype=np.uint8)
        phases["copy_out"] = time.perf_counter() - t
        return out, times
    finally:
        for buf, _ in bufs:
            try:
                device.free(buf)
            except Exception:  # pragma: no cover - freeing must not hide the real error
                log.exception("freeing a device buffer failed")


# ----------------------------------------------------------------------------- bitstreams
_HW_VER = re.compile(r"^\d+[._]\d+[._]\d+$")


def check_bitstream(path: str | os.PathLike, hw: HwConfig, *, must_exist: bool = True) -> str:
    """The bitstream file's name, after checking it belongs to ``hw``: its name must be
    ``{BITSTREAM}.bit`` (e.g. ``1x16_i8w8a32_15_15_18_17.bit`` for
    ``pynq_1x16_i8w8a32_15_15_18_17``), a HW_VER directory in its path (vta-distro's
    ``pynq/0.0.2/`` or the cache's ``pynq/0_0_2/``) must be ``hw``'s, and the file must be
    a regular file.  ``ConfigurationError`` (field ``bitstream``) otherwise."""
    path = os.fspath(path)
    name = os.path.basename(path)
    want = f"{hw.bitstream}.bit"
    if name != want:
        raise ConfigurationError(
            "bitstream", f"{name!r} does not match the hardware configuration {hw.name}: its "
                         f"bitstream is {want!r} (vta-distro bitstreams/{hw.target}/{hw.hw_ver}/"
                         f"{want}); pass --hw for the configuration this bitstream was built for")
    for part in os.path.normpath(path).split(os.sep)[:-1]:
        if _HW_VER.match(part) and part.replace("_", ".") != hw.hw_ver:
            raise ConfigurationError(
                "bitstream", f"{path!r} sits in a HW_VER {part} directory; {hw.name} is HW_VER "
                             f"{hw.hw_ver} (older bitstreams use another instruction layout)")
    if must_exist and not os.path.isfile(path):
        raise ConfigurationError("bitstream", f"{path!r}: no such file")
    return name


def import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise MissingDependencyError(
            f"the pynq backend needs the board's pynq package (pip install 'vtatune[pynq]' on "
            f"the PYNQ image): {exc}") from None
    return pynq


# ----------------------------------------------------------------------------- PYNQ
class PynqDevice(Device):
    """The VTA design on a PYNQ board, through ``pynq.Overlay`` / ``MMIO`` / ``allocate``."""

    def __init__(self, hw: HwConfig, bitstream: str | os.PathLike, *, coherent: bool = True):
        if hw.target not in PYNQ_TARGETS:
            raise ConfigurationError("hw", f"{hw.name} is a {hw.target} configuration; the pynq "
                                           f"backend drives {', '.join(PYNQ_TARGETS)} boards")
        self.hw = hw
        self.bitstream = os.fspath(bitstream)
        check_bitstream(self.bitstream, hw)
        self.coherent = coherent
        self.pynq = import_pynq()
        self.programs = 0
        self.overlay = None
        self.mmio: dict[str, Any] = {}
        self.program()

    # ------------------------------------------------------------------ bitstream
    def program(self) -> None:
        """Download the bitstream (resets the programmable logic) and map the registers."""
        pynq = self.pynq
        try:
            self.overlay = pynq.Overlay(self.bitstream)
        except Exception as exc:
            # PYNQ images whose Overlay insists on .hwh metadata next to the .bit: the
            # original RPC server downloaded the bare bitstream (§5.8)
            if not hasattr(pynq, "Bitstream"):
                raise
            log.warning("pynq.Overlay(%s) failed (%s); downloading the bare bitstream",
                        self.bitstream, exc)
            pynq.Bitstream(self.bitstream).download()
            self.overlay = None
        self.mmio = {name: pynq.MMIO(base, MMIO_LENGTH)
                     for name, base in zip(MODULE_NAMES, self.hw.platform.ip_base)}
        self.programs += 1

    def clock_mhz(self) -> float:
        return float(self.hw.platform.freq_mhz)

    def fclk0_mhz(self) -> float | None:
        """The PS clock FCLK0 that feeds VTA's clock wizard, if the pynq package reports it."""
        try:
            return float(self.pynq.Clocks.fclk0_mhz)
        except Exception:
            return None

    # ------------------------------------------------------------------ memory (§5.3, §5.4)
    def alloc(self, nbytes: int) -> DeviceBuffer:
        buf = self.pynq.allocate(shape=(nbytes,), dtype=np.uint8)
        return DeviceBuffer(buf, int(buf.physical_address), buf)

    def free(self, buf: DeviceBuffer) -> None:
        h = buf.handle
        (getattr(h, "freebuffer", None) or h.close)()

    def flush(self, buf: DeviceBuffer) -> None:
        buf.handle.flush()

    def invalidate(self, buf: DeviceBuffer) -> None:
        buf.handle.invalidate()

    # ------------------------------------------------------------------ launch (§5.2)
    def launch(self, insn_addr: int, insn_count: int, timeout_s: float) -> float:
        if insn_addr % isa.INSN_BYTES:
            log.warning("instruction stream at %#x is not 16-byte aligned", insn_addr)
        m = self.mmio
        m["fetch"].write(FETCH_INSN_COUNT, int(insn_count))
        m["fetch"].write(FETCH_INSN_ADDR, int(insn_addr))
        for module, offset in ZEROED:
            m[module].write(offset, 0)
        t0 = time.perf_counter()
        m["fetch"].write(CTRL, AP_START)
        m["load"].write(CTRL, AP_START_AUTO_RESTART)
        m["compute"].write(CTRL, AP_START_AUTO_RESTART)
        m["store"].write(CTRL, AP_START_AUTO_RESTART)
        time.sleep(1e-6)
        compute = m["compute"]
        spin_until = t0 + SPIN_S
        deadline = t0 + timeout_s
        while True:
            if compute.read(COMPUTE_DONE) == 1:
                return time.perf_counter() - t0
            now = time.perf_counter()
            if now > deadline:
                break
            if now > spin_until:
                time.sleep(POLL_SLEEP_S)
        waited = time.perf_counter() - t0
        log.warning("VTA did not finish within %.3f s; re-programming %s", timeout_s, self.bitstream)
        self.program()
        raise BoardHangError(f"the accelerator did not signal completion within {timeout_s:g} s "
                             f"(waited {waited:.3f} s); the bitstream was re-programmed",
                             field="timeout_s")
