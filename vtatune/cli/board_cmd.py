"""``vtatune board serve|check``: the board server (on a PYNQ board, or on fsim/tsim) and
a check of a running server with a known program (docs/board.md)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

import numpy as np

from ..errors import VtatuneError
from .common import add_json, emit_json

#: the known program of ``board check``: a small conv2d with bias (every kind of LOAD,
#: padding, ALU epilogue, STORE) and a configuration valid on the 1x16 configurations
CHECK_WORKLOAD = dict(height=8, width=8, in_channels=32, out_channels=32, kernel_h=3,
                      kernel_w=3, pad_h=1, pad_w=1, stride_h=1, stride_w=1, epilogue="bias")
CHECK_KNOBS = {"tile_b": 1, "tile_h": 8, "tile_w": 8, "tile_ci": 1, "tile_co": 2,
               "oc_nthread": 1, "h_nthread": 1}
CHECK_SEED = 0


def register(sub) -> None:
    p = sub.add_parser("board", help="board server (PYNQ, or fsim/tsim) and its check")
    s = p.add_subparsers(dest="board_cmd", required=True, metavar="{serve,check}")
    v = s.add_parser("serve", help="serve one accelerator over TCP (docs/board.md)")
    v.add_argument("--backend", required=True, choices=["pynq", "fsim", "tsim"],
                   help="pynq: the board's VTA bitstream; fsim/tsim: a simulator (same protocol)")
    v.add_argument("--bitstream", metavar="FILE",
                   help="the bitstream to program (pynq; its name must be the --hw "
                        "configuration's, e.g. 1x16_i8w8a32_15_15_18_17.bit)")
    v.add_argument("--hw", metavar="NAME|FILE", default=None,
                   help="hardware configuration (default pynq_1x16_i8w8a32_15_15_18_17)")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs a token)")
    v.add_argument("--port", type=int, default=9091, help="TCP port (0: pick one; default 9091)")
    v.add_argument("--token-file", metavar="F",
                   help="file holding the shared token (default: $VTATUNE_BOARD_TOKEN)")
    v.add_argument("--log", metavar="FILE", help="append the JSON-lines run log here (default stderr)")
    v.add_argument("--max-bundle-mb", type=float, default=256.0,
                   help="largest bundle accepted, MiB (default 256)")
    v.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="a run finding the accelerator busy waits this long before 'busy' (default 0)")
    v.add_argument("--non-coherent", action="store_true",
                   help="pynq: the design's DMA port is not cache-coherent (flush/invalidate)")
    v.add_argument("--server-id", help="name in the log and info (default HOSTNAME:PORT/PID)")
    v.set_defaults(func=cmd_serve)

    c = s.add_parser("check", help="run a known program on a server and compare with numpy")
    c.add_argument("target", help="pynq://HOST:PORT")
    c.add_argument("--token-file", metavar="F",
                   help="file holding the shared token (default: $VTATUNE_BOARD_TOKEN)")
    c.add_argument("--number", type=int, default=5, help="timed repetitions (default 5)")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds per run (default 10)")
    add_json(c)
    c.set_defaults(func=cmd_check)


# ----------------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    from ..board.backends import create_backend
    from ..board.server import BoardServer, read_token
    from ..errors import ConfigurationError

    token = read_token(args.token_file)
    if args.max_bundle_mb <= 0:
        raise ConfigurationError("max_bundle_mb", f"must be positive, got {args.max_bundle_mb}")
    if not 0 <= args.port < 65536:
        raise ConfigurationError("port", f"must be 0..65535, got {args.port}")
    # refuse an exposed bind without a token before the board is touched
    from ..board.server import is_loopback
    if not is_loopback(args.host) and not token:
        raise ConfigurationError(
            "host", f"{args.host!r} is not a loopback address: a server reachable from the "
                    "network needs a shared token (--token-file F or VTATUNE_BOARD_TOKEN)")
    backend = create_backend(args.backend, hw=args.hw, bitstream=args.bitstream,
                             coherent=not args.non_coherent)
    log_file = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr
    try:
        server = BoardServer(backend, host=args.host, port=args.port, token=token,
                             max_bundle_bytes=int(args.max_bundle_mb * (1 << 20)),
                             busy_wait_s=args.wait, log_file=log_file, server_id=args.server_id)
    except VtatuneError:
        backend.close()
        raise
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on {host}:{server.port}", flush=True)
    info = backend.info()
    print(f"backend {info['backend']}, hw {info['hw']}, bitstream {info['bitstream']}, "
          f"auth {'token' if token else 'none'}", file=sys.stderr, flush=True)

    def stop(signum, frame):
        server.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        if args.log:
            log_file.close()
    return 0


# ----------------------------------------------------------------------------- check
def check_program(hw):
    """The known program of ``board check`` compiled for ``hw``: the fixed configuration,
    or the first valid one of the workload's space when it is not valid on ``hw``."""
    from ..compiler.program import compile_program
    from ..errors import MeasureError
    from ..space import space_for
    from ..workloads import CONV2D, Workload

    wl = Workload(CONV2D, **CHECK_WORKLOAD)
    try:
        return compile_program(wl, CHECK_KNOBS, hw)
    except MeasureError:
        space = space_for(wl.bind(hw), hw)
        for i in range(len(space)):
            try:
                return compile_program(wl, space.get(i).knobs, hw)
            except MeasureError:
                continue
    raise VtatuneError(f"no configuration of the check workload compiles for {hw.name}")


