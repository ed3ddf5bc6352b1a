#!/usr/bin/env python3
"""Paper-like transfer-tuning benchmark: one source model -> one target model per pair
(Gibson & Cano, PACT 2022; methods.md §B.4, §G.2; issue 16).  docs/tvm.md, "Benchmark".

Per pair, in one process (resumable: SQLite databases and ``state.json`` under
``--out/<pair>/``; rerunning the same command continues where it stopped):

1. **reuse guard** — target kernels structurally identical to a source kernel are reported
   and never counted as transfers;
2. **selection** — the target's top ``--kernels`` kernels by work (flops x calls) whose class
   has a kernel in the source; in the source, only kernels of those classes (the top
   ``--source-kernels`` by work, every selected class covered first);
3. **tuning** — MetaSchedule (evolutionary + XGB, batches of ``--batch``) on the source
   kernels (``sources.db``) and, from scratch, on the target kernels (``full.db``, its own
   file), both with ``--budget`` trials per kernel; then the convergence check (less than
   3 % gain in the last quarter of a kernel's trials) on every kernel's curve, and further
   rounds of ``--round`` trials for kernels that have not converged, up to ``--cap`` trials,
   while ``--extend-until`` (UTC HH:MM) is not reached.  The active tuning time of every
   session is logged, so that each trial has a time stamp on the full run's timeline;
4. **transfer** — ``--repeats`` independent timed transfer searches (replay inside the
   timed phase; fixed and faithful variants), each on a fresh copy of ``sources.db``;
5. **re-measurement** — in one session, interleaved (round-robin, ``--remeasure`` rounds):
   per kernel the unscheduled kernel, TVM's default CPU schedule (dlight's CPU rules), every
   repeat's transfer choices, and every best-so-far record of the full run (its last one is
   MetaSchedule's best); kernel-level figures are the call-weighted sums;
6. **report** — ``report.json`` (timeline, per-repeat latencies, per-kernel tables) and
   ``report.md`` per pair.

    python scripts/bench_transfer_pairs.py --out bench/tt_pairs             # both default pairs
    python scripts/bench_transfer_pairs.py --out bench/tt_pairs --pair 'A->B' --budget 64
    python scripts/bench_transfer_pairs.py --out bench/tt_quick --quick     # smoke run, minutes
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

PAIRS = ["resnet18:res=96,width=0.5->resnet50:res=64,width=0.75,stages=3",
         "bert:hidden=256,seq=64,heads=4->bert:hidden=384,seq=128,heads=6"]
QUICK_PAIRS = ["toy->toy:res=24"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    """Bad input, naming the field."""

    def __init__(self, field: str, msg: str):
        super().__init__(f"{field}: {msg}")
        self.field = field


def parse_pair(text: str) -> tuple[str, str]:
    """``"SOURCE->TARGET"`` -> (source spec, target spec), both checked against the zoo."""
    if not isinstance(text, str) or text.count("->") != 1:
        raise BenchError("pair", f"expected 'SOURCE->TARGET' (one '->'), got {text!r}")
    src, tgt = (s.strip() for s in text.split("->"))
    if not src or not tgt:
        raise BenchError("pair", f"empty source or target in {text!r}")
    if src == tgt:
        raise BenchError("pair", f"source and target are the same model: {src!r}")
    from vtatune.backends.tvm.importer import parse_spec
    from vtatune.errors import ConfigurationError
    for role, spec in (("source", src), ("target", tgt)):
        if spec.lower().endswith(".onnx"):
            if not Path(spec).is_file():
                raise BenchError(f"pair {role}", f"{spec}: no such ONNX file")
            continue
        try:
            parse_spec(spec)
        except ConfigurationError as exc:
            raise BenchError(f"pair {role} ({spec})", str(exc)) from None
    return src, tgt


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:80]


def parse_hhmm(text: str | None) -> float | None:
    """UTC ``HH:MM`` today -> epoch seconds (None: no limit)."""
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise BenchError("extend-until", f"expected UTC HH:MM, got {text!r}")
    now = time.gmtime()
    import calendar
    return calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, int(m.group(1)),
                            int(m.group(2)), 0, 0, 0, 0))


# --------------------------------------------------------------------------- pure helpers
def work(k) -> float:
    return (k.flops or 0.0) * k.weight


def select_kernels(src_kernels, tgt_kernels, reused: dict, k: int, k_src: int):
    """(target kernels, source kernels): the target's top-``k`` by work among kernels that
    are not identical to a source kernel and whose class the source has; the source's
    kernels of those classes, top ``k_src`` by work with every selected class covered
    first (its heaviest kernel)."""
    src_classes = {s.klass for s in src_kernels}
    tgt = [t for t in sorted(tgt_kernels, key=lambda x: -work(x))
           if t.name not in reused and t.klass in src_classes and work(t) > 0][:k]
    classes = []
    for t in tgt:
        if t.klass not in classes:
            classes.append(t.klass)
    cands = sorted((s for s in src_kernels if s.klass in classes and work(s) > 0),
                   key=lambda x: -work(x))
    chosen = []
    for c in classes:                       # one per class first, in the target's order
        first = next((s for s in cands if s.klass == c), None)
        if first is not None and len(chosen) < max(k_src, len(classes)):
            chosen.append(first)
    for s in cands:                         # then the heaviest of the rest
        if len(chosen) >= max(k_src, len(classes)):
            break
        if s not in chosen:
            chosen.append(s)
    return tgt, chosen


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite database in WAL mode (a file copy could miss the
    records still in the write-ahead log)."""
    import sqlite3
    for p in (dst, Path(f"{dst}-wal"), Path(f"{dst}-shm")):
        p.unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def dlight_default(mod, target):
    """(module, rule name or None): TVM's default CPU schedule of a kernel, dlight's CPU
    rules (GEMV, then Reduction: what apache-tvm 0.27 has; Relax's CPU pipeline schedules
    nothing).  dlight's pass rewrites the module it is given in place, so it gets a copy."""
    import tvm
    from tvm.s_tir import dlight as dl
    func = mod["main"]
    for rule in (dl.cpu.GEMV(), dl.cpu.Reduction()):
        with target:
            sch = rule.apply(func, target, False)
        if sch is not None:
            sch = sch[0] if isinstance(sch, list) else sch
            return (tvm.IRModule({"main": sch.mod["main"].with_attr("tirx.is_scheduled", True)}),
                    type(rule).__name__)
    return mod, None


