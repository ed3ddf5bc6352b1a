#!/usr/bin/env python3
"""Per-measurement protocol overhead of the board runner on loopback.

Starts ``vtatune board serve --backend fsim --port 0`` in a subprocess, compiles one
configuration of a ResNet-18 layer (default resnet18.C5, a valid index) and measures, over
--runs measurements after --warmup ones:

* protocol: the client's round trip of one ``run`` request (bundle sent, output region
  back) minus the server's run time (the sum of ``times_s``: the accelerator — here fsim —
  running the program) — what a measurement costs beyond the run itself: transfer, the
  server's bundle parse, relocation and range checks, copies, framing;
* wire: the round trip minus the server's whole handling time (``server_s["total"]``):
  sockets and framing only;
* runner: ``BoardRunner.execute`` (bundle built from the program, lease acquired and released
  in an SQLite lease table, output unpacked) minus the server's run time.

Median and p95 of each, the bundle size; target: protocol median < 20 ms.

    python scripts/bench_board_protocol.py [--workload resnet18.C5] [--index N] [--runs 60]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet18.C5")
    ap.add_argument("--index", type=int, default=None,
                    help="configuration index (default: the first valid one from 5 on)")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--number", type=int, default=1)
    args = ap.parse_args()

    from vtatune.board.client import BoardClient
    from vtatune.errors import MeasureError
    from vtatune.measure.board_runner import BoardRunner, program_bundle
    from vtatune.measure.runners import compile_config
    from vtatune.task import VtaTask

    task = VtaTask.create(args.workload, None)
    index = args.index
    prog = None
    for i in ([index] if index is not None else range(5, task.space.size)):
        try:
            prog = compile_config(task, task.config(i))
            index = i
            break
        except MeasureError:
            continue
    inputs = prog.random_inputs(index)
    blob, out_region = program_bundle(prog, inputs)

    tmp = tempfile.mkdtemp(prefix="bench_board_")
    server = subprocess.Popen([sys.executable, "-m", "vtatune", "board", "serve", "--backend",
                               "fsim", "--port", "0", "--log", os.path.join(tmp, "server.log")],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        host, port = line.split()[-1].rsplit(":", 1)
        proto, wire, run_s = [], [], []
        with BoardClient(host, int(port)) as client:
            for k in range(args.warmup + args.runs):
                t0 = time.perf_counter()
                res = client.run(blob, number=args.number, regions=[out_region],
                                 timeout_s=120.0)
                rtt = time.perf_counter() - t0
                if k >= args.warmup:
                    proto.append(rtt - sum(res.times_s))
                    wire.append(rtt - res.server_s["total"])
                    run_s.append(sum(res.times_s))
        runner = BoardRunner.from_target(f"pynq://{host}:{port}",
                                         lease_url=f"sqlite:///{tmp}/leases.db")
        full = []
        for k in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            ex = runner.execute(prog, inputs)
            total = time.perf_counter() - t0
            if k >= args.warmup:
                full.append(total - sum(ex.extra["times_s"]))
    finally:
        server.kill()
        server.wait(10)

    ms = 1e3
    print(f"{args.workload} index {index}: {prog.insn_count} instructions, bundle "
          f"{len(blob) / 1024:.0f} KiB ({len(prog.regions)} regions), output region "
          f"{prog.regions['out'][1] / 1024:.0f} KiB; {args.runs} runs after {args.warmup} warm-up")
    print(f"server run (fsim)          median {statistics.median(run_s) * ms:7.2f} ms")
    for name, xs in (("protocol (rtt - run)", proto), ("wire (rtt - server total)", wire),
                     ("runner (execute - run)", full)):
        print(f"{name:26s} median {statistics.median(xs) * ms:7.2f} ms   p95 "
              f"{pct(xs, 95) * ms:7.2f} ms")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    verdict = "met" if statistics.median(proto) < 0.020 else "MISSED"
    print(f"target protocol median < 20 ms: {verdict}")


if __name__ == "__main__":
    main()
