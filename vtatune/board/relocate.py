"""Relocation of a program bundle to the buffers it is given on the board.

A bundle's regions carry the physical addresses of the machine that built it; on the board
(or on a simulator backend) every region is placed in a freshly allocated buffer instead.
:func:`relocate` decodes every instruction with the ISA codec, and for each LOAD and STORE
that moves data (LOAD UOP and LOAD ACC included):

* finds the region holding its first DRAM byte, ``dram_base x element bytes``;
* checks that the **whole** 2-D transfer stays inside that one region, exactly as the HLS
  modules move data (dossier §2.11): ``y_size`` rows of ``x_size`` elements at a pitch of
  ``x_stride`` elements, i.e. bytes ``[dram_base*E, (dram_base + (y_size-1)*x_stride +
  x_size)*E)`` (the rows' union lies between the first row's start and the last row's end,
  strides are unsigned); padding is zero-filled in SRAM and never read; LOAD UOP copies
  ``x_size`` micro-ops and ignores ``y_size``/``x_stride``; WGT pads are ignored;
* rewrites ``dram_base`` to the same byte offset in the region's new buffer, in element
  units, refusing a new address that is not a multiple of the element size.

Nothing moves (so nothing is relocated or checked) for ``x_size == 0`` (token-only NOPs),
``y_size == 0`` (except LOAD UOP), LOAD ACC_8BIT, LOAD OUT and unknown memory types: the HLS
modules ignore them (fsim follows).  STORE always writes OUT elements (HLS ignores
``memory_type``).  The instruction stream itself must lie inside one region; its address is
relocated too.  The caller's arrays are never modified: the relocated stream is returned.

Element sizes come from :class:`~vtatune.hardware.config.HwConfig`, field positions from
the ISA layouts (:func:`vtatune.hardware.isa.layouts_for`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import BoardBundleError, BoardDmaRangeError
from ..hardware import isa
from ..hardware.config import HwConfig
from ..hardware.isa import MemType, Opcode

#: names of the memory types in error messages
_KIND = {MemType.UOP: "LOAD UOP", MemType.WGT: "LOAD WGT", MemType.INP: "LOAD INP",
         MemType.ACC: "LOAD ACC"}


@dataclass
class Relocation:
    """The outcome of :func:`relocate`."""

    stream: bytes        # the relocated instruction stream (insn_count x 16 bytes)
    insn_addr: int       # new physical byte address of the first instruction
    insn_region: int     # region number holding the stream
    insn_offset: int     # byte offset of the stream inside that region
    moved: int           # instructions whose dram_base was rewritten
    per_region: list[int]  # data-moving instructions per region


def element_bytes(hw: HwConfig) -> dict[int, int]:
    """DRAM element size of each loadable memory type (LOAD), STORE's under key ``-1``."""
    return {MemType.UOP: hw.uop_elem_bytes, MemType.WGT: hw.wgt_elem_bytes,
            MemType.INP: hw.inp_elem_bytes, MemType.ACC: hw.acc_elem_bytes,
            -1: hw.out_elem_bytes}


def _field(layout: isa.Layout, name: str) -> isa.BitField:
    for f in layout.fields:
        if f.name == name:
            return f
    raise KeyError(name)  # pragma: no cover - the mem layout always has it


def _region_of(bases: np.ndarray, ends: np.ndarray, addr: np.ndarray) -> np.ndarray:
    """Region number (in the sorted order) holding each byte address, -1 where none does."""
    k = np.searchsorted(bases, addr, side="right") - 1
    ok = k >= 0
    kk = np.where(ok, k, 0)
    ok &= addr < ends[kk]
    return np.where(ok, kk, -1)


