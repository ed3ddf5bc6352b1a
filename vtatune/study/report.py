"""The Markdown report of a study run: one ``report.md`` per workload (tables, the PNGs,
the command line, machine, date, runner label and space size) and, for a suite, a summary
``report.md`` that links them."""
from __future__ import annotations

import datetime as _dt
import importlib
import math
import os
import pathlib
import platform
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__


def machine_info() -> dict:
    """Where the run happened (timings depend on it, and on the load)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    versions = {"python": platform.python_version()}
    for mod in ("numpy", "scipy", "xgboost", "matplotlib"):
        try:
            versions[mod] = getattr(importlib.import_module(mod), "__version__", "?")
        except ImportError:
            pass
    return {"host": platform.node(), "os": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "load_average": load, "versions": versions,
            "vtatune": __version__}


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def command_line(argv: Sequence[str] | None) -> str:
    return "vtatune " + shlex.join(list(argv)) if argv is not None else shlex.join(sys.argv)


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _meta_lines(res: dict, meta: dict) -> list[str]:
    m = meta["machine"]
    load = "" if m["load_average"] is None else f", load average {m['load_average']}"
    return [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['os']}{load}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f", vtatune {m['vtatune']}",
    ]


def _on_executor(ex: dict) -> str:
    """" on <executor>" when the measurements ran elsewhere than the local pool."""
    executor = ex.get("executor") or "local"
    return "" if executor == "local" else f" on {executor}"


def workload_markdown(res: dict, meta: dict) -> str:
    """The report of one workload (``res``: ``study.run.WorkloadStudy.as_dict()``)."""
    w, ex, e1, e2, e3 = res["task"], res["exploration"], res["e1"], res["e2"], res["e3"]
    fig = res["figures"]
    lines = [f"# Invalid-configuration study: {w['name']}", ""]
    lines += [
        f"- workload: `{w['spec']}` ({w['template']}), hardware `{w['hw']}`",
        f"- runner label: `{w['runner']}` (only records with this label are used)",
        f"- space: {w['size']} configurations, knobs "
        + ", ".join(f"{n} ({d})" for n, d in zip(w["knobs"], w["dims"])),
    ]
    lines += _meta_lines(res, meta)
    lines += ["", "## Exploration", ""]
    lines.append(f"Every configuration measured through the tuning pipeline (grid tuner, "
                 f"{ex['workers']} workers{_on_executor(ex)}): {ex['new']} measured by this run, "
                 f"{ex['resumed']} taken from the database, in {ex['seconds']:.1f} s "
                 f"(analyses and plots: {res['analysis_seconds']:.1f} s).")
    if res.get("timing"):
        t = res["timing"]
        lines.append(f"Worker time per record (the records' `all_cost`): valid "
                     f"{t['valid_mean_s']:.3f} s on average ({t['valid_total_s']:.1f} s in "
                     f"all), invalid {1e3 * t['invalid_mean_s']:.2f} ms "
                     f"({t['invalid_total_s']:.1f} s in all).")
    best = res["best"]
    if best:
        knobs = ", ".join(f"{k}={v}" for k, v in best["knobs"].items())
        lines.append(f"Best: index {best['index']} ({knobs}): {1e3 * best['cost_s']:.3f} ms, "
                     f"{best['gops']:.2f} GOPS.")
    lines += ["", "## E1 — invalid fraction by reason", ""]
    lines.append(f"**{_pct(e1['invalid_fraction'])} invalid** ({e1['size'] - e1['valid'] - e1['missing']}"
                 f" of {e1['size']}); valid {e1['valid']} ({_pct(e1['valid_fraction'])}).")
    lines.append("")
    lines.append(_table(["reason", "AutoTVM category", "label", "configurations", "share"],
                        [[r["reason"], r["category"], r["label"], r["count"], _pct(r["share"])]
                         for r in e1["rows"]]))
    lines += ["", f"![invalid fraction by reason]({fig['reasons']})", ""]
    lines += ["## E2 — clustering on the knob grid", ""]
    lines.append("Graph: one node per configuration; *adjacent* = an edge between two "
                 "configurations that differ in exactly one knob by one candidate position; "
                 "*any other* = differ in exactly one knob by any candidate "
                 "(`ConfigSpace.neighbours`). P(neighbour valid | valid) is pooled over the "
                 "ordered neighbour pairs (u, v) with u valid; the base rate is the valid "
                 "share of the space; *random placement* = the median over "
                 f"{e2['adjacent']['shuffled']['runs']} seeded shuffles of the same number of "
                 "valid configurations. Components: connected components of the subgraph of "
                 "valid configurations.")
    lines.append("")
    rows = []
    for mode, g in e2.items():
        rows.append([{"adjacent": "adjacent", "any": "any other"}[mode], g["edges"],
                     _f(g["base_rate"]), _f(g["p_neighbour_valid"]), _f(g["lift"], 2),
                     _f(g["shuffled"]["p_neighbour_valid"]), g["components"],
                     _f(g["shuffled"]["components"], 0), g["largest_component"],
                     g["isolated"]])
    lines.append(_table(["graph", "edges", "base rate", "P(nb valid \\| valid)", "lift",
                         "random placement P", "valid components", "random placement comps.",
                         "largest", "isolated"], rows))
    lines.append("")
    lines.append("Per knob (adjacent graph, edges along that knob only):")
    lines.append("")
    lines.append(_table(["knob", "edges", "P(nb valid \\| valid)"],
                        [[r["knob"], r["edges"], _f(r["p_neighbour_valid"])]
                         for r in e2["adjacent"]["per_knob"]]))
    sizes = e2["adjacent"]["component_sizes"]
    shown = ", ".join(map(str, sizes[:20])) + (" …" if len(sizes) > 20 else "")
    lines += ["", f"Component sizes (adjacent graph, largest first): {shown or 'none'}", "",
              f"![clustering]({fig['clustering']})", "",
              f"![component sizes]({fig['components']})", ""]
    lines += ["## E3 — cost model: invalid kept (S1) vs removed (S2)", ""]
    if not e3["summary"] or not any(r["runs"] for r in e3["summary"]):
        lines.append("Not computed: " + (e3.get("note") or "no training size fits the space "
                                          "or fewer than 2 valid configurations") + ".")
        lines += ["", f"![cost model comparison]({fig['cost_model']})", ""]
    else:
        ks = e3["ks"]
        lines.append(
            f"AutoTVM's XGBoost cost model (loss `{e3['loss_type']}`, AutoTVM parameters, "
            f"early stop on a-recall@64 of the training set) on knob features. Per seed, "
            f"{max(e3['sizes'])} distinct configurations drawn uniformly from the space; the "
            f"first n are the training set of size n. S1 trains on all n with invalid "
            f"configurations at throughput 0; S2 on the valid ones only. Both are tested on "
            f"all {e3['n_test']} valid configurations (training ones included). Pairwise "
            f"accuracy over {e3['pairs_note']} of valid configurations, pairs of equal "
            f"throughput excluded (prediction ties count 1/2); precision@k and NDCG@k (relevance = throughput / best) with "
            + ", ".join(f"k = {v} ({s})" for s, v in ks.items())
            + f". {e3['seeds']} seeds; median [quartiles]. Draws with fewer than 2 valid "
              f"configurations are skipped in both scenarios: "
            + (", ".join(f"n={n}: {c}" for n, c in e3["skipped"].items()) or "none")
            + f". Time: {e3['seconds']:.1f} s.")
        trivial = [s for s, v in ks.items() if v >= e3["n_test"]]
        if trivial:
            lines.append("")
            lines.append(f"Only {e3['n_test']} valid configurations: precision@"
                         + ", @".join(trivial) + " cover all of them and are 1 by "
                         "construction.")
        lines.append("")
        lines.append(
            "Two more rows per n score the model over the *whole* space (not part of the "
            "paper's protocol): `validity_auc` = probability that a valid configuration scores "
            f"above an invalid one (ties 1/2), `valid@{next(iter(ks))}` = share of valid "
            f"configurations among the {next(iter(ks.values()))} best-scored ones. They show "
            "what S2 gives up by never seeing an invalid configuration.")
        lines.append("")
        paired = {(p["n"], p["metric"]): p for p in e3["paired"]}
        summ = {(r["n"], r["scenario"], r["metric"]): r for r in e3["summary"]}
        metrics = list(dict.fromkeys(r["metric"] for r in e3["summary"]))
        rows = []
        for n in e3["sizes"]:
            for m in metrics:
                a, b, p = summ[(n, "S1", m)], summ[(n, "S2", m)], paired[(n, m)]
                rows.append([n, m, f"{_f(a['median'])} [{_f(a['q25'])}, {_f(a['q75'])}]",
                             f"{_f(b['median'])} [{_f(b['q25'])}, {_f(b['q75'])}]",
                             _f(p["median_diff"]), _pct(p["s1_wins"]), p["runs"]])
        lines.append(_table(["n", "metric", "S1 (invalid = 0)", "S2 (invalid removed)",
                             "median S1 − S2", "S1 better", "paired runs"], rows))
        lines += ["", f"![cost model comparison]({fig['cost_model']})", ""]
    gm = res["grid_map"]
    lines += ["## Validity map", "",
              (f"Valid share and best GOPS per ({gm['y_knob']}, {gm['x_knob']}) cell, over "
               "all other knobs."), "", f"![validity map]({fig['validity_map']})", ""]
    return "\n".join(lines)


def suite_markdown(name: str, results: Sequence[dict], links: Sequence[str], meta: dict) -> str:
    """The summary of a suite: one row per workload, linking its report."""
    lines = [f"# Invalid-configuration study: suite {name}", ""]
    lines += _meta_lines({}, meta)
    if results:
        lines.append(f"- hardware `{results[0]['task']['hw']}`, runner label "
                     f"`{results[0]['task']['runner']}`")
    lines += ["", ("E2 columns: adjacent knob-grid graph. E3 columns: median pairwise "
                   "accuracy and NDCG@64 at the largest training size, S1 (invalid = 0) / "
                   "S2 (removed)."), ""]
    rows = []
    for res, link in zip(results, links):
        e1, adj, e3 = res["e1"], res["e2"]["adjacent"], res["e3"]
        top = next((r for r in e1["rows"] if r["label"] != "valid"), None)
        s = {(r["n"], r["scenario"], r["metric"]): r["median"] for r in e3["summary"]}
        n = max(e3["sizes"]) if e3["sizes"] else None
        ks = list(e3["ks"])
        nd = f"ndcg@{ks[0]}" if ks else ""

        def both(metric, s=s, n=n):
            if n is None or (n, "S1", metric) not in s:
                return "–"
            return f"{_f(s[(n, 'S1', metric)])} / {_f(s[(n, 'S2', metric)])}"
        rows.append([f"[{res['task']['name']}]({link})", res["task"]["size"],
                     _pct(e1["invalid_fraction"]),
                     f"{top['reason']} ({_pct(top['share'])})" if top else "–",
                     _f(adj["base_rate"]), _f(adj["p_neighbour_valid"]), _f(adj["lift"], 2),
                     adj["components"], n or "–", both("pairwise"), both(nd),
                     _f(res["exploration"]["seconds"], 0)])
    lines.append(_table(["workload", "space", "invalid", "main reason", "base rate",
                         "P(nb valid \\| valid)", "lift", "components", "E3 n",
                         "pairwise S1 / S2", "NDCG@64 S1 / S2", "explore s"], rows))
    lines.append("")
    return "\n".join(lines)


def write_text(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # never leave a half-written report
    return path