def cmd_check(args: argparse.Namespace) -> int:
    from ..board.client import BoardClient, parse_board_url
    from ..board.server import read_token
    from ..compiler.reference import reference
    from ..errors import ConfigurationError
    from ..hardware.config import HwConfig
    from ..sim.bundle import bundle_to_bytes

    targets = parse_board_url(args.target)
    if len(targets) != 1:
        raise ConfigurationError("target", "board check takes one pynq://HOST:PORT")
    host, port = targets[0]
    token = read_token(args.token_file)
    with BoardClient(host, port, token=token, io_timeout=60.0) as board:
        info = board.info()
        hw = HwConfig.load(info["hw"])
        prog = check_program(hw)
        inputs = prog.random_inputs(CHECK_SEED)
        bundle = prog.to_bundle(inputs)
        out_index = [base for base, _ in bundle.regions].index(prog.regions["out"][0])
        res = board.run(bundle_to_bytes(bundle), number=args.number, timeout_s=args.timeout,
                        regions=[out_index])
    raw = res.regions[out_index][:prog.regions["out"][1]].view(np.int8)
    output = prog.extra["lowering"].unpack_output(raw)
    expected = reference(prog.workload, inputs["data"], inputs["kernel"], inputs.get("bias"))
    correct = bool(output.shape == expected.shape and np.array_equal(output, expected))
    times = res.times_s
    report = {"target": args.target, "correct": correct, "backend": info.get("backend"),
              "bitstream": info.get("bitstream"), "hw": info.get("hw"),
              "hw_ver": info.get("hw_ver"), "clock_mhz": info.get("clock_mhz"),
              "coherent": info.get("coherent"), "host": info.get("host"),
              "server_id": info.get("server_id"), "workload": prog.workload.name or "conv2d-check",
              "knobs": prog.knobs, "instructions": prog.insn_count,
              "times_s": times, "best_s": min(times), "median_s": float(np.median(times)),
              "server_s": res.server_s}
    if args.json:
        emit_json(report)
    else:
        clock = "n/a" if report["clock_mhz"] is None else f"{report['clock_mhz']} MHz"
        print(f"{args.target}: {'correct' if correct else 'WRONG OUTPUT'} "
              f"(conv2d 8x8x32->32 3x3 with bias, {prog.insn_count} instructions)")
        print(f"  backend {report['backend']}, hw {report['hw']} (HW_VER {report['hw_ver']}), "
              f"bitstream {report['bitstream'] or 'none'}, clock {clock}, "
              f"coherent {report['coherent']}, host {report['host']}")
        print(f"  latency: best {min(times) * 1e3:.3f} ms, median {report['median_s'] * 1e3:.3f} ms "
              f"over {len(times)} runs")
        ph = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in res.server_s.items())
        print(f"  server: {ph}")
    if not correct:
        print(f"vtatune: board check: {args.target} computed a wrong output", file=sys.stderr)
        return 1
    return 0
