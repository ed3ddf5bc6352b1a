"""Shared CLI conventions: --json on every command, --hw on hardware-dependent ones."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..hardware.config import DEFAULT_NAME, HwConfig


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def add_hw(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hw", metavar="NAME|FILE", default=None,
                   help=f"hardware configuration: a shipped name or a JSON file (default {DEFAULT_NAME})")


def load_hw(args: argparse.Namespace) -> HwConfig:
    return HwConfig.load(getattr(args, "hw", None))


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
