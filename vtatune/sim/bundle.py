"""Program bundles: a captured VTA program plus its DRAM state, as an ``.npz`` file.

Format (read without pickle, plain or compressed npz):

* ``config``: 0-d unicode array, a shipped configuration's full name;
* ``insn_addr``, ``insn_count``: 0-d int64;
* ``region_addrs``: 1-d int64 physical byte addresses of non-overlapping regions;
* ``region_0``, ``region_1``, ...: 1-d uint8 contents of each region;
* ``counters`` (written by ``vtatune sim run``): 0-d unicode JSON of the profiler counters.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BundleFormatError, ConfigurationError, DramRangeError
from ..hardware.config import HwConfig, shipped_configs
from .dram import Dram


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
            dram.map(base, data.copy())
        return dram

    def region_at(self, base: int) -> np.ndarray:
        for b, data in self.regions:
            if b == base:
                return data
        raise KeyError(base)


def _scalar(path: str, data, key: str, kind: str):
    if key not in data.files:
        raise BundleFormatError(path, key, "missing")
    arr = data[key]
    if arr.ndim != 0 or arr.dtype.kind not in kind:
        raise BundleFormatError(path, key, f"must be a 0-d {'unicode' if kind == 'U' else 'integer'} "
                                           f"array, got shape {arr.shape} dtype {arr.dtype}")
    return arr[()]


def load_bundle(path: str | os.PathLike) -> Bundle:
    path = str(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BundleFormatError(path, "<file>", "no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise BundleFormatError(path, "<file>", f"not an .npz archive readable without pickle ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise BundleFormatError(path, "<file>", "a single .npy array, not an .npz bundle")
    with data:
        try:
            config = str(_scalar(path, data, "config", "U"))
            if config not in shipped_configs():
                raise BundleFormatError(path, "config", f"{config!r} is not a shipped configuration "
                                                        f"(shipped: {', '.join(shipped_configs())})")
            insn_addr = int(_scalar(path, data, "insn_addr", "iu"))
            insn_count = int(_scalar(path, data, "insn_count", "iu"))
            if "region_addrs" not in data.files:
                raise BundleFormatError(path, "region_addrs", "missing")
            addrs = data["region_addrs"]
            if addrs.ndim != 1 or addrs.dtype.kind not in "iu":
                raise BundleFormatError(path, "region_addrs", f"must be a 1-d integer array, got "
                                                              f"shape {addrs.shape} dtype {addrs.dtype}")
            regions = []
            for k, base in enumerate(addrs.tolist()):
                key = f"region_{k}"
                if key not in data.files:
                    raise BundleFormatError(path, key, f"missing (region_addrs has {addrs.size} entries)")
                arr = data[key]
                if arr.ndim != 1 or arr.dtype != np.uint8:
                    raise BundleFormatError(path, key, f"must be a 1-d uint8 array, got shape "
                                                       f"{arr.shape} dtype {arr.dtype}")
                regions.append((int(base), np.array(arr)))
            extra = {}
            if "counters" in data.files:
                extra["counters"] = json.loads(str(_scalar(path, data, "counters", "U")))
        except (ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, BundleFormatError):
                raise
            raise BundleFormatError(path, "<file>", f"corrupt archive member ({exc})") from None
    if insn_count <= 0:
        raise BundleFormatError(path, "insn_count", f"must be positive, got {insn_count}")
    bundle = Bundle(config, insn_addr, insn_count, regions, extra)
    try:  # overlap and address-range checks
        bundle.to_dram()
    except DramRangeError as exc:
        raise BundleFormatError(path, "region_addrs", str(exc)) from None
    return bundle


def save_bundle(path: str | os.PathLike, bundle: Bundle, counters: dict | None = None,
                compressed: bool = True, timing: dict | None = None) -> None:
    arrays: dict[str, np.ndarray] = {
        "config": np.array(bundle.config),
        "insn_addr": np.array(bundle.insn_addr, dtype=np.int64),
        "insn_count": np.array(bundle.insn_count, dtype=np.int64),
        "region_addrs": np.array([b for b, _ in bundle.regions], dtype=np.int64),
    }
    for k, (_, data) in enumerate(bundle.regions):
        arrays[f"region_{k}"] = np.asarray(data, dtype=np.uint8)
    if counters is not None:
        arrays["counters"] = np.array(json.dumps(counters, sort_keys=True))
    if timing is not None:
        arrays["timing"] = np.array(json.dumps(timing, sort_keys=True))
    # through a file object, so numpy does not append ".npz" to a path without it
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def run_bundle(bundle: Bundle, target: str = "fsim"):
    """Execute a bundle; returns (final bundle, RunResult)."""
    from .targets import create_simulator

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
