"""Program bundles: a captured VTA program plus its DRAM state, as an ``.npz`` file.

Format (read without pickle, plain or compressed npz):

* ``config``: 0-d unicode array, a shipped configuration's full name;
* ``insn_addr``, ``insn_count``: 0-d int64;
* ``region_addrs``: 1-d int64 physical byte addresses of non-overlapping regions;
* ``region_0``, ``region_1``, ...: 1-d uint8 contents of each region;
* ``counters`` (written by ``vtatune sim run``): 0-d unicode JSON of the profiler counters.

Bundles are untrusted input.  Members are read from the zip archive directly: each .npy
header is parsed and its declared shape checked against the member's size and the caps
below before any data is read, so neither a header claiming 10^15 elements nor a small
archive that inflates to gigabytes costs more than the caps.  The caps sit far above
compiled programs (the largest measured over the built-in suites has 29 MB of DRAM
regions, 8.5 MB for ResNet-18; a bundle has 2 to 8 regions):

* ``MAX_BUNDLE_BYTES`` uncompressed bytes of the members read, in total;
* ``MAX_REGIONS`` DRAM regions;
* ``MAX_ZIP_DIRECTORY_BYTES`` of zip central directory (parsed whole by ``zipfile``).
"""
from __future__ import annotations

import json
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BundleFormatError, ConfigurationError, DramRangeError, ResourceLimitError
from ..hardware.config import HwConfig, shipped_configs
from .dram import Dram, check_regions

MAX_BUNDLE_BYTES = 1 << 28         # 256 MiB: loaded and run within 1 GiB of address space
MAX_REGIONS = 1 << 12
MAX_ZIP_DIRECTORY_BYTES = 1 << 20  # some 20,000 entries
try:
    from lzma import LZMAError
except ImportError:  # Python built without liblzma: zipfile cannot open LZMA members either
    LZMAError = zlib.error
# Every way zipfile and its decompressors report a damaged archive or member.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, LZMAError, EOFError, OSError, ValueError,
                   RuntimeError, NotImplementedError, OverflowError, struct.error)


@dataclass
class Bundle:
    config: str
    insn_addr: int
    insn_count: int
    regions: list[tuple[int, np.ndarray]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hw(self) -> HwConfig:
        return HwConfig.load(self.config)

    def to_dram(self) -> Dram:
        dram = Dram()
        for base, data in self.regions:
            dram.map(base, data)  # map() copies
        return dram

    def region_at(self, base: int) -> np.ndarray:
        for b, data in self.regions:
            if b == base:
                return data
        raise KeyError(base)


class _Counting:
    """A read-only file wrapper that counts the bytes read (the .npy header's length)."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.n += len(data)
        return data


def _check_zip_directory(path: str) -> None:
    """Refuse archives whose central directory (which zipfile parses whole, into an object
    per entry) is larger than any bundle's.  Finds the end-of-central-directory record the
    way zipfile does; ZIP64 records are refused (a bundle is far below 4 GiB)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (22 + 0xFFFF)))
        tail = f.read(22 + 0xFFFF)
    if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\x00\x00":
        at = len(tail) - 22
    else:
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise BundleFormatError(path, "<file>", "not an .npz archive (no zip directory)")
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        raise BundleFormatError(path, "<file>", "a ZIP64 archive: bundles are plain zip files")
    cd_size = struct.unpack_from("<L", tail, at + 12)[0]
    if cd_size > MAX_ZIP_DIRECTORY_BYTES:
        raise ResourceLimitError("<file>", cd_size, MAX_ZIP_DIRECTORY_BYTES,
                                 f"{path}: zip central directory of too many bytes")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, key: str,
                 budget: list[int]) -> np.ndarray:
    """One .npy member, its header and size checked before its data is read."""
    if info.file_size > budget[0]:
        raise ResourceLimitError(key, info.file_size, MAX_BUNDLE_BYTES,
                                 f"{path}: member {info.filename!r} takes the bundle's members "
                                 f"beyond their total size cap")
    with zf.open(info) as raw:
        f = _Counting(raw)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise BundleFormatError(path, key, f".npy format version {version} (bundles use 1.0 or 2.0)")
        if dtype.hasobject:
            raise BundleFormatError(path, key, "an object array needs pickle; bundles are read without it")
        if dtype.itemsize == 0 or any(n < 0 for n in shape):
            raise BundleFormatError(path, key, f"malformed array header (shape {shape}, dtype {dtype})")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.n + nbytes != info.file_size:
            raise BundleFormatError(
                path, key, f"header declares shape {shape} of {dtype} ({nbytes} bytes) but the "
                           f"member holds {info.file_size - f.n} bytes of data")
        data = bytearray(nbytes)  # writable arrays without a copy, like np.load's
        got = raw.readinto(data)
    if got != nbytes:
        raise BundleFormatError(path, key, f"truncated: {got} of {nbytes} bytes")
    budget[0] -= info.file_size
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _scalar(path: str, arr: np.ndarray, key: str, kind: str):
    if arr.ndim != 0 or arr.dtype.kind not in kind:
        raise BundleFormatError(path, key, f"must be a 0-d {'unicode' if kind == 'U' else 'integer'} "
                                           f"array, got shape {arr.shape} dtype {arr.dtype}")
    return arr[()]