@dataclass
class RelocationPlan:
    """A checked stream, ready to be moved to any placement of its regions
    (:meth:`apply`).  Built by :func:`plan_relocation` before any buffer is allocated."""

    hw: HwConfig
    words: np.ndarray        # (insn_count, 2) little-endian 64-bit words of the stream
    n_regions: int
    insn_region: int
    insn_offset: int
    rows: np.ndarray         # instructions that move data
    region: np.ndarray       # ... the region each one stays in
    offset: np.ndarray       # ... the byte offset of its first byte in that region
    elem: np.ndarray         # ... its element size in bytes

    def apply(self, new_bases: Sequence[int]) -> Relocation:
        """The stream relocated to regions placed at ``new_bases`` (``BoardBundleError`` for
        a placement that breaks an element's alignment or leaves the 32-bit space)."""
        if len(new_bases) != self.n_regions:
            raise BoardBundleError(f"{len(new_bases)} new bases for {self.n_regions} regions",
                                   field="new_bases")
        new = np.array([int(b) for b in new_bases], dtype=np.int64)
        words = self.words.copy()
        per_region = [0] * self.n_regions
        if self.rows.size:
            e = self.elem
            new_start = new[self.region] + self.offset
            misaligned = new_start % e != 0
            if misaligned.any():
                j = int(np.argmax(misaligned))
                r = int(self.region[j])
                raise BoardBundleError(
                    f"instruction {int(self.rows[j])}: region {r} placed at {int(new[r]):#x} puts "
                    f"its {int(e[j])}-byte elements at {int(new_start[j]):#x}, not a multiple of "
                    f"{int(e[j])}", field="dram_base", insn_index=int(self.rows[j]), region=r)
            new_base = new_start // e
            f = _field(isa.layouts_for(self.hw).mem, "dram_base")
            bad = (new_base > f.mask) | (new_start <= 0)
            if bad.any():
                j = int(np.argmax(bad))
                raise BoardBundleError(f"instruction {int(self.rows[j])}: relocated address "
                                       f"{int(new_start[j]):#x} does not fit dram_base",
                                       field="dram_base", insn_index=int(self.rows[j]))
            word = 1 if f.lo >= 64 else 0
            shift = np.uint64(f.lo - 64 * word)
            mask = np.uint64(f.mask) << shift
            col = words[self.rows, word]
            words[self.rows, word] = (col & ~mask) | (new_base.astype(np.uint64) << shift)
            per_region = [int(c) for c in np.bincount(self.region, minlength=self.n_regions)]
        return Relocation(words.astype("<u8").tobytes(),
                          int(new[self.insn_region]) + self.insn_offset, self.insn_region,
                          self.insn_offset, int(self.rows.size), per_region)


