"""Entry point of the ``vtatune`` command."""
from __future__ import annotations

import argparse
import sys

from ..errors import CLIUsageError, VtatuneError
from . import (compile_cmd, demo_cmd, deploy_cmd, disasm_cmd, hw_cmd, sim_cmd, space_cmd, study_cmd,
               tune_cmd, tvm_cmd, validity_cmd, workloads_cmd, board_cmd)

COMMANDS = (hw_cmd, disasm_cmd, sim_cmd, demo_cmd, workloads_cmd, space_cmd, compile_cmd, tune_cmd,
            validity_cmd, study_cmd, tvm_cmd, board_cmd, deploy_cmd)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    p = argparse.ArgumentParser(prog="vtatune", description="Auto-tuning toolkit for the VTA accelerator")
    p.add_argument("--version", action="version", version=f"vtatune {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log progress (-v: per batch, -vv: per candidate) to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr, format="vtatune: %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CLIUsageError as exc:
        print(f"vtatune: error: {exc}", file=sys.stderr)
        return 2
    except (VtatuneError, OSError) as exc:
        kind = type(exc).__name__
        print(f"vtatune: {kind}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vtatune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