def load_bundle(path: str | os.PathLike) -> Bundle:
    path = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero, a FIFO: no end to find
            raise BundleFormatError(path, "<file>", "not a regular file")
        with open(path, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY":
            raise BundleFormatError(path, "<file>", "a single .npy array, not an .npz bundle")
        _check_zip_directory(path)
        zf = zipfile.ZipFile(path)
    except (BundleFormatError, ResourceLimitError):
        raise
    except FileNotFoundError:
        raise BundleFormatError(path, "<file>", "no such file") from None
    except _ARCHIVE_ERRORS as exc:
        raise BundleFormatError(path, "<file>", f"not an .npz archive readable without pickle ({exc})") from None
    budget = [MAX_BUNDLE_BYTES]
    with zf:
        members = {}
        for info in zf.infolist():  # np.load's naming: "name.npy" is member "name"
            name = info.filename
            members[name[:-4] if name.endswith(".npy") else name] = info

        def member(key: str, why: str = "missing") -> np.ndarray:
            if key not in members:
                raise BundleFormatError(path, key, why)
            try:
                return _read_member(zf, members[key], path, key, budget)
            except (BundleFormatError, ResourceLimitError):
                raise
            except _ARCHIVE_ERRORS as exc:
                raise BundleFormatError(path, key, f"corrupt archive member ({type(exc).__name__}: {exc})") from None

        config = str(_scalar(path, member("config"), "config", "U"))
        if config not in shipped_configs():
            raise BundleFormatError(path, "config", f"{config!r} is not a shipped configuration "
                                                    f"(shipped: {', '.join(shipped_configs())})")
        insn_addr = int(_scalar(path, member("insn_addr"), "insn_addr", "iu"))
        insn_count = int(_scalar(path, member("insn_count"), "insn_count", "iu"))
        addrs = member("region_addrs")
        if addrs.ndim != 1 or addrs.dtype.kind not in "iu":
            raise BundleFormatError(path, "region_addrs", f"must be a 1-d integer array, got "
                                                          f"shape {addrs.shape} dtype {addrs.dtype}")
        if addrs.size > MAX_REGIONS:
            raise ResourceLimitError("region_addrs", addrs.size, MAX_REGIONS, f"{path}: too many DRAM regions")
        regions = []
        for k, base in enumerate(addrs.tolist()):
            key = f"region_{k}"
            arr = member(key, f"missing (region_addrs has {addrs.size} entries)")
            if arr.ndim != 1 or arr.dtype != np.uint8:
                raise BundleFormatError(path, key, f"must be a 1-d uint8 array, got shape "
                                                   f"{arr.shape} dtype {arr.dtype}")
            regions.append((int(base), arr))
        extra = {}
        if "counters" in members:
            text = str(_scalar(path, member("counters"), "counters", "U"))
            try:
                extra["counters"] = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise BundleFormatError(path, "counters", f"not JSON ({type(exc).__name__})") from None
    if insn_count <= 0:
        raise BundleFormatError(path, "insn_count", f"must be positive, got {insn_count}")
    bundle = Bundle(config, insn_addr, insn_count, regions, extra)
    try:  # overlap and address-range checks, without a copy of the data
        check_regions((base, data.size) for base, data in regions)
    except DramRangeError as exc:
        raise BundleFormatError(path, "region_addrs", str(exc)) from None
    return bundle


def _bundle_arrays(bundle: Bundle) -> dict[str, np.ndarray]:
    """The ``.npz`` keys of a bundle (docs/bundle-format.md), for a file or for bytes."""
    arrays: dict[str, np.ndarray] = {
        "config": np.array(bundle.config),
        "insn_addr": np.array(bundle.insn_addr, dtype=np.int64),
        "insn_count": np.array(bundle.insn_count, dtype=np.int64),
        "region_addrs": np.array([b for b, _ in bundle.regions], dtype=np.int64),
    }
    for k, (_, data) in enumerate(bundle.regions):
        arrays[f"region_{k}"] = np.asarray(data, dtype=np.uint8)
    return arrays


def save_bundle(path: str | os.PathLike, bundle: Bundle, counters: dict | None = None,
                compressed: bool = True, timing: dict | None = None) -> None:
    arrays = _bundle_arrays(bundle)
    if counters is not None:
        arrays["counters"] = np.array(json.dumps(counters, sort_keys=True))
    if timing is not None:
        arrays["timing"] = np.array(json.dumps(timing, sort_keys=True))
    # through a file object, so numpy does not append ".npz" to a path without it
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def run_bundle(bundle: Bundle, target: str = "fsim"):
    """Execute a bundle; returns (final bundle, RunResult)."""
    from .simulators import create_simulator

    try:
        hw = bundle.hw
    except ConfigurationError as exc:
        raise BundleFormatError("<bundle>", "config", str(exc)) from None
    dram = bundle.to_dram()
    sim = create_simulator(target, hw, dram)
    result = sim.run(bundle.insn_addr, bundle.insn_count)
    final = Bundle(bundle.config, bundle.insn_addr, bundle.insn_count,
                   [(r.base, r.data) for r in dram.regions])
    return final, result


def bundle_to_bytes(bundle: Bundle, compressed: bool = False) -> bytes:
    """The bundle as the bytes of an ``.npz`` file (what ``save_bundle`` writes, without
    counters); uncompressed by default: a board server reads it at once, and inflating a
    multi-megabyte bundle costs more than sending it over a network."""
    import io

    arrays = _bundle_arrays(bundle)
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()