def active_time(ts: float, sessions) -> float:
    """Active tuning seconds until time stamp ``ts``, summed over (resumed) sessions
    ``[[start, end], ...]`` (an open session's end is its last update)."""
    return sum(max(0.0, min(ts, s[1]) - s[0]) for s in sessions if ts >= s[0])


def kernel_curve(records, key: str):
    """A kernel's tuning measurements in stored order: [(timestamp, latency or inf)], build
    and run timeouts left out (they do not count against a budget)."""
    from vtatune.backends.tvm.store import LOCAL_RUNNER
    from vtatune.backends.tvm.tune import NOT_COUNTED
    out = []
    for r in records:
        if r.workload_key != key or r.runner != LOCAL_RUNNER or r.error_no in NOT_COUNTED:
            continue
        out.append((r.timestamp, r.mean_cost if r.ok else math.inf, r))
    return out


def check_convergence(latencies):
    from vtatune.backends.tvm.convergence import convergence
    from vtatune.errors import ConfigurationError
    try:
        c = convergence(latencies)
        return {"converged": c.converged, "gain": c.gain, "trials": c.trials,
                "window": c.window, "text": c.describe()}
    except ConfigurationError as exc:
        return {"converged": False, "gain": None, "trials": len(latencies), "window": None,
                "text": f"not judged: {exc}"}


def share(s_tt: float, s_full: float) -> float | None:
    """% of max speedup, (S_TT - 1) / (S_full - 1) x 100."""
    if not (math.isfinite(s_tt) and math.isfinite(s_full)) or s_full <= 1:
        return None
    return 100.0 * (s_tt - 1) / (s_full - 1)