def plan_relocation(hw: HwConfig, regions: Sequence[tuple[int, int]], insn_addr: int,
                    insn_count: int, stream: bytes | np.ndarray) -> RelocationPlan:
    """Decode and check ``stream`` (the ``insn_count`` instructions at ``insn_addr``)
    against the regions ``(base, size)`` of its bundle.

    Raises :class:`BoardDmaRangeError` (``insn_index``, ``region``, ``field``) for a
    transfer that leaves its region or starts outside every region (or an instruction
    stream not inside one region), :class:`BoardBundleError` for a malformed stream.
    Regions must not overlap (the bundle reader checks it)."""
    n_regions = len(regions)
    if insn_count <= 0:
        raise BoardBundleError(f"insn_count must be positive, got {insn_count}", field="insn_count")
    raw = np.frombuffer(bytes(stream) if not isinstance(stream, np.ndarray) else stream.tobytes(),
                        dtype=np.uint8)
    if raw.size != insn_count * isa.INSN_BYTES:
        raise BoardBundleError(f"the stream holds {raw.size} bytes, {insn_count} instructions "
                               f"need {insn_count * isa.INSN_BYTES}", field="insn_count")
    old = np.array([int(b) for b, _ in regions], dtype=np.int64).reshape(-1)
    size = np.array([int(s) for _, s in regions], dtype=np.int64).reshape(-1)
    order = np.argsort(old, kind="stable")
    s_old, s_end = old[order], (old + size)[order]

    # ---- the instruction stream itself
    span = insn_count * isa.INSN_BYTES
    k = int(_region_of(s_old, s_end, np.array([insn_addr], dtype=np.int64))[0]) if n_regions else -1
    if k < 0 or insn_addr + span > s_end[k]:
        raise BoardDmaRangeError(
            f"instruction fetch of {insn_count} instructions at {insn_addr:#x} ({span} bytes) "
            "is not inside one region", field="insn_addr", region=None if k < 0 else int(order[k]))
    insn_region = int(order[k])

    # ---- every data-moving LOAD/STORE
    cols = isa.decode_fields(raw, hw, ("mem",))["mem"]
    op, mt = cols["opcode"], cols["memory_type"]
    xs, ys, stride, base = cols["x_size"], cols["y_size"], cols["x_stride"], cols["dram_base"]
    ebytes = element_bytes(hw)
    elem = np.zeros(op.size, dtype=np.int64)
    is_load, is_store = op == Opcode.LOAD, op == Opcode.STORE
    for m in (MemType.UOP, MemType.WGT, MemType.INP, MemType.ACC):
        elem[is_load & (mt == m)] = ebytes[m]
    elem[is_store] = ebytes[-1]
    uop = is_load & (mt == MemType.UOP)
    nrows = np.where(uop, 1, ys)                # LOAD UOP: one run of x_size micro-ops
    pitch = np.where(uop, 0, stride)
    idx = np.flatnonzero((elem > 0) & (xs > 0) & (nrows > 0))
    e = elem[idx]
    start = base[idx] * e
    end = (base[idx] + (nrows[idx] - 1) * pitch[idx] + xs[idx]) * e
    k = _region_of(s_old, s_end, start) if n_regions else np.full(idx.size, -1)
    kk = np.where(k >= 0, k, 0)
    bad = (k < 0) | (end > (s_end[kk] if n_regions else 0))
    if bad.any():
        j = int(np.argmax(bad))
        i = int(idx[j])
        what = "STORE" if op[i] == Opcode.STORE else _KIND[MemType(int(mt[i]))]
        rng = f"DRAM bytes [{int(start[j]):#x}, {int(end[j]):#x})"
        if k[j] < 0:
            raise BoardDmaRangeError(f"instruction {i} ({what}): {rng} start outside every "
                                     "region of the bundle", insn_index=i, field="dram_base")
        r = int(order[k[j]])
        raise BoardDmaRangeError(
            f"instruction {i} ({what}): {rng} ({int(nrows[i])} rows of {int(xs[i])} elements of "
            f"{int(e[j])} B, pitch {int(pitch[i])}) leave region {r} "
            f"[{int(old[r]):#x}, {int(old[r] + size[r]):#x})",
            insn_index=i, region=r, field="y_size/x_size/x_stride")
    region = order[k] if idx.size else np.zeros(0, dtype=np.int64)
    return RelocationPlan(hw, raw.view("<u8").reshape(-1, 2).copy(), n_regions, insn_region,
                          int(insn_addr - old[insn_region]), idx, region,
                          start - old[region], e)


def relocate(hw: HwConfig, regions: Sequence[tuple[int, int]], insn_addr: int, insn_count: int,
             stream: bytes | np.ndarray, new_bases: Sequence[int]) -> Relocation:
    """Relocate ``stream`` (the ``insn_count`` instructions found at ``insn_addr``) from the
    regions ``(old base, size)`` to the same regions placed at ``new_bases``: the checks of
    :func:`plan_relocation`, then :meth:`RelocationPlan.apply`."""
    return plan_relocation(hw, regions, insn_addr, insn_count, stream).apply(new_bases)


#: the alignment a placement keeps: a 4 KiB page (the largest element is 256 B)
PAGE = 4096


def placed_base(old_base: int, phys: int) -> int:
    """Where to put a region of a bundle at ``old_base`` inside a buffer allocated at
    ``phys`` with ``PAGE`` bytes to spare: at the same offset within a 4 KiB page as in the
    bundle, so every element alignment (and the page crossings tsim times) are kept."""
    return int(phys) + (int(old_base) - int(phys)) % PAGE
