"""``vtatune compile | run | sweep | replay``: the compiler on the command line."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter

import numpy as np

from ..compiler.program import compile_program
from ..compiler.reference import reference
from ..compiler.sweep import sweep, verdict
from ..errors import CLIUsageError, MeasureError, RecordDecodeError, UnsupportedError, VtatuneError
from ..sim.bundle import save_bundle
from ..sim.targets import SIMULATORS
from ..space import space_for
from ..workloads.suites import list_suites, resolve_workload, suite
from .common import add_hw, add_json, emit_json


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile one configuration of a workload")
    _common(p)
    p.add_argument("--dump", metavar="FILE.npz", help="write a program bundle with packed random inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs of --dump")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="compile one configuration and run it on a simulator")
    _common(p)
    p.add_argument("--target", default="fsim", choices=sorted(SIMULATORS))
    p.add_argument("--check", action="store_true", help="compare the output with the numpy reference")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--trace", metavar="FILE.json", help="tsim: write a Chrome-trace (Perfetto) JSON of the pipeline")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="compile-only validity verdict of every configuration")
    p.add_argument("target", metavar="WORKLOAD|SUITE")
    p.add_argument("-o", "--output", required=True, metavar="FILE.jsonl")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("replay", help="re-evaluate every record of an AutoTVM JSON log")
    p.add_argument("log", help="AutoTVM v0.2 JSON-lines log")
    p.add_argument("--target", default="fsim", choices=sorted(SIMULATORS))
    p.add_argument("--check", action="store_true", help="run each valid record and compare with numpy")
    add_hw(p)
    add_json(p)
    p.set_defaults(func=cmd_replay)


def _common(p) -> None:
    p.add_argument("workload", help="suite name (resnet18.C2), spec string or AutoTVM input")
    p.add_argument("--index", type=int, required=True, help="configuration index (AutoTVM order)")
    p.add_argument("--sync", default="tvm-0.14", choices=["tvm-0.14", "single"],
                   help="dependence-token scheme (docs/compiler.md); default: as TVM v0.14")
    add_hw(p)
    add_json(p)


def _config(args):
    wl, hw = resolve_workload(args.workload, args.hw)
    space = space_for(wl, hw)
    if not 0 <= args.index < space.size:
        raise CLIUsageError(f"--index {args.index} is outside the space of {space.size} configurations")
    return wl, hw, space.get(args.index)


def _invalid(args, wl, hw, cfg, exc) -> int:
    out = {"workload": wl.name, "hw": hw.name, "index": cfg.index, "knobs": cfg.knobs, "valid": False,
           "category": int(exc.category), "reason": exc.reason, "message": exc.message}
    if args.json:
        emit_json(out)
    else:
        print(f"{wl.name or args.workload} index {cfg.index} {cfg.knobs}: INVALID "
              f"(category {int(exc.category)} {exc.category.name}, {exc.reason}): {exc.message}")
    return 1


def _compile(args):
    """(workload, hw, config, program); program is None after an invalid config was reported."""
    wl, hw, cfg = _config(args)
    try:
        return wl, hw, cfg, compile_program(wl, cfg.knobs, hw, sync=args.sync)
    except MeasureError as exc:
        _invalid(args, wl, hw, cfg, exc)
        return wl, hw, cfg, None


def cmd_compile(args) -> int:
    wl, hw, cfg, prog = _compile(args)
    if prog is None:
        return 1
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
    wl, hw, cfg, prog = _compile(args)
    if prog is None:
        return 1
    if args.trace and args.target != "tsim":
        raise CLIUsageError("--trace needs --target tsim")
    inputs = prog.random_inputs(args.seed)
    options = {"trace": True} if args.trace else {}
    t0 = time.perf_counter()
    out, result = prog.run(inputs, args.target, **options)
    wall = time.perf_counter() - t0
    correct = None
    if args.check:
        correct = bool(np.array_equal(out, reference(prog.workload, inputs["data"], inputs["kernel"],
                                                     inputs.get("bias"))))
    doc = {"workload": wl.name, "hw": hw.name, "index": cfg.index, "knobs": cfg.knobs,
           "target": args.target, "instructions": prog.insn_count, "counters": result.counters,
           "correct": correct, "sim_wall_s": round(wall, 4)}
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
        if correct is not None:
            print("  output matches the numpy reference" if correct else "  WRONG ANSWER against the numpy reference")
    return 0 if correct in (None, True) else 1


def _print_timing(result) -> None:
    print(f"  latency {result.latency_ms:.3f} ms (accelerator {result.accel_ms:.3f} ms = "
          f"{result.cycles:.0f} cycles, host {result.host_ms:.3f} ms), {result.gops:.2f} GOPS")
    print(f"  {'module':8s} {'insns':>7s} {'busy':>10s} {'token wait':>11s} {'memory wait':>12s} {'fetch wait':>11s}")
    for m, st in result.modules.items():
        print(f"  {m:8s} {st['insns']:7d} {st['busy']:10.0f} {st['stall_token']:11.0f} "
              f"{st['stall_memory']:12.0f} {st['stall_fetch']:11.0f}")
    if result.races:
        print(f"  WARNING: {len(result.races)} data race(s), e.g. {result.races[0]}")


def _targets(name: str, hw):
    if name in list_suites():
        return [w for w in suite(name) if w.offloadable]
    wl, _ = resolve_workload(name, hw)
    return [wl]


def cmd_sweep(args) -> int:
    from ..hardware.config import HwConfig
    hw = HwConfig.load(args.hw)
    workloads = _targets(args.target, hw)
    stats = []
    t_all = time.perf_counter()
    with open(args.output, "w", encoding="utf-8") as f:
        for wl in workloads:
            t0 = time.perf_counter()
            counts = Counter()
            n = 0
            for rec in sweep(wl, hw, name=wl.name or args.target):
                f.write(json.dumps(rec) + "\n")
                counts[rec["reason"] or "valid"] += 1
                n += 1
            dt = time.perf_counter() - t0
            stats.append({"workload": wl.name or args.target, "configs": n, "valid": counts["valid"],
                          "valid_fraction": round(counts["valid"] / n, 4) if n else 0.0,
                          "reasons": dict(counts), "seconds": round(dt, 3)})
            if not args.json:
                print(f"{stats[-1]['workload']:22s} {n:6d} configs  {counts['valid']:5d} valid "
                      f"({100 * stats[-1]['valid_fraction']:5.1f} %)  {dt:6.2f} s", file=sys.stderr)
    total = time.perf_counter() - t_all
    if args.json:
        emit_json({"hw": hw.name, "output": args.output, "seconds": round(total, 3), "workloads": stats})
    else:
        print(f"{sum(s['configs'] for s in stats)} configurations in {total:.2f} s -> {args.output}")
    return 0


def _record(line: str) -> dict:
    """Parse one AutoTVM v0.2 log line, checking the structure it must have."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordDecodeError(f"not JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise RecordDecodeError("a log record is a JSON object")
    for key, kind in (("input", list), ("config", dict)):
        if not isinstance(rec.get(key), kind):
            raise RecordDecodeError(f"field {key!r} must be a JSON {kind.__name__}")
    result = rec.get("result")
    if result is not None and not (isinstance(result, list) and len(result) >= 2
                                   and isinstance(result[0], list)):
        raise RecordDecodeError("field 'result' must be [costs, error_no, all_cost, timestamp]")
    return rec


