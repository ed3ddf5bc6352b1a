"""``vtatune compile | run | sweep | replay``: the compiler on the command line."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter

from ..compiler.sweep import sweep
from ..errors import CLIUsageError, MeasureError
from ..measure.runners import RUNNERS, compile_config, evaluate, runner_for
from ..sim.bundle import save_bundle
from ..task import VtaTask
from ..workloads.suites import list_suites, suite
from .common import add_hw, add_json, add_sync, emit_json, load_hw


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile one configuration of a workload")
    _common(p)
    p.add_argument("--dump", metavar="FILE.npz", help="write a program bundle with packed random inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs of --dump")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="compile one configuration and run it on a simulator")
    _common(p)
    p.add_argument("--target", default="fsim", choices=sorted(RUNNERS))
    p.add_argument("--check", action="store_true", help="compare the output with the numpy reference")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--trace", metavar="FILE.json", help="tsim: write a Chrome-trace (Perfetto) JSON of the pipeline")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="compile-only validity verdict of every configuration")
    p.add_argument("workload", metavar="WORKLOAD|SUITE")
    p.add_argument("-o", "--output", required=True, metavar="FILE.jsonl")
    add_sync(p)
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("replay", help="re-evaluate every record of an AutoTVM JSON log")
    p.add_argument("log", help="AutoTVM v0.2 JSON-lines log")
    p.add_argument("--target", default="fsim", choices=sorted(RUNNERS))
    p.add_argument("--check", action="store_true", help="run each valid record and compare with numpy")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_replay)


def _common(p) -> None:
    p.add_argument("workload", help="suite name (resnet18.C2), spec string or AutoTVM input")
    p.add_argument("--index", type=int, required=True, help="configuration index (AutoTVM order)")
    add_sync(p)
    add_hw(p)
    add_json(p)


def _config(args):
    task = VtaTask.create(args.workload, load_hw(args), sync=args.sync, profile=args.profile)
    if not 0 <= args.index < task.space.size:
        raise CLIUsageError(f"--index {args.index} is outside the space of {task.space.size} "
                            "configurations")
    return task, task.config(args.index)


def _invalid(args, task, cfg, exc) -> int:
    wl = task.workload
    out = {"workload": wl.name, "hw": task.hw.name, "index": cfg.index, "knobs": cfg.knobs, "valid": False,
           "category": int(exc.category), "reason": exc.reason, "message": exc.message}
    if args.json:
        emit_json(out)
    else:
        print(f"{wl.name or args.workload} index {cfg.index} {cfg.knobs}: INVALID "
              f"(category {int(exc.category)} {exc.category.name}, {exc.reason}): {exc.message}")
    return 1


def _compile(args):
    """(task, config, program); program is None after an invalid config was reported."""
    task, cfg = _config(args)
    try:
        return task, cfg, compile_config(task, cfg)
    except MeasureError as exc:
        _invalid(args, task, cfg, exc)
        return task, cfg, None


def cmd_compile(args) -> int:
    task, cfg, prog = _compile(args)
    if prog is None:
        return 1
    wl, hw = task.workload, task.hw
    summary = prog.summary()
    if args.dump:
        from ..hardware.config import shipped_configs
        if hw.name not in shipped_configs() or hw.source != f"shipped:{hw.name}":
            raise CLIUsageError(f"--dump: a bundle names a shipped configuration; {hw.source} is not one")
        save_bundle(args.dump, prog.to_bundle(prog.random_inputs(args.seed)))
    if args.json:
        emit_json({"workload": wl.name, "hw": hw.name, "index": cfg.index, "knobs": cfg.knobs,
                   "valid": True, **summary, "bundle": args.dump})
        return 0
    print(f"{wl.name or args.workload} on {hw.name}, index {cfg.index}: {cfg.knobs}")
    print(f"  instructions: {summary['instructions']}  " +
          ", ".join(f"{k} {v}" for k, v in summary["by_kind"].items()))
    print(f"  micro-ops: {summary['uops']}")
    print("  DRAM traffic (bytes): " + ", ".join(f"{k} {v}" for k, v in summary["dram_bytes"].items()))
    print("  SRAM use (elements, all threads): " + ", ".join(f"{k} {v}" for k, v in summary["sram_elements"].items()))
    if args.dump:
        print(f"  bundle written to {args.dump} (replay with: vtatune sim run {args.dump})")
    return 0


def cmd_run(args) -> int:
    task, cfg, prog = _compile(args)
    if prog is None:
        return 1
    if args.trace and args.target != "tsim":
        raise CLIUsageError("--trace needs --target tsim")
    ev = evaluate(task, cfg, runner_for(args.target), check=args.check, seed=args.seed,
                  trace=bool(args.trace), functional=True, program=prog)
    result, wall = ev.execution.result, ev.execution.wall
    wl, hw = task.workload, task.hw
    doc = {"workload": wl.name, "hw": hw.name, "index": cfg.index, "knobs": cfg.knobs,
           "target": args.target, "instructions": prog.insn_count, "counters": result.counters,
           "correct": ev.correct, "sim_wall_s": round(wall, 4)}
    if hasattr(result, "timing_dict"):
        doc.update(result.timing_dict())
        if result.races:
            doc["race_examples"] = result.races[:5]
    if args.trace:
        from ..sim.tsim import chrome_trace
        with open(args.trace, "w", encoding="utf-8") as f:
            json.dump(chrome_trace(result, hw.platform.freq_mhz), f)
    if args.json:
        emit_json(doc)
    else:
        print(f"{wl.name or args.workload} index {cfg.index} on {args.target}: {prog.insn_count} instructions, "
              f"simulated in {wall:.3f} s")
        print("  " + ", ".join(f"{k}={v}" for k, v in result.counters.items()))
        if hasattr(result, "timing_dict"):
            _print_timing(result)
        if args.trace:
            print(f"  trace written to {args.trace} (open in chrome://tracing or ui.perfetto.dev)")
        if ev.correct is not None:
            print("  output matches the numpy reference" if ev.correct else "  WRONG ANSWER against the numpy reference")
    return 0 if ev.correct in (None, True) else 1


def _print_timing(result) -> None:
    print(f"  latency {result.latency_ms:.3f} ms (accelerator {result.accel_ms:.3f} ms = "
          f"{result.cycles:.0f} cycles, host {result.host_ms:.3f} ms), {result.gops:.2f} GOPS")
    print(f"  {'module':8s} {'insns':>7s} {'busy':>10s} {'token wait':>11s} {'memory wait':>12s} {'fetch wait':>11s}")
    for m, st in result.modules.items():
        print(f"  {m:8s} {st['insns']:7d} {st['busy']:10.0f} {st['stall_token']:11.0f} "
              f"{st['stall_memory']:12.0f} {st['stall_fetch']:11.0f}")
    if result.races:
        print(f"  WARNING: {len(result.races)} data race(s), e.g. {result.races[0]}")


def _workloads_of(name: str, hw):
    """Every offloadable workload of a suite, or the one workload ``name`` names."""
    if name in list_suites():
        return [w for w in suite(name) if w.offloadable]
    return [VtaTask.create(name, hw).workload]


def cmd_sweep(args) -> int:
    hw = load_hw(args)
    workloads = _workloads_of(args.workload, hw)
    stats = []
    t_all = time.perf_counter()
    with open(args.output, "w", encoding="utf-8") as f:
        for wl in workloads:
            t0 = time.perf_counter()
            counts = Counter()
            n = 0
            for rec in sweep(wl, hw, name=wl.name or args.workload, profile=args.profile,
                             sync=args.sync):
                f.write(json.dumps(rec) + "\n")
                counts[rec["reason"] or "valid"] += 1
                n += 1
            dt = time.perf_counter() - t0
            stats.append({"workload": wl.name or args.workload, "configs": n, "valid": counts["valid"],
                          "valid_fraction": round(counts["valid"] / n, 4) if n else 0.0,
                          "reasons": dict(counts), "seconds": round(dt, 3)})
            if not args.json:
                print(f"{stats[-1]['workload']:22s} {n:6d} configs  {counts['valid']:5d} valid "
                      f"({100 * stats[-1]['valid_fraction']:5.1f} %)  {dt:6.2f} s", file=sys.stderr)
    total = time.perf_counter() - t_all
    if args.json:
        emit_json({"hw": hw.name, "profile": args.profile, "sync": args.sync, "output": args.output, "seconds": round(total, 3), "workloads": stats})
    else:
        print(f"{sum(s['configs'] for s in stats)} configurations in {total:.2f} s -> {args.output}")
    return 0


def cmd_replay(args) -> int:
    from ..measure.replay import replay_log
    hw = load_hw(args) if args.hw else None
    runner = runner_for(args.target)
    rows = []
    for row in replay_log(args.log, hw, runner, args.check):
        rows.append(row)
        if not args.json:
            print(_replay_line(row))
    if args.json:
        emit_json(rows)
    bad = any("error" in r or r.get("correct") is False for r in rows)
    return 1 if bad else 0


def _replay_line(row: dict) -> str:
    lineno = row["line"]
    if "skipped" in row:
        return f"line {lineno}: skipped: {row['skipped']}"
    if "error" in row and "workload" not in row:
        return f"line {lineno}: {row['error']}"
    if "entity_error" in row:
        status = f"entity is not a point of the space: {row['entity_error']}"
    else:
        status = "valid" if row.get("valid") else f"invalid ({row.get('reason')})"
    extra = "" if "correct" not in row else (" correct" if row["correct"] else " WRONG ANSWER")
    if "latency_ms" in row:
        extra += f" {row['latency_ms']:.3f} ms simulated"
        if "recorded_ms" in row:
            extra += f" (log: {row['recorded_ms']:.3f} ms)"
    match = "" if row.get("index_matches", True) or "entity_error" in row else \
        f" [index does not decode to the entity: applied index {row.get('applied_index')}]"
    split = [w["field"] for w in row.get("warnings", ()) if w["reason"] == "split_outer_ignored"]
    if split:
        match += f" [split outer factor ignored (AutoTVM's SplitEntity): {', '.join(split)}]"
    return f"line {lineno}: {row.get('workload', '?')} index {row.get('index')}: {status}{extra}{match}"