def spread(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return {"mean": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def match_point(events, tt_sum: float):
    """First (active_s, trials, sum_s) of the full run's kernel-level timeline ``events``
    at or below ``tt_sum``; None if never."""
    return next((e for e in events if e[2] <= tt_sum), None)


def latency_at(events, t: float, start_sum: float) -> float:
    """The full run's kernel-level latency at active time ``t`` (before its first result:
    ``start_sum``, the kernels' untuned sum)."""
    cur = start_sum
    for e in events:
        if e[0] > t:
            break
        cur = e[2]
    return cur


# --------------------------------------------------------------------------- the bench
class PairBench:
    def __init__(self, args, src_spec: str, tgt_spec: str):
        self.args = args
        self.src_spec, self.tgt_spec = src_spec, tgt_spec
        self.dir = Path(args.out) / slug(f"{src_spec}__{tgt_spec}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "state.json"
        self.state = (json.loads(self.state_path.read_text()) if self.state_path.exists()
                      else {"pair": [src_spec, tgt_spec], "sessions": {"source": [], "full": []},
                            "transfer": [], "rounds": []})
        if self.state.get("pair") != [src_spec, tgt_spec]:
            raise BenchError("out", f"{self.dir} holds another pair: {self.state.get('pair')}")

    def save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str))
        tmp.replace(self.state_path)

    # -- phases
    def run(self) -> dict:
        from vtatune.backends.tvm.env import make_target, target_label
        from vtatune.backends.tvm.importer import extract_kernels, load_model
        from vtatune.db import open_db

        a = self.args
        t_start = time.time()
        self.state.setdefault("invocations", []).append(
            {"start": t_start, "load_start": os.getloadavg()})
        self.target = make_target("llvm")
        self.label = target_label(self.target)
        log(f"pair {self.src_spec} -> {self.tgt_spec} ({self.label}), out {self.dir}")
        self.src = load_model(self.src_spec, with_reference=False)
        self.tgt = load_model(self.tgt_spec, with_reference=False)
        src_k = extract_kernels(self.src, self.target)
        tgt_k = extract_kernels(self.tgt, self.target)
        reused = self.reuse_guard(src_k, tgt_k)
        self.tk, self.sk = select_kernels(src_k, tgt_k, reused, a.kernels, a.source_kernels)
        if not self.tk:
            raise BenchError("pair", f"{self.tgt_spec} has no kernel of a class that "
                                     f"{self.src_spec} has (besides identical ones)")
        self.state["selection"] = {
            "target": [k.describe() for k in self.tk], "source": [k.describe() for k in self.sk],
            "target_kernels_total": len(tgt_k), "source_kernels_total": len(src_k),
            "target_work_share": sum(map(work, self.tk)) / (sum(map(work, tgt_k)) or 1)}
        self.save()
        for role, ks in (("target", self.tk), ("source", self.sk)):
            log(f"  {role} kernels: " + ", ".join(f"{k.name} [{k.klass}] x{k.weight}"
                                                  for k in ks))
        self.src_db = open_db(f"sqlite:///{self.dir / 'sources.db'}")
        self.full_db = open_db(f"sqlite:///{self.dir / 'full.db'}")
        self.tune_phase()
        self.transfer_phase()
        rem = self.state.get("remeasure") or self.cached_remeasure()
        if rem is None or self.args.remeasure_again:
            rem = self.remeasure_phase()
            self.state["remeasure"] = rem
            self.save()
        report = self.report(rem)
        self.state["invocations"][-1].update({"end": time.time(), "load_end": os.getloadavg()})
        self.save()
        report["invocations"] = self.state["invocations"]
        (self.dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
        md = render_md(report)
        (self.dir / "report.md").write_text(md)
        print(md, flush=True)
        return report

    def reuse_guard(self, src_k, tgt_k) -> dict:
        """Target kernels structurally identical to a source kernel: {target: source}."""
        import tvm_ffi
        by_hash = {}
        for s in src_k:
            by_hash.setdefault(int(tvm_ffi.structural_hash(s.mod)), []).append(s)
        reused = {}
        for t in tgt_k:
            for s in by_hash.get(int(tvm_ffi.structural_hash(t.mod)), []):
                if tvm_ffi.structural_equal(s.mod, t.mod):
                    reused[t.name] = s.name
                    break
        self.state["reuse"] = [{"target": t, "source": s,
                                "class": next(k.klass for k in tgt_k if k.name == t),
                                "work_share": work(next(k for k in tgt_k if k.name == t))
                                / (sum(map(work, tgt_k)) or 1)} for t, s in reused.items()]
        log(f"  reuse guard: {len(reused)} target kernel(s) identical to a source kernel"
            + "".join(f"\n    {t} == source {s}" for t, s in reused.items()))
        return reused

    def _tune(self, role: str, model, db, kernels, per_task: int) -> None:
        from vtatune.backends.tvm.tune import tune_model
        sessions = self.state["sessions"][role]
        sessions.append([time.time(), time.time()])
        self.save()
        t_last = [time.time()]

        def on_batch(name, n, best):
            sessions[-1][1] = time.time()
            self.save()
            log(f"    {role} {name}: +{n} trials in {time.time() - t_last[0]:.0f} s, best "
                f"{best * 1e6:.1f} us (load {os.getloadavg()[0]:.2f})")
            t_last[0] = time.time()

        rep = tune_model(model, self.target, db, trials=per_task * len(kernels),
                         trials_per_task=per_task, batch=self.args.batch, seed=self.args.seed,
                         kernels=[k.name for k in kernels], session=f"bench:{role}",
                         on_batch=on_batch)
        sessions[-1][1] = time.time()
        if rep.measured == 0:            # nothing left to do (a resumed run): no session
            sessions.pop()
            self.save()
            return
        self.state["rounds"].append({"role": role, "kernels": [k.name for k in kernels],
                                     "per_task": per_task, "measured": rep.measured,
                                     "wall_s": rep.wall_s, "counts": rep.counts,
                                     "start": sessions[-1][0], "end": sessions[-1][1]})
        self.save()
        if rep.interrupted:
            raise KeyboardInterrupt
        log(f"  {role}: {rep.measured} trials measured now ({rep.resumed_from} before) in "
            f"{rep.wall_s:.0f} s; failures "
            f"{ {k: v for k, v in rep.counts.items() if k != 'ok' and v} }")

    def curves(self, role: str) -> dict:
        """{kernel name: [(timestamp, latency, record)]} of one role's tuning."""
        from vtatune.backends.tvm.store import MSDatabase
        db = self.src_db if role == "source" else self.full_db
        ks = self.sk if role == "source" else self.tk
        adapter = MSDatabase(db, self.target)
        recs = db.records(hw=self.label)
        out = {}
        for k in ks:
            c = kernel_curve(recs, adapter.key_of(k.mod))
            out[k.name] = sorted(c, key=lambda x: x[0])     # stable: stored order on ties
        return out

    def tune_phase(self) -> None:
        a = self.args
        deadline = parse_hhmm(a.extend_until)
        for role, model, db, ks in (("source", self.src, self.src_db, self.sk),
                                    ("full", self.tgt, self.full_db, self.tk)):
            log(f"  tuning {role}: {len(ks)} kernels x {a.budget} trials")
            self._tune(role, model, db, ks, a.budget)
        while True:
            todo = {}
            for role, ks in (("source", self.sk), ("full", self.tk)):
                curves = self.curves(role)
                for k in ks:
                    lat = [x[1] for x in curves[k.name]]
                    conv = check_convergence(lat)
                    if not conv["converged"] and len(lat) < a.cap:
                        todo.setdefault(role, []).append((k, len(lat)))
            if not todo:
                log("  every kernel converged or at the cap")
                break
            n = sum(len(v) for v in todo.values())
            est = self._per_trial_s() * a.round * n
            if deadline is not None and time.time() + est > deadline:
                log(f"  {n} kernel(s) not converged, but a further round (~{est:.0f} s) would "
                    f"end after --extend-until {a.extend_until}: stopping here")
                self.state["extension_stopped_by_deadline"] = True
                self.save()
                break
            for role, items in todo.items():
                model, db = (self.src, self.src_db) if role == "source" else (self.tgt,
                                                                              self.full_db)
                per_task = min(a.cap, max(c for _, c in items) + a.round)
                log(f"  extension round {role}: {[k.name for k, _ in items]} to {per_task} "
                    f"trials per kernel")
                self._tune(role, model, db, [k for k, _ in items], per_task)

    def _per_trial_s(self) -> float:
        rounds = [r for r in self.state["rounds"] if r["measured"]]
        if not rounds:
            return 2.1
        return sum(r["end"] - r["start"] for r in rounds) / sum(r["measured"] for r in rounds)

    def transfer_phase(self) -> None:
        from vtatune.backends.tvm.transfer import transfer
        from vtatune.db import open_db
        done = self.state["transfer"]
        for r in range(len(done), self.args.repeats):
            path = self.dir / f"transfer_r{r}.db"
            tmp = self.dir / f"transfer_r{r}.tmp.db"
            copy_sqlite(self.dir / "sources.db", tmp)
            with open_db(f"sqlite:///{tmp}") as db:
                rep = transfer(self.tgt, [self.src], self.target, db, runs=3,
                               kernels=[k.name for k in self.tk])
            tmp.replace(path)
            d = rep.to_dict()
            d["choices"] = {}
            for c in rep.kernels:
                d["choices"][c.name] = {
                    v: (json.loads(json.dumps(rec.as_json(), default=str))
                        if rec is not None else None)
                    for v, rec in (("faithful", c.faithful_record), ("fixed", c.fixed_record))}
            done.append(d)
            self.save()
            log(f"  transfer repeat {r + 1}/{self.args.repeats}: {rep.measured} candidates, "
                f"search {rep.search_s:.1f} s (faithful {rep.faithful_search_s:.1f} s); "
                f"reused {[k.name for k in rep.reused]}")

    def cached_remeasure(self) -> dict | None:
        """The re-measurement of a finished run (its report.json), reused by a rerun that only
        recomputes the report (``--remeasure-again`` measures anew)."""
        path = self.dir / "report.json"
        if not path.exists():
            return None
        old = json.loads(path.read_text())
        lat = {n: {lab: {"median_s": statistics.median(xs), "samples": xs, "rel_err": None}
                   for lab, xs in d.items()} for n, d in old["latency_samples"].items()}
        info = {k["kernel"]: {"dlight_applies": k["dlight_applies"],
                              "dlight_rule": k.get("dlight_rule")} for k in old["per_kernel"]}
        log(f"  re-measurement of {old['date_utc']} UTC reused (report.json)")
        return {"latency": lat, "info": info, "rounds": old["remeasure"]["rounds"],
                "seconds": old["remeasure"]["seconds"], "date_utc": old["date_utc"],
                "max_rel_err": old["remeasure"]["max_rel_err"]}

    def remeasure_phase(self) -> dict:
        """Every schedule of interest, built once, timed round-robin in this process."""
        import numpy as np
        import tvm
        from tvm.s_tir.meta_schedule.arg_info import ArgInfo
        from tvm.s_tir.meta_schedule.database import TuningRecord as MSRecord
        from tvm.s_tir.meta_schedule.database import Workload

        from vtatune.backends.tvm.store import to_ms_json
        from vtatune.backends.tvm.transfer import _apply

        dev = tvm.cpu(0)
        curves = self.curves("full")
        entries = []   # dicts: kernel, label, func, args
        info = {}
        for k in self.tk:
            wl = Workload(k.mod)
            cands = {}   # trace text -> (label list, module)
            cands["unscheduled"] = (["unscheduled"], k.mod)
            dmod, rule = dlight_default(k.mod, self.target)
            applies = rule is not None
            info[k.name] = {"dlight_applies": applies, "dlight_rule": rule}
            cands["default"] = (["default"], dmod)
            by_text = {}

            def add(label, trace, k=k, by_text=by_text, cands=cands):
                sch = _apply(trace, k.mod)
                if sch is None:
                    log(f"    {k.name}: {label} does not replay (left out)")
                    return
                text = str(sch.trace)
                if text in by_text:
                    cands[by_text[text]][0].append(label)
                    return
                by_text[text] = label
                cands[label] = ([label], sch.mod)

            for r, d in enumerate(self.state["transfer"]):
                for v in ("faithful", "fixed"):
                    tj = d["choices"].get(k.name, {}).get(v)
                    if tj is None:
                        lab = f"tt{r}:{v}"
                        cands["unscheduled"][0].append(lab)   # fixed kept the untuned kernel
                        continue
                    trace = MSRecord.from_json(tj, wl).trace
                    add(f"tt{r}:{v}", trace)
            best = math.inf
            for i, (ts, lat, rec) in enumerate(curves[k.name]):
                if lat < best:
                    best = lat
                    trace = MSRecord.from_json(to_ms_json(rec), wl).trace
                    add(f"ms@{i + 1}", trace)
            infos = ArgInfo.from_entry_func(k.mod, remove_preproc=True)
            rng = np.random.default_rng(0)
            host = [rng.uniform(-1, 1, size=[int(x) for x in a.shape]).astype(str(a.dtype))
                    for a in infos]
            ref = None
            for key, (labels, mod) in cands.items():
                lib = tvm.compile(mod, target=self.target)
                args = [tvm.runtime.tensor(h, dev) for h in host]
                lib["main"](*args)
                out = args[-1].numpy()
                if ref is None:
                    ref = out
                err = float(np.max(np.abs(out - ref)) / (np.max(np.abs(ref)) or 1.0))
                ev = lib.mod.time_evaluator("main", dev, number=1, repeat=1, min_repeat_ms=20)
                entries.append({"kernel": k.name, "key": key, "labels": labels, "ev": ev,
                                "args": args, "err": err, "samples": []})
            log(f"  re-measure {k.name}: {len(cands)} distinct schedules")
        n = self.args.remeasure
        log(f"  re-measuring {len(entries)} schedules x {n} rounds, interleaved")
        t0 = time.time()
        for rnd in range(n):
            order = entries[rnd % len(entries):] + entries[:rnd % len(entries)]
            for e in order:
                e["samples"].append(float(e["ev"](*e["args"]).mean))
        log(f"  re-measured in {time.time() - t0:.0f} s")
        out = {}
        for e in entries:
            med = statistics.median(e["samples"])
            for lab in e["labels"]:
                out.setdefault(e["kernel"], {})[lab] = {
                    "median_s": med, "samples": e["samples"], "rel_err": e["err"],
                    "same_as": e["key"]}
        return {"latency": out, "info": info, "rounds": n, "seconds": time.time() - t0,
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "max_rel_err": max(e["err"] for e in entries)}

    def report(self, rem: dict) -> dict:
        a = self.args
        lat = rem["latency"]
        w = {k.name: k.weight for k in self.tk}

        def ksum(label_of):
            return sum(w[n] * lat[n].get(label_of(n), lat[n]["unscheduled"])["median_s"]
                       for n in w)

        sessions = self.state["sessions"]["full"]
        curves = self.curves("full")
        # the full run's kernel-level timeline: an event per best-so-far improvement, with the
        # re-measured latency of that record
        trials = sorted(((ts, n, l) for n, c in curves.items() for ts, l, _ in c),
                        key=lambda x: x[0])
        best_lab = {n: "unscheduled" for n in w}
        best_tun = {n: math.inf for n in w}
        seen = {n: 0 for n in w}
        events, timeline = [], []
        # the same timeline in the runner's own measurements (MetaSchedule's LocalRunner during
        # tuning; transfer-tuning's standalone measurements, same runner): monotone, but
        # from different sessions
        tts = self.state["transfer"]
        untuned_run = {n: statistics.median([c["untuned_s"] for d in tts for c in d["kernels"]
                                             if c["name"] == n and c["untuned_s"]] or [math.nan])
                       for n in w}

        def run_sum():
            return sum(w[m] * (best_tun[m] if math.isfinite(best_tun[m]) else untuned_run[m])
                       for m in w)
        events_run = []
        for i, (ts, n, l) in enumerate(trials):
            seen[n] += 1
            t_act = active_time(ts, sessions)
            if l < best_tun[n]:
                best_tun[n] = l
                events_run.append((t_act, i + 1, run_sum()))
                if f"ms@{seen[n]}" in lat[n]:      # else: it did not replay (logged)
                    best_lab[n] = f"ms@{seen[n]}"
                    events.append((t_act, i + 1, ksum(lambda m: best_lab[m])))
            timeline.append([i + 1, n, round(t_act, 2),
                             None if not math.isfinite(l) else l,
                             None if not math.isfinite(best_tun[n]) else best_tun[n]])
        final_lab = dict(best_lab)
        u_sum = ksum(lambda n: "unscheduled")
        d_sum = ksum(lambda n: "default")
        full_sum = ksum(lambda n: final_lab[n])
        t_full = active_time(max(ts for ts, _, _ in trials), sessions) if trials else None
        n_full = len(trials)
        per_kernel = []
        for k in self.tk:
            row = {"kernel": k.name, "class": k.klass, "weight": k.weight, "flops": k.flops,
                   "dlight_applies": rem["info"][k.name]["dlight_applies"],
                   "dlight_rule": rem["info"][k.name]["dlight_rule"],
                   "unscheduled_s": lat[k.name]["unscheduled"]["median_s"],
                   "default_s": lat[k.name]["default"]["median_s"],
                   "ms_best_s": lat[k.name][final_lab[k.name]]["median_s"],
                   "ms_best_tuning_s": best_tun[k.name], "ms_trials": seen[k.name],
                   "tt": {}}
            for r in range(len(self.state["transfer"])):
                for v in ("faithful", "fixed"):
                    row["tt"][f"r{r}:{v}"] = lat[k.name].get(
                        f"tt{r}:{v}", lat[k.name]["unscheduled"])["median_s"]
            per_kernel.append(row)
        variants = {}
        for v in ("faithful", "fixed"):
            reps = []
            for r, d in enumerate(self.state["transfer"]):
                tt_sum = ksum(lambda n, r=r, v=v: f"tt{r}:{v}")
                search = d["faithful_search_s"] if v == "faithful" else d["search_s"]
                hit = match_point(events, tt_sum)
                ms_at = latency_at(events, search, u_sum)
                run_tt = sum(w[c["name"]] * ((c["fixed_s"] if v == "fixed" else c["faithful_s"])
                                             or c["untuned_s"]) for c in d["kernels"]
                             if c["name"] in w)
                u_run = sum(w[n] * untuned_run[n] for n in w)
                hit_run = match_point(events_run, run_tt)
                runner = {"tt_sum_s": run_tt, "untuned_sum_s": u_run,
                          "ms_full_sum_s": events_run[-1][2] if events_run else None,
                          "pct_max_unscheduled": share(u_run / run_tt, u_run / events_run[-1][2])
                          if events_run else None,
                          "ms_sum_at_tt_time_s": latency_at(events_run, search, u_run),
                          "time_to_match_s": hit_run[0] if hit_run else None,
                          "time_to_match_ratio": (hit_run[0] / search) if hit_run and search
                          else None,
                          "trials_to_match": hit_run[1] if hit_run else None}
                row = {"repeat": r, "sum_s": tt_sum, "search_s": search, "runner": runner,
                       "measured": d["measured"],
                       "pct_max_unscheduled": share(u_sum / tt_sum, u_sum / full_sum),
                       "pct_max_default": share(d_sum / tt_sum, d_sum / full_sum),
                       "t_full_over_t_tt": (t_full / search) if (t_full and search) else None,
                       "ms_sum_at_tt_time_s": ms_at,
                       "ms_speedup_at_tt_time": u_sum / ms_at,
                       "ms_at_multiples": {m: latency_at(events, m * search, u_sum)
                                           for m in (1, 2, 5, 10, 20, 50)},
                       "time_to_match_s": hit[0] if hit else None,
                       "time_to_match_ratio": (hit[0] / search) if hit and search else None,
                       "trials_to_match": hit[1] if hit else None}
                for key in ("pct_max_unscheduled", "time_to_match_ratio", "trials_to_match",
                            "ms_sum_at_tt_time_s"):
                    row[f"runner_{key}"] = runner[key]
                reps.append(row)
            keys = ["sum_s", "search_s", "pct_max_unscheduled", "pct_max_default",
                    "t_full_over_t_tt", "ms_sum_at_tt_time_s", "time_to_match_s",
                    "time_to_match_ratio", "trials_to_match", "runner_pct_max_unscheduled",
                    "runner_time_to_match_ratio", "runner_trials_to_match",
                    "runner_ms_sum_at_tt_time_s"]
            variants[v] = {"repeats": reps, "summary": {k: spread([x[k] for x in reps])
                                                        for k in keys},
                           "matched": sum(x["time_to_match_s"] is not None for x in reps),
                           "runner_matched": sum(x["runner"]["time_to_match_s"] is not None
                                                 for x in reps)}
        conv = {}
        for role in ("source", "full"):
            for n, c in self.curves(role).items():
                conv[f"{role}:{n}"] = check_convergence([x[1] for x in c])
        from vtatune.backends.tvm import env
        return {
            "pair": {"source": self.src_spec, "target": self.tgt_spec},
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": {"target": self.label, "platform": platform.platform(),
                        "cores": os.cpu_count(), "python": sys.version.split()[0],
                        "tvm": getattr(env.require_tvm(), "__version__", "?")},
            "config": {k: v for k, v in vars(a).items() if k != "pair"},
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "selection": self.state["selection"], "reuse": self.state["reuse"],
            "transfer_reused": [d.get("reused") for d in self.state["transfer"]],
            "convergence": conv,
            "extension_stopped_by_deadline": self.state.get("extension_stopped_by_deadline",
                                                            False),
            "rounds": self.state["rounds"],
            "kernel_level": {"unscheduled_s": u_sum, "default_s": d_sum, "full_s": full_sum,
                             "speedup_full_vs_unscheduled": u_sum / full_sum,
                             "speedup_full_vs_default": d_sum / full_sum,
                             "t_full_s": t_full, "full_trials": n_full},
            "variants": variants, "per_kernel": per_kernel,
            "remeasure": {"rounds": rem["rounds"], "seconds": rem["seconds"],
                          "date_utc": rem.get("date_utc"), "max_rel_err": rem["max_rel_err"]},
            "first_ms_result_s": events_run[0][0] if events_run else None,
            "events_runner": events_run,
            "timeline_columns": ["trial", "kernel", "active_s", "latency_s (tuning)",
                                 "kernel best-so-far (tuning)"],
            "timeline": timeline,
            "events_columns": ["active_s", "trials", "kernel-level sum, re-measured"],
            "events": events,
            "latency_samples": {n: {lab: v["samples"] for lab, v in d.items()}
                                for n, d in lat.items()},
        }


# --------------------------------------------------------------------------- Markdown
def _ms(x):
    return "—" if x is None else f"{x * 1e3:.3f} ms"


def _f(x, fmt="{:.1f}"):
    return "—" if x is None else fmt.format(x)


def _sp(s, fmt="{:.1f}", unit=""):
    if s["n"] == 0:
        return "—"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt.format(s["mean"]) + unit
    return f"{fmt.format(s['mean'])}{unit} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def render_md(r: dict) -> str:
    kl = r["kernel_level"]
    L = [f"## {r['pair']['source']} → {r['pair']['target']}", "",
         f"{r['date_utc']} UTC, {r['machine']['target']}, `{r['command']}`", ""]
    if r["reuse"]:
        L.append("Reuse guard: " + "; ".join(
            f"`{x['target']}` is identical to source `{x['source']}` "
            f"({100 * x['work_share']:.1f} % of the target's work) — excluded" for x in r["reuse"]))
    else:
        L.append("Reuse guard: no target kernel is identical to a source kernel.")
    sel = r["selection"]
    L += ["", f"Tuned target kernels ({100 * sel['target_work_share']:.0f} % of the target's "
          f"work): " + ", ".join(f"`{k['name']}` ×{k['weight']}" for k in sel["target"]),
          "Tuned source kernels: " + ", ".join(f"`{k['name']}` ×{k['weight']}"
                                               for k in sel["source"]), ""]
    L += ["| kernel-level (call-weighted sum) | latency | speedup vs unscheduled | vs default |",
          "| --- | --- | --- | --- |",
          f"| unscheduled | {_ms(kl['unscheduled_s'])} | 1 | |",
          (f"| default (dlight CPU rules) | {_ms(kl['default_s'])} | "
           f"{kl['unscheduled_s'] / kl['default_s']:.2f} | 1 |"),
          (f"| MetaSchedule full ({kl['full_trials']} trials, {kl['t_full_s']:.0f} s) | "
           f"{_ms(kl['full_s'])} | {kl['speedup_full_vs_unscheduled']:.1f} | "
           f"{kl['speedup_full_vs_default']:.1f} |")]
    for v, d in r["variants"].items():
        s = d["summary"]
        L.append(f"| TT {v} (mean of {s['sum_s']['n']} repeats) | "
                 f"{_sp({k: (x * 1e3 if isinstance(x, float) else x) for k, x in s['sum_s'].items()}, '{:.3f}', ' ms')} | "
                 f"{kl['unscheduled_s'] / s['sum_s']['mean']:.1f} | "
                 f"{kl['default_s'] / s['sum_s']['mean']:.1f} |")
    L += ["", "| metric (mean, min–max over transfer repeats) | TT faithful | TT fixed |",
          "| --- | --- | --- |"]
    rows = [("% of max speedup vs unscheduled", "pct_max_unscheduled", "{:.1f}", " %"),
            ("% of max speedup vs default", "pct_max_default", "{:.1f}", " %"),
            ("TT search time", "search_s", "{:.1f}", " s"),
            ("T_full / T_TT (search time)", "t_full_over_t_tt", "{:.0f}", "×"),
            ("MetaSchedule at TT's search time (kernel sum)", "ms_sum_at_tt_time_s", "{:.3f}",
             " ms"),
            ("time to match (MetaSchedule / TT search time)", "time_to_match_ratio", "{:.1f}",
             "×"),
            ("trials to match (MetaSchedule, all tuned kernels)", "trials_to_match", "{:.0f}",
             ""),
            ("runner's own measurements: % of max speedup", "runner_pct_max_unscheduled",
             "{:.1f}", " %"),
            ("runner's own measurements: MetaSchedule at TT's search time",
             "runner_ms_sum_at_tt_time_s", "{:.3f}", " ms"),
            ("runner's own measurements: time to match", "runner_time_to_match_ratio",
             "{:.1f}", "×"),
            ("runner's own measurements: trials to match", "runner_trials_to_match", "{:.0f}",
             "")]
    for title, key, fmt, unit in rows:
        cells = []
        for v in ("faithful", "fixed"):
            s = dict(r["variants"][v]["summary"][key])
            if key.endswith("ms_sum_at_tt_time_s") and s["n"]:
                s = {k: (x * 1e3 if isinstance(x, float) else x) for k, x in s.items()}
            cell = _sp(s, fmt, unit)
            if key.endswith(("time_to_match_ratio", "trials_to_match")):
                m = r["variants"][v]["runner_matched" if key.startswith("runner")
                                     else "matched"]
                cell += f" [matched in {m}/{len(r['variants'][v]['repeats'])}]"
            cells.append(cell)
        L.append(f"| {title} | {cells[0]} | {cells[1]} |")
    L += ["", "| convergence (< 3 % gain in the last quarter) | trials | gain | verdict |",
          "| --- | --- | --- | --- |"]
    for n, c in r["convergence"].items():
        L.append(f"| {n} | {c['trials']} | {_f(None if c['gain'] is None else 100 * c['gain'])} % "
                 f"| {'converged' if c['converged'] else 'NOT converged'} |")
    L += ["", "| target kernel | ×calls | unscheduled | default | MS best | TT (repeat: faithful/fixed) |",
          "| --- | --- | --- | --- | --- | --- |"]
    for k in r["per_kernel"]:
        tt = ", ".join(f"{lab}={x * 1e3:.3f}" for lab, x in k["tt"].items())
        L.append(f"| `{k['kernel']}` | {k['weight']} | {_ms(k['unscheduled_s'])} | "
                 f"{_ms(k['default_s'])} ({k['dlight_rule'] or 'no rule applies'}) | "
                 f"{_ms(k['ms_best_s'])} ({k['ms_trials']} trials) | {tt} ms |")
    inv = r.get("invocations") or []
    if inv:
        L += ["", "Load average (1, 5, 15 min) at start / end: " + "; ".join(
            f"{tuple(round(x, 2) for x in i.get('load_start', []))} / "
            f"{tuple(round(x, 2) for x in i.get('load_end', []) or [])}" for i in inv)]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/tt_pairs")
    ap.add_argument("--pair", action="append", help="'SOURCE->TARGET' (repeatable; default: "
                    + "; ".join(PAIRS) + ")")
    ap.add_argument("--kernels", type=int, default=3, help="target kernels tuned (top-K)")
    ap.add_argument("--source-kernels", type=int, default=3, help="source kernels tuned")
    ap.add_argument("--budget", type=int, default=96, help="trials per kernel, sources and full")
    ap.add_argument("--cap", type=int, default=None, help="trials per kernel at most, with "
                    "extension rounds (default 2x --budget)")
    ap.add_argument("--round", type=int, default=None, help="trials per extension round "
                    "(default --batch)")
    ap.add_argument("--extend-until", default=None, help="UTC HH:MM after which no "
                    "extension round starts")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="independent transfer searches")
    ap.add_argument("--remeasure", type=int, default=10, help="interleaved re-measure rounds")
    ap.add_argument("--remeasure-again", action="store_true", help="re-measure even when "
                    "a finished run's re-measurement exists (default: reuse it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        # MetaSchedule's evolutionary search costs about a minute per round whatever the
        # batch: one kernel per model, one round, and one extension round at most
        args.budget, args.batch, args.kernels, args.source_kernels = 4, 4, 1, 1
        args.remeasure = min(args.remeasure, 3)
        args.cap = args.cap or 8
        args.pair = args.pair or QUICK_PAIRS
    args.cap = args.cap or 2 * args.budget
    args.round = args.round or args.batch
    try:
        for name in ("kernels", "source_kernels", "budget", "cap", "round", "batch", "repeats",
                     "remeasure"):
            v = getattr(args, name)
            if v < 1:
                raise BenchError(name.replace("_", "-"), f"must be >= 1, got {v}")
        if args.cap < args.budget:
            raise BenchError("cap", f"must be >= --budget ({args.budget}), got {args.cap}")
        parse_hhmm(args.extend_until)
        pairs = [parse_pair(p) for p in (args.pair or PAIRS)]
    except BenchError as exc:
        ap.error(str(exc))
    logging.basicConfig(level=logging.WARNING)
    t0 = time.time()
    for src, tgt in pairs:
        PairBench(args, src, tgt).run()
    log(f"done in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
