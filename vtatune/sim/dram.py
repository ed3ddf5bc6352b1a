"""Simulated DRAM with physical addresses, modelled on the VTA simulator's virtual memory.

Allocations take whole 4 KiB pages; an allocation whose first page-table slot is ``s`` has
physical address ``(s + 1) * 4096`` (address 0 is never valid); addresses are 32-bit.
Freed blocks are reused for allocations of the same page count.  Callers can also map
regions at fixed addresses (program bundles do), at any alignment.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import DramRangeError, SimulationError

PAGE = 4096
ADDR_LIMIT = 1 << 32


@dataclass
class Region:
    base: int
    data: np.ndarray  # uint8, 1-d

    @property
    def end(self) -> int:
        return self.base + self.data.size


class Dram:
    def __init__(self) -> None:
        self._bases: list[int] = []
        self._regions: list[Region] = []
        self._next_slot = 0
        self._free: dict[int, list[int]] = {}  # page count -> free base addresses

    # ------------------------------------------------------------------ placement
    @property
    def regions(self) -> list[Region]:
        return list(self._regions)

    def map(self, base: int, data: np.ndarray | bytes | int) -> Region:
        """Place a region at a fixed physical address; ``data`` is its contents (copied) or a
        size (zero-filled).  The placement is checked before anything is allocated."""
        if isinstance(data, (int, np.integer)):
            src, size = None, int(data)
        else:
            src = (np.frombuffer(bytes(data), dtype=np.uint8) if isinstance(data, (bytes, bytearray))
                   else np.asarray(data, dtype=np.uint8).ravel())
            size = src.size
        i = self._slot(base, size, self._bases, self._regions)
        arr = np.zeros(size, dtype=np.uint8) if src is None else np.array(src, dtype=np.uint8)
        region = Region(base, arr)
        self._bases.insert(i, base)
        self._regions.insert(i, region)
        return region

    @staticmethod
    def _slot(base: int, size: int, bases: list[int], regions: list) -> int:
        """Where a region [base, base + size) goes among ``regions`` (sorted by base, each with
        ``base`` and ``end``); DramRangeError if it is outside the address space or overlaps."""
        if base <= 0 or base + size > ADDR_LIMIT:
            raise DramRangeError(f"region [{base:#x}, {base + size:#x}) is outside the 32-bit "
                                 "physical address space (address 0 is never valid)")
        i = bisect.bisect_right(bases, base)
        prev = regions[i - 1] if i > 0 else None
        nxt = regions[i] if i < len(regions) else None
        if (prev and prev.end > base) or (nxt and base + size > nxt.base):
            raise DramRangeError(f"region at {base:#x} of {size} bytes overlaps another region")
        return i

    def alloc(self, nbytes: int) -> int:
        """Allocate ``nbytes`` (zeroed) and return its physical byte address."""
        if nbytes <= 0:
            raise SimulationError(f"cannot allocate {nbytes} bytes")
        pages = -(-nbytes // PAGE)
        free = self._free.get(pages)
        if free:
            base = free.pop()
        else:
            while True:
                base = (self._next_slot + 1) * PAGE
                self._next_slot += pages
                if base + pages * PAGE > ADDR_LIMIT:
                    raise DramRangeError(f"simulated DRAM exhausted allocating {nbytes} bytes")
                if not self._overlaps(base, pages * PAGE):
                    break
        self.map(base, pages * PAGE)
        return base

    def free(self, base: int) -> None:
        i = bisect.bisect_left(self._bases, base)
        if i == len(self._bases) or self._bases[i] != base:
            raise DramRangeError(f"free of {base:#x}: not the start of a region")
        region = self._regions.pop(i)
        self._bases.pop(i)
        if region.base % PAGE == 0 and region.data.size % PAGE == 0:
            self._free.setdefault(region.data.size // PAGE, []).append(region.base)

    def _overlaps(self, base: int, size: int) -> bool:
        i = bisect.bisect_right(self._bases, base)
        if i > 0 and self._regions[i - 1].end > base:
            return True
        return i < len(self._regions) and self._regions[i].base < base + size

    # ------------------------------------------------------------------ access
    def _find(self, addr: int, nbytes: int, what: str) -> tuple[Region, int]:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._regions[i]
            if addr + nbytes <= r.end:
                return r, addr - r.base
        raise DramRangeError(f"{what}: bytes [{addr:#x}, {addr + nbytes:#x}) are not inside one "
                             "mapped DRAM region")

    def view(self, addr: int, nbytes: int, what: str = "DRAM access") -> np.ndarray:
        region, off = self._find(addr, nbytes, what)
        return region.data[off:off + nbytes]

    def write(self, addr: int, data: bytes | np.ndarray) -> None:
        arr = np.frombuffer(bytes(data), dtype=np.uint8) if isinstance(data, (bytes, bytearray)) \
            else np.asarray(data).view(np.uint8).ravel()
        self.view(addr, arr.size, "DRAM write")[:] = arr

    def read(self, addr: int, nbytes: int) -> bytes:
        return self.view(addr, nbytes, "DRAM read").tobytes()

    def rows(self, addr: int, rows: int, row_bytes: int, pitch: int, what: str) -> np.ndarray:
        """A (rows, row_bytes) view of a 2-D strided block; raises if any byte is unmapped."""
        if rows == 0 or row_bytes == 0:
            return np.zeros((rows, row_bytes), dtype=np.uint8)
        span = (rows - 1) * pitch + row_bytes
        region, off = self._find(addr, span, what)
        base = region.data[off:off + span]
        if pitch == row_bytes or rows == 1:  # contiguous: a plain view
            return base.reshape(rows, row_bytes)
        return as_strided(base, shape=(rows, row_bytes), strides=(pitch, 1), writeable=True)


def check_regions(spans) -> None:
    """Raise the DramRangeError ``Dram.map`` would for regions of these (base, size), in
    order, without allocating them."""
    bases: list[int] = []
    placed: list[_Span] = []
    for base, size in spans:
        i = Dram._slot(base, size, bases, placed)
        bases.insert(i, base)
        placed.insert(i, _Span(base, base + size))


@dataclass
class _Span:
    base: int
    end: int
