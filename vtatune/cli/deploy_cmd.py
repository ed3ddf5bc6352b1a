"""``vtatune deploy MODEL``: a whole quantized network on VTA (its convolutions and dense
layers with the database's tuned configurations, the rest on the CPU), checked bit for bit
against the int8 reference, with a per-layer report (docs/deploy.md)."""
from __future__ import annotations

import os
import sys

from ..errors import CLIUsageError
from .common import add_hw, add_json, add_sync, emit_json, load_hw, positive


def register(sub) -> None:
    p = sub.add_parser("deploy", help="run a whole quantized network on VTA and check it "
                                      "against the int8 reference")
    p.add_argument("model", metavar="MODEL",
                   help="model spec, e.g. resnet18 or resnet18:res=64 (options as for the "
                        "model zoo)")
    p.add_argument("--target", default="fsim",
                   help="where the VTA layers run: fsim (default), tsim (simulated latency) "
                        "or board servers pynq://HOST:PORT[,HOST:PORT...]")
    p.add_argument("--db", metavar="URL", default=None,
                   help="records database of tuned configurations (default: $VTATUNE_DB, "
                        "else ./vtatune.db if it exists, else none: every layer runs its "
                        "default configuration)")
    add_hw(p)
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (a multiple of the hardware's BATCH for VTA layers)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input (default 0)")
    p.add_argument("--calib", type=int, default=4,
                   help="calibration inputs of the quantizer (default 4)")
    p.add_argument("--no-gains", action="store_true",
                   help="do not time the default configuration of each tuned layer")
    p.add_argument("--trace", metavar="FILE", default=None,
                   help="write a Chrome trace (chrome://tracing) of the run")
    p.add_argument("--board-token-file", metavar="FILE", default=None,
                   help="pynq://: file whose first line is the board servers' shared token")
    add_sync(p)
    add_json(p)
    p.set_defaults(func=cmd_deploy)


def _database(args):
    from ..db import open_db
    url = args.db or os.environ.get("VTATUNE_DB")
    if url is None and os.path.exists("vtatune.db"):
        url = "sqlite:///vtatune.db"
    return None if url is None else open_db(url, readonly=True)


def cmd_deploy(args) -> int:
    from ..measure.runners import runner_for
    from ..network.deploy import DeployMismatchError, deploy
    positive(args.batch, "--batch")
    positive(args.calib, "--calib")
    positive(args.seed, "--seed", minimum=0)
    hw = load_hw(args)
    runner = runner_for(args.target)  # refused before anything is built
    if args.board_token_file:
        if not hasattr(runner, "token_file"):
            raise CLIUsageError("--board-token-file is for board targets (pynq://...)")
        runner = runner.configured(token_file=args.board_token_file)
    db = _database(args)
    try:
        report = deploy(args.model, hw=hw, target=runner, db=db, batch=args.batch,
                        calib=args.calib, seed=args.seed, gains=not args.no_gains,
                        trace=args.trace, sync=args.sync, profile=args.profile)
    finally:
        if db is not None:
            db.close()
    if args.json:
        emit_json(report.to_dict())
    else:
        print(report.format())
        if args.trace:
            print(f"trace written to {args.trace} (open it in chrome://tracing or Perfetto)")
    if not report.bit_exact:
        err = DeployMismatchError(f"the output differs from the int8 reference in "
                                  f"{report.mismatches} bytes (max |diff| {report.max_abs_diff})")
        print(f"vtatune: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0
