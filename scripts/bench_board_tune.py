#!/usr/bin/env python3
"""A tuning run on loopback board servers against the same run on the local simulator.

Tunes one workload twice in one session, with the same tuner, seed, trials and workers:

* ``--target fsim``: the local process pool runs fsim in its workers;
* ``--target pynq://A,B``: two ``vtatune board serve --backend fsim`` subprocesses on
  loopback, leases in the same SQLite file as the records.

Reports the wall time of each, the time per measurement, and whether both runs recorded the
same outcome (valid or the same error) for every configuration — the board path must change
where a program runs, not what it computes.

    python scripts/bench_board_tune.py [--workload resnet18.C10] [--trials 64] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time


def start_server(log: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, "-m", "vtatune", "board", "serve", "--backend", "fsim",
                          "--port", "0", "--log", log], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        sys.exit(f"board server did not start: {line!r}")
    threading.Thread(target=p.stdout.read, daemon=True).start()  # drain, never block it
    return p, line.split()[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet18.C10")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tuner", default="random")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    from vtatune.autotune import tune
    from vtatune.db import open_db
    from vtatune.measure.board_runner import BoardRunner
    from vtatune.task import VtaTask

    task = VtaTask.create(args.workload, "pynq_1x16_i8w8a32_15_15_18_17")
    kw = dict(tuner=args.tuner, n_trial=args.trials, seed=args.seed, workers=args.workers,
              check=True)
    with tempfile.TemporaryDirectory() as tmp:
        servers = [start_server(os.path.join(tmp, f"s{k}.log")) for k in range(2)]
        try:
            with open_db(f"sqlite:///{tmp}/records.db") as db:
                t0 = time.perf_counter()
                local = tune(task, "fsim", db=db, **kw)
                t_local = time.perf_counter() - t0
                runner = BoardRunner.from_target("pynq://" + ",".join(a for _, a in servers))
                t0 = time.perf_counter()
                board = tune(task, runner, db=db, **kw)
                t_board = time.perf_counter() - t0
                outcomes = {}
                for r in db.records(workload_key=task.key, source="measured"):
                    outcomes.setdefault(r.runner, {})[r.config_index] = (r.error_no, r.reason)
        finally:
            for p, _ in servers:
                p.kill()
                p.wait(10)
    same = outcomes[local.runner] == outcomes[board.runner]
    print(f"{args.workload}: {args.trials} trials, tuner {args.tuner}, seed {args.seed}, "
          f"{args.workers} workers; {local.valid} valid")
    for name, s, t in (("fsim (local pool)", local, t_local),
                       ("pynq:// 2 fsim servers", board, t_board)):
        print(f"{name:24s} {t:7.1f} s  {t / max(1, s.new) * 1e3:7.1f} ms per measurement  "
              f"(runner {s.runner})")
    print(f"same outcome for every configuration: {same}; board/local time "
          f"{t_board / t_local:.2f}x")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