def _replay_row(rec: dict, lineno: int, args) -> dict:
    from ..workloads.parse import parse_autotvm_input
    row: dict = {"line": lineno}
    task = parse_autotvm_input(rec["input"], args.hw)
    space = space_for(task.workload, task.hw)
    given = rec["config"]
    row.update(workload=task.workload.name or rec["input"][1], hw=task.hw.name, index=given.get("index"))
    try:
        cfg = space.from_json_dict(given, check_index=False)
    except VtatuneError as exc:
        row["entity_error"] = str(exc)  # the entity itself is not a point of this space
        row["index_matches"] = False
        return row
    row["index_matches"] = given.get("index") in (None, cfg.index)
    if not row["index_matches"]:
        row["index_error"] = f"record index {given.get('index')} does not match its entity, which is index {cfg.index}"
    row["knobs"] = cfg.knobs
    valid, cat, reason, msg = verdict(task.workload, cfg.knobs, task.hw)
    result = rec.get("result") or [[], None]
    row.update(valid=valid, category=cat, reason=reason, message=msg, recorded_error_no=result[1])
    if valid and (args.check or args.target == "tsim"):
        prog = compile_program(task.workload, cfg.knobs, task.hw)
        inputs = prog.random_inputs(lineno)
        out, res = prog.run(inputs, args.target)
        if args.check:
            row["correct"] = bool(np.array_equal(out, reference(
                prog.workload, inputs["data"], inputs["kernel"], inputs.get("bias"))))
        if hasattr(res, "latency_ms"):
            row.update(latency_ms=round(res.latency_ms, 4), cycles=round(res.cycles), gops=round(res.gops, 3))
            costs = [c for c in result[0] if isinstance(c, (int, float))]
            if result[1] == 0 and costs:
                row["recorded_ms"] = round(float(np.mean(costs)) * 1e3, 4)
    return row


def cmd_replay(args) -> int:
    rows = []
    with open(args.log, "rb") as f:
        for lineno, raw_line in enumerate(f, 1):
            try:
                line = raw_line.decode("utf-8").strip()
            except UnicodeDecodeError:
                line = None
            if line is None:
                row = {"line": lineno, "error": f"RecordDecodeError: {args.log}:{lineno}: not UTF-8"}
                rows.append(row)
                if not args.json:
                    print(f"line {lineno}: {row['error']}")
                continue
            if not line or line.startswith("#"):
                continue
            try:
                row = _replay_row(_record(line), lineno, args)
            except (VtatuneError, UnsupportedError) as exc:
                row = {"line": lineno, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            if not args.json:
                if "error" in row:
                    status = row["error"]
                elif "entity_error" in row:
                    status = f"entity is not a point of the space: {row['entity_error']}"
                else:
                    status = "valid" if row.get("valid") else f"invalid ({row.get('reason')})"
                extra = "" if "correct" not in row else (" correct" if row["correct"] else " WRONG ANSWER")
                if "latency_ms" in row:
                    extra += f" {row['latency_ms']:.3f} ms simulated"
                    if "recorded_ms" in row:
                        extra += f" (log: {row['recorded_ms']:.3f} ms)"
                match = "" if row.get("index_matches", True) or "entity_error" in row else \
                    " [index does not decode to the entity]"
                print(f"line {lineno}: {row.get('workload', '?')} index {row.get('index')}: {status}{extra}{match}")
    if args.json:
        emit_json(rows)
    bad = any("error" in r or r.get("correct") is False for r in rows)
    return 1 if bad else 0
