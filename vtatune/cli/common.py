"""Shared CLI conventions: ``--json`` on every command, ``--hw`` on hardware-dependent ones,
``--db`` on database ones, progress bars, and loading what those options name.  The CLI is
the only layer that prints."""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import CLIUsageError
from ..hardware.config import DEFAULT_NAME, HwConfig


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def add_hw(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hw", metavar="NAME|FILE", default=None,
                   help=f"hardware configuration: a shipped name or a JSON file (default {DEFAULT_NAME})")


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", default=None,
                   help="SQLAlchemy URL of the records database "
                        "(default: $VTATUNE_DB, else sqlite:///vtatune.db)")


def add_sync(p: argparse.ArgumentParser) -> None:
    from ..compiler.ir import SYNC_MODES
    from ..task import DEFAULT_SYNC
    p.add_argument("--sync", default=DEFAULT_SYNC, choices=list(SYNC_MODES),
                   help=f"dependence-token scheme (docs/compiler.md); default {DEFAULT_SYNC}")
    add_profile(p)


def add_profile(p: argparse.ArgumentParser) -> None:
    from ..compiler.profiles import DEFAULT_PROFILE, PROFILES
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                   help="compiler profile: which configurations compile (docs/compiler.md); "
                        f"default {DEFAULT_PROFILE}, the original stack's verdicts")


def load_hw(args: argparse.Namespace) -> HwConfig:
    return HwConfig.load(getattr(args, "hw", None))


def open_database(args: argparse.Namespace, *, readonly: bool = False) -> Any:
    """The database named by ``--db``.  Read-only commands never create or convert one."""
    from ..db import open_db
    return open_db(args.db, **({"readonly": True} if readonly else {}))


@contextmanager
def opened_db(args: argparse.Namespace, *, readonly: bool = False) -> Iterator[Any]:
    """``open_database``, closed afterwards."""
    db = open_database(args, readonly=readonly)
    try:
        yield db
    finally:
        db.close()


def add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", metavar="SPEC", default="local",
                   help="where measurements run: local (worker processes here, the default), "
                        "dask://HOST:PORT (a Dask scheduler's workers) or dask-local[:N] (a "
                        "Dask LocalCluster of N processes, default --workers); records go to "
                        "this process's --db (docs/study.md)")


def check_executor(args: argparse.Namespace) -> None:
    """Refuse a malformed ``--executor`` before anything is built or measured."""
    from ..measure.executors import parse_executor
    parse_executor(getattr(args, "executor", "local"))


@contextmanager
def opened_executor(args: argparse.Namespace) -> Iterator[Any]:
    """The measurement pool ``--executor`` names, closed afterwards; None for ``local``
    (the tuning session then starts its own ``--workers`` processes, as it always did)."""
    from ..measure.executors import executor_for, parse_executor
    text = getattr(args, "executor", "local")
    if parse_executor(text).kind == "local":
        yield None
        return
    pool = executor_for(text, workers=getattr(args, "workers", None) or 2)
    try:
        yield pool
    finally:
        pool.close()


def positive(value: int | None, option: str, *, minimum: int = 1) -> None:
    """Refuse a count below ``minimum`` with a usage error naming the option."""
    if value is not None and value < minimum:
        raise CLIUsageError(f"{option} must be at least {minimum}, got {value}")


def stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, ``kill``) stops long work as Ctrl-C does: what was measured is
    stored, then the command exits (130)."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


class ProgressBar:
    """A tqdm bar on a terminal (never in CI or with ``--json``), else nothing."""

    def __init__(self, total: int, desc: str, *, unit: str = "trial", enabled: bool = True):
        self.bar = None
        if enabled and sys.stderr.isatty() and not os.environ.get("CI"):
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True)

    def update(self, n: int, **postfix: Any) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(refresh=False, **postfix)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
