#!/usr/bin/env python3
"""Scaled-down transfer-tuning experiment (methods.md §G.2) on this machine's CPU.

Phases (each resumable: records live in SQLite files under --out, a rerun continues):

1. tune each source model's top-K kernels with MetaSchedule (evolutionary + XGB),
   --source-trials per kernel, into ``sources.db``;
2. transfer-tune the held-out model from the sources (both variants), measured standalone;
   the report is cached in ``transfer.json``;
3. tune the held-out model's same top-K kernels from scratch with MetaSchedule,
   --full-trials per kernel, into ``scratch.db`` (its own file, so the search never sees
   transferred schedules); the active tuning time is logged per session in ``state.json``;
4. end-to-end latency (median of --runs) of: untuned, TT faithful, TT fixed, and MetaSchedule
   snapshots (records up to each --snapshot-every trials), giving
   % of max speedup = (S_TT - 1) / (S_full - 1) and time-to-match = MetaSchedule tuning time
   until its snapshot latency <= TT latency, divided by TT search time.

Writes ``report.json`` and ``report.md`` to --out.  Default sizing takes about two hours on
a 2-core machine; ``--quick`` is a minutes-long smoke run.

    python scripts/bench_transfer.py --out bench/transfer
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

SOURCES = ["resnet50:res=64,width=0.5,stages=2",
           "mobilenetv2:res=64,width=0.5,blocks=4",
           "resnet18:res=96,width=0.5,stages=2"]
HELDOUT = "resnet18:res=64,width=0.5,stages=3"


def top_kernels(kernels, k):
    """The k kernels with the most work (flops x calls): "few kernels per model"."""
    return sorted(kernels, key=lambda x: -(x.flops or 0) * x.weight)[:k]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/transfer")
    ap.add_argument("--sources", default=";".join(SOURCES), help="';'-separated model specs")
    ap.add_argument("--heldout", default=HELDOUT)
    ap.add_argument("--kernels", type=int, default=5, help="top-K kernels tuned per model")
    ap.add_argument("--source-trials", type=int, default=64, help="trials per source kernel")
    ap.add_argument("--full-trials", type=int, default=128, help="MetaSchedule trials per held-out kernel")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--snapshot-every", type=int, default=None, help="trials between snapshots (default: --batch)")
    ap.add_argument("--runs", type=int, default=20, help="timed end-to-end runs per latency")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.source_trials, args.full_trials, args.kernels, args.batch = 8, 16, 2, 8
    logging.basicConfig(level=logging.WARNING)

    from vtatune.backends.tvm import runtime
    from vtatune.backends.tvm.env import make_target, target_label
    from vtatune.backends.tvm.importer import extract_kernels, load_model
    from vtatune.backends.tvm.store import MSDatabase
    from vtatune.backends.tvm.transfer import speedup_share, transfer
    from vtatune.backends.tvm.tune import tune_model
    from vtatune.db import open_db

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"sessions": {}}

    def save_state():
        state_path.write_text(json.dumps(state, indent=1))

    target = make_target("llvm")
    label = target_label(target)
    sources_db = open_db(f"sqlite:///{out / 'sources.db'}")
    scratch_db = open_db(f"sqlite:///{out / 'scratch.db'}")
    src_specs = [s for s in args.sources.split(";") if s]
    t_all = time.time()

    # 1. source tuning
    src_models = []
    for spec in src_specs:
        m = load_model(spec, with_reference=False)
        src_models.append(m)
        ks = top_kernels(extract_kernels(m, target), args.kernels)
        log(f"source {spec}: tuning {[k.name for k in ks]} x {args.source_trials}")
        t0 = time.time()
        rep = tune_model(m, target, sources_db, trials=args.source_trials * len(ks),
                         trials_per_task=args.source_trials, batch=args.batch, seed=args.seed,
                         kernels=[k.name for k in ks], session=f"bench:{spec}")
        state["sessions"].setdefault(f"source:{spec}", []).append([t0, time.time(), rep.measured])
        save_state()
        log(f"  {rep.measured} measured now ({rep.resumed_from} before) in {rep.wall_s:.0f} s; "
            f"failures {({k: v for k, v in rep.counts.items() if k != 'ok' and v})}")

    # 2. transfer
    held = load_model(args.heldout, with_reference=False)
    hk = top_kernels(extract_kernels(held, target), args.kernels)
    # re-measured on every run (minutes); the records dedupe
    # the same kernels as MetaSchedule's from-scratch run below, so both optimise one set
    tt = transfer(held, src_models, target, sources_db, runs=3, kernels=[k.name for k in hk])
    tt_dict = tt.to_dict()
    (out / "transfer.json").write_text(json.dumps(tt_dict, indent=1, default=str))
    log(f"transfer: {tt.measured} candidates in {tt.search_s:.1f} s")

    # 3. MetaSchedule from scratch on the held-out model
    log(f"held-out {args.heldout}: MetaSchedule on {[k.name for k in hk]} x {args.full_trials}")
    t0 = time.time()
    rep = tune_model(held, target, scratch_db, trials=args.full_trials * len(hk),
                     trials_per_task=args.full_trials, batch=args.batch, seed=args.seed,
                     kernels=[k.name for k in hk], session="bench:scratch")
    state["sessions"].setdefault("scratch", []).append([t0, time.time(), rep.measured])
    save_state()
    log(f"  {rep.measured} measured now ({rep.resumed_from} before) in {rep.wall_s:.0f} s")

    # 4. end-to-end latencies, all measured here so that they share the machine's state
    lat = {}
    for variant, database in (("untuned", None), ("faithful", tt.database("faithful")),
                              ("fixed", tt.database("fixed"))):
        _, l = runtime.build_and_measure(held, target, database, runs=args.runs)
        lat[variant] = l.median
    tt_dict["latency_s"] = lat
    tt_dict["complete"] = True
    (out / "transfer.json").write_text(json.dumps(tt_dict, indent=1, default=str))
    log(f"latency untuned {lat['untuned'] * 1e3:.3f} ms, TT faithful {lat['faithful'] * 1e3:.3f} ms, "
        f"TT fixed {lat['fixed'] * 1e3:.3f} ms")

    # snapshots of the from-scratch run, by trial count, with active tuning time
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord

    from vtatune.backends.tvm.store import to_ms_json
    adapter = MSDatabase(scratch_db, target)
    keys = {adapter.key_of(k.mod): k for k in hk}
    recs = sorted((r for r in scratch_db.records(hw=label) if r.workload_key in keys),
                  key=lambda r: r.timestamp)
    sessions = state["sessions"]["scratch"]

    def active_time(ts):
        """Tuning seconds spent until timestamp ts, summed over (possibly resumed) sessions."""
        return sum(max(0.0, min(ts, end) - start) for start, end, _ in sessions if ts >= start)

    if not recs:
        sys.exit("no MetaSchedule record of the held-out model: nothing to report")
    every = args.snapshot_every or args.batch
    points = sorted(set(list(range(every, len(recs) + 1, every)) + [len(recs)]))
    snaps = []
    for n in points:
        mem = ms.database.MemoryDatabase()
        best = {}
        for r in recs[:n]:
            if r.ok and (r.workload_key not in best or r.mean_cost < best[r.workload_key].mean_cost):
                best[r.workload_key] = r
        for key, r in best.items():
            wl = mem.commit_workload(keys[key].mod)
            mem.commit_tuning_record(MSRecord.from_json(to_ms_json(r), wl))
        _, l = runtime.build_and_measure(held, target, mem, runs=args.runs)
        snaps.append({"trials": n, "tuning_s": active_time(recs[n - 1].timestamp),
                      "latency_s": l.median})
        log(f"  snapshot {n} trials, {snaps[-1]['tuning_s']:.0f} s: {l.median * 1e3:.3f} ms")

    # kernel level: the call-weighted sum of the tuned kernels' standalone times, which the
    # untuned rest of the model (identical in every build) does not dilute
    weight = {k.name: k.weight for k in hk}
    name_of = {key: k.name for key, k in keys.items()}
    untuned_k = {c.name: c.untuned_s for c in tt.kernels}
    if any(untuned_k.get(n) is None for n in weight):
        sys.exit("an untuned kernel could not be measured: no kernel-level figures")
    u_sum = sum(weight[n] * untuned_k[n] for n in weight)
    tt_sum = {v: sum(weight[c.name] * (c.fixed_s if v == "fixed" else (c.faithful_s or c.untuned_s))
                     for c in tt.kernels) for v in ("faithful", "fixed")}
    best_k = dict(untuned_k)
    curve = []
    for i, r in enumerate(recs):
        n = name_of[r.workload_key]
        if r.ok and r.mean_cost < best_k[n]:
            best_k[n] = r.mean_cost
        curve.append((i + 1, active_time(r.timestamp), sum(weight[m] * best_k[m] for m in weight)))
    kernel_level = {"untuned_s": u_sum, "full_s": curve[-1][2],
                    "speedup_full": u_sum / curve[-1][2], "variants": {}}
    for v in ("faithful", "fixed"):
        s_tt = u_sum / tt_sum[v]
        hit = next((c for c in curve if c[2] <= tt_sum[v]), None)
        kernel_level["variants"][v] = {
            "sum_s": tt_sum[v], "speedup": s_tt,
            "pct_of_max_speedup": speedup_share(s_tt, kernel_level["speedup_full"]),
            "ms_trials_to_match": hit[0] if hit else None,
            "ms_time_to_match_s": hit[1] if hit else None,
            "time_to_match_ratio": hit[1] / tt.search_s if hit and tt.search_s else None}
    kernel_level["curve"] = curve[::8] + [curve[-1]]

    s_full = lat["untuned"] / snaps[-1]["latency_s"]
    result = {"machine": {"cpu": label, "platform": platform.platform(), "cores": os.cpu_count(),
                          "python": sys.version.split()[0]},
              "config": vars(args), "sources": src_specs, "heldout": args.heldout,
              "heldout_kernels": [k.describe() for k in hk],
              "transfer": tt_dict, "snapshots": snaps, "speedup_full": s_full, "variants": {}}
    for variant in ("faithful", "fixed"):
        s_tt = lat["untuned"] / lat[variant]
        match = next((s for s in snaps if s["latency_s"] <= lat[variant]), None)
        result["variants"][variant] = {
            "latency_s": lat[variant], "speedup": s_tt,
            "pct_of_max_speedup": speedup_share(s_tt, s_full),
            "ms_time_to_match_s": match["tuning_s"] if match else None,
            "ms_trials_to_match": match["trials"] if match else None,
            "time_to_match_ratio": (match["tuning_s"] / tt.search_s) if match and tt.search_s else None}
    result["kernel_level"] = kernel_level
    result["wall_s"] = time.time() - t_all
    (out / "report.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [f"# Transfer-tuning benchmark ({time.strftime('%Y-%m-%d')}, {label})", "",
             f"held-out `{args.heldout}` from {', '.join('`%s`' % s for s in src_specs)}", "",
             f"- untuned latency {lat['untuned'] * 1e3:.3f} ms; MetaSchedule full "
             f"({args.full_trials}/kernel) {snaps[-1]['latency_s'] * 1e3:.3f} ms, speedup {s_full:.2f}x",
             f"- TT search time {tt.search_s:.1f} s ({tt.measured} standalone measurements)"]
    for v, d in result["variants"].items():
        ratio = "not matched" if d["time_to_match_ratio"] is None else f"{d['time_to_match_ratio']:.1f}x"
        lines.append(f"- TT {v}: {d['latency_s'] * 1e3:.3f} ms, speedup {d['speedup']:.2f}x, "
                     f"{d['pct_of_max_speedup']:.1f} % of max speedup; MetaSchedule time to match: {ratio}")
    kl = kernel_level
    lines += ["", f"Kernel level (call-weighted sum of the {len(hk)} tuned kernels, standalone times): "
              f"untuned {kl['untuned_s'] * 1e3:.3f} ms, MetaSchedule full {kl['full_s'] * 1e3:.3f} ms "
              f"(speedup {kl['speedup_full']:.1f}x)"]
    for v, d in kl["variants"].items():
        ratio = ("not matched within the budget" if d["time_to_match_ratio"] is None
                 else f"{d['time_to_match_ratio']:.1f}x ({d['ms_trials_to_match']} trials)")
        lines.append(f"- TT {v}: {d['sum_s'] * 1e3:.3f} ms, speedup {d['speedup']:.1f}x, "
                     f"{d['pct_of_max_speedup']:.1f} % of max speedup; MetaSchedule time to match: {ratio}")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
