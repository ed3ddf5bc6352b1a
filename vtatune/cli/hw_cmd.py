"""``vtatune hw list`` / ``vtatune hw show [NAME]``."""
from __future__ import annotations

import argparse

from ..hardware.config import HwConfig, shipped_configs
from .common import add_hw, add_json, emit_json


def register(sub) -> None:
    p = sub.add_parser("hw", help="hardware configurations")
    hw_sub = p.add_subparsers(dest="hw_cmd", required=True, metavar="{list,show}")
    pl = hw_sub.add_parser("list", help="list the shipped configurations")
    add_json(pl)
    pl.set_defaults(func=cmd_list)
    ps = hw_sub.add_parser("show", help="print a configuration and its derived constants")
    ps.add_argument("name", nargs="?", default=None, help="shipped name or JSON file (default: --hw)")
    add_hw(ps)
    add_json(ps)
    ps.set_defaults(func=cmd_show)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in shipped_configs():
        hw = HwConfig.load(name)
        rows.append({"name": name, "target": hw.target, "hw_ver": hw.hw_ver,
                     "bitstream": hw.bitstream, "freq_mhz": hw.platform.freq_mhz})
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:40s} target={r['target']:9s} HW_VER {r['hw_ver']}  {r['freq_mhz']} MHz")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    hw = HwConfig.load(args.name if args.name is not None else args.hw)
    if args.json:
        emit_json({"name": hw.name, "source": hw.source, "config": hw.to_dict(), "derived": hw.derived})
        return 0
    print(f"{hw.name}  ({hw.source})")
    print("configuration (vta_config.json fields):")
    for k, v in hw.to_dict().items():
        print(f"  {k:22s} {v}")
    print("derived constants:")
    for k, v in hw.derived.items():
        print(f"  {k:22s} {v}")
    return 0
