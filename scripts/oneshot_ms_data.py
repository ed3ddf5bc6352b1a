"""Offline data of the MetaSchedule One-Shot predictor (docs/oneshot.md, "MetaSchedule").

Two steps, both resumable:

1. ``--tune SPEC`` (optional, hours on 2 cores): collect records with MetaSchedule's
   XGB-guided evolutionary search (the original's exploration-biased collection) into
   ``--collect-db``: ``--trials-per-task`` trials for every kernel of each model spec (a rerun
   continues where the stored records stop).
2. Featurise every MetaSchedule record of the ``--db`` databases (and ``--collect-db``) of
   one platform label (``--hw``) into ``-o`` (``OneShotMSData``: 355 features per row, label =
   normalised throughput inside the task).

The shipped ``docs/data/oneshot_ms.npz`` was written from the records of the transfer-tuning
benchmark's MetaSchedule runs (``scripts/bench_transfer_pairs.py``, budget 320: 12 kernels,
192-256 trials each, llvm rocketlake, 2 cores)::

    python scripts/oneshot_ms_data.py --hw llvm-rocketlake-2c -o docs/data/oneshot_ms.npz \\
        --db sqlite:///bench/tt_pairs_b320/resnet18_res_96_width_0_5_resnet50_res_64_width_0_75_stages_3/sources.db \\
        --db sqlite:///bench/tt_pairs_b320/resnet18_res_96_width_0_5_resnet50_res_64_width_0_75_stages_3/full.db \\
        --db sqlite:///bench/tt_pairs_b320/bert_hidden_256_seq_64_heads_4_bert_hidden_384_seq_128_heads_6/sources.db \\
        --db sqlite:///bench/tt_pairs_b320/bert_hidden_256_seq_64_heads_4_bert_hidden_384_seq_128_heads_6/full.db

Regenerating those records from nothing instead::

    python scripts/oneshot_ms_data.py --tune 'resnet18:res=96,width=0.5' --tune ... \\
        --trials-per-task 192 --collect-db sqlite:///oneshot_records.db -o data.npz
"""
from __future__ import annotations

import argparse
import sys
import time

from vtatune.backends.tvm.env import make_target, target_label
from vtatune.backends.tvm.oneshot import build_data
from vtatune.db import open_db


def collect(specs: list[str], url: str, trials_per_task: int, seed: int) -> None:
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    from vtatune.backends.tvm.tune import tune_model
    target = make_target("llvm")
    with open_db(url) as db:
        for spec in specs:
            model = load_model(spec, with_reference=False)
            n = len(extract_kernels(model, target))
            t0 = time.perf_counter()
            rep = tune_model(model, target, db, trials=n * trials_per_task,
                             trials_per_task=trials_per_task, batch=32, seed=seed,
                             session="oneshot-data")
            print(f"{spec}: {rep.measured} measured ({rep.resumed_from} stored before), "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            if rep.interrupted:
                sys.exit(130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", default=[], help="a database URL to read (repeatable)")
    ap.add_argument("--hw", default=None, help="platform label of the records to use "
                                               "(required when the databases hold several)")
    ap.add_argument("--tune", action="append", default=[], metavar="SPEC",
                    help="collect records for this zoo model first (repeatable)")
    ap.add_argument("--collect-db", default=None, help="database the --tune records go to")
    ap.add_argument("--trials-per-task", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    if args.tune:
        if not args.collect_db:
            ap.error("--tune needs --collect-db")
        collect(args.tune, args.collect_db, args.trials_per_task, args.seed)
    urls = args.db + ([args.collect_db] if args.collect_db else [])
    if not urls:
        ap.error("no database: give --db or --tune/--collect-db")
    records, labels = [], set()
    for url in urls:
        with open_db(url) as db:
            recs = [r for r in db.records() if args.hw is None or r.hw == args.hw]
        labels |= {r.hw for r in recs}
        records.extend(recs)
    if len(labels) != 1:
        ap.error(f"records of {len(labels)} platforms ({', '.join(sorted(labels))}): choose "
                 "one with --hw")
    hw = labels.pop()
    cores = int(hw.rsplit("-", 1)[-1].rstrip("c")) if hw.endswith("c") else None
    target = make_target("llvm", num_cores=cores)
    if target_label(target) != hw:
        print(f"warning: records of {hw}, featurised for {target_label(target)}", file=sys.stderr)
    t0 = time.perf_counter()
    data = build_data(records, target, source=",".join(urls),
                      progress=lambda i, n: print(f"task {i}/{n} "
                                                  f"({time.perf_counter() - t0:.0f} s)",
                                                  file=sys.stderr, flush=True))
    data.meta.update({"hw": hw, "databases": urls})
    data.save(args.out)
    print(f"{args.out}: {len(data.tasks)} tasks, {data.x.shape[0]} rows, "
          f"{int((data.y == 0).sum())} failures, digest {data.digest()}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
