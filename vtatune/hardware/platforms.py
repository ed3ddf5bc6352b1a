"""Boards: the per-TARGET platform parameters of VTA's ``pkg_config.py``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """Per-TARGET platform parameters of ``pkg_config.py``."""

    fpga_part: str
    fpga_family: str
    freq_mhz: int
    hls_clock_ns: int
    log_bus_width: int
    axprot: str
    ip_base: tuple[int, int, int, int]  # fetch, load, compute, store


_PYNQ = Platform("xc7z020clg484-1", "zynq-7000", 100, 7, 6, "000",
                 (0x43C00000, 0x43C01000, 0x43C02000, 0x43C03000))
_ULTRASCALE = dict(freq_mhz=333, hls_clock_ns=2, log_bus_width=7, axprot="010",
                   ip_base=(0xA0000000, 0xA0001000, 0xA0002000, 0xA0003000))
PLATFORMS: dict[str, Platform] = {
    "pynq": _PYNQ,
    "sim": _PYNQ,
    "tsim": _PYNQ,
    "intelfocl": _PYNQ,
    "ultra96": Platform("xczu3eg-sbva484-1-e", "zynq-ultrascale+", **_ULTRASCALE),
    "zcu104": Platform("xczu7ev-ffvc1156-2-e", "zynq-ultrascale+", **_ULTRASCALE),
    "de10nano": Platform("5CSEBA6U23I7", "cyclone-v", 100, 2, 6, "100",
                         (0xFF220000, 0xFF221000, 0xFF222000, 0xFF223000)),
}
