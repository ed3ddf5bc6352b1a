"""One study run: explore (resumable) -> analyse (E1-E3, validity map) -> figures ->
``report.md``.  Nothing here prints; progress goes to callbacks (the CLI draws bars)."""
from __future__ import annotations

import json
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..measure.runners import Runner, runner_for
from ..task import VtaTask
from . import plots
from .analysis import (
    DEFAULT_SIZES,
    EDGE_MODES,
    best_config,
    clustering,
    cost_model_study,
    default_map_knobs,
    grid_map,
    invalid_by_reason,
)
from .explore import StudyData, explore
from .report import (
    command_line,
    machine_info,
    now_utc,
    suite_markdown,
    workload_markdown,
    write_text,
)


@dataclass
class StudyOptions:
    """What a study computes beyond the exploration (defaults: ``methods.md`` §G.1)."""

    seeds: int = 20
    sizes: Sequence[int] = DEFAULT_SIZES
    loss_type: str = "rank"
    k: int = 64
    top_share: float = 0.01
    shuffles: int = 20

    def check(self) -> None:
        for name in ("seeds", "k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigurationError(name, f"must be a positive integer, got {v!r}")
        if isinstance(self.shuffles, bool) or not isinstance(self.shuffles, int) \
                or self.shuffles < 0:
            raise ConfigurationError("shuffles", f"must be >= 0, got {self.shuffles!r}")
        if self.loss_type not in ("rank", "reg"):
            raise ConfigurationError("loss_type", f"expected rank or reg, got {self.loss_type!r}")


@dataclass
class WorkloadStudy:
    """The outcome of one workload's study; ``result`` is JSON-ready (``report.md``'s
    content), ``report`` its path (None when the exploration was interrupted)."""

    task: VtaTask
    exploration: dict
    data: StudyData | None = None
    result: dict = field(default_factory=dict)
    report: pathlib.Path | None = None

    @property
    def interrupted(self) -> bool:
        return bool(self.exploration.get("interrupted"))


def _timing(data: StudyData) -> dict | None:
    if data.work is None or np.all(np.isnan(data.work)):
        return None
    v, inv = data.valid, data.measured & ~data.valid
    w = data.work
    return {"valid_total_s": float(np.nansum(w[v])),
            "valid_mean_s": float(np.nanmean(w[v])) if v.any() else math.nan,
            "invalid_total_s": float(np.nansum(w[inv])),
            "invalid_mean_s": float(np.nanmean(w[inv])) if inv.any() else math.nan}


def analyse(data: StudyData, options: StudyOptions | None = None, *,
            on_e3_progress: Callable[[int, int], None] | None = None) -> dict:
    """E1, E2 (both graphs), E3, the validity map and the best configuration of a complete
    study table, as one JSON-ready dict."""
    options = options or StudyOptions()
    options.check()
    data.require_complete()
    space = data.space
    e1 = invalid_by_reason(data)
    e2 = {mode: clustering(data.valid, space.dims, space.names, mode=mode,
                           shuffles=options.shuffles) for mode in EDGE_MODES}
    e3 = cost_model_study(data, sizes=options.sizes, seeds=options.seeds, k=options.k,
                          top_share=options.top_share, loss_type=options.loss_type,
                          on_progress=on_e3_progress)
    e3d = e3.as_dict()
    dropped = [n for n in sorted(set(options.sizes)) if n > data.size]
    if dropped:
        e3d["note"] = (f"training sizes {dropped} exceed the space ({data.size}) and were "
                       "dropped")
    y, x = default_map_knobs(data)
    gm = grid_map(data, y, x)
    return {"e1": e1, "e2": e2, "e3": e3d, "grid_map": gm, "best": best_config(data),
            "timing": _timing(data)}


def write_figures(res: dict, out_dir: pathlib.Path, title: str) -> dict[str, str]:
    """Every PNG of one workload into ``out_dir``; returns figure key -> file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    f = plots.FIGURES
    plots.plot_reasons(res["e1"], out_dir / f["reasons"], title)
    plots.plot_clustering(res["e2"], out_dir / f["clustering"], title)
    plots.plot_components(res["e2"], out_dir / f["components"], title)
    plots.plot_cost_model(res["e3"], out_dir / f["cost_model"], title)
    plots.plot_validity_map(res["grid_map"], out_dir / f["validity_map"], title)
    return dict(f)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    return obj


def run_meta(argv: Sequence[str] | None) -> dict:
    return {"command": command_line(argv), "date": now_utc(), "machine": machine_info()}


def study_workload(task: VtaTask, runner: Runner | str, *, db: Any, out_dir: pathlib.Path,
                   options: StudyOptions | None = None, workers: int = 2,
                   meta: dict | None = None, on_progress=None,
                   on_e3_progress: Callable[[int, int], None] | None = None,
                   pool=None) -> WorkloadStudy:
    """Explore ``task`` exhaustively (measuring only what the database lacks), analyse,
    plot and write ``out_dir/report.md`` (plus ``study.json`` with every number).  After
    an interrupted exploration nothing is analysed or written.  ``pool``: where the
    measurements run (``explore``), default ``workers`` local processes."""
    options = options or StudyOptions()
    options.check()
    runner = runner_for(runner)
    meta = meta or run_meta(None)
    summary, data = explore(task, runner, db=db, workers=workers, on_progress=on_progress,
                            pool=pool)
    ex = {k: v for k, v in summary.as_dict().items() if k != "history"}
    ex["workers"] = workers if pool is None else pool.n
    ex["executor"] = "local" if pool is None else getattr(pool, "label", "local")
    out = WorkloadStudy(task, ex, data)
    if summary.interrupted:
        return out
    tic = time.perf_counter()
    res = analyse(data, options, on_e3_progress=on_e3_progress)
    res["task"] = {"name": task.name, "spec": task.workload.spec, "template": task.template,
                   "hw": task.hw.name, "runner": data.runner, "size": data.size,
                   "knobs": data.space.names, "dims": data.space.dims, "sync": task.sync}
    res["exploration"] = ex
    res["figures"] = write_figures(res, out_dir, task.name)
    res["analysis_seconds"] = time.perf_counter() - tic
    res["meta"] = meta
    res = _jsonable(res)
    write_text(out_dir / "study.json", json.dumps(res, indent=1))
    out.report = write_text(out_dir / "report.md", workload_markdown(res, meta))
    out.result = res
    return out


def write_suite_report(name: str, studies: Sequence[WorkloadStudy], out_dir: pathlib.Path,
                       meta: dict) -> pathlib.Path:
    """``out_dir/report.md`` summarising the workloads (each report in its own folder)."""
    done = [s for s in studies if s.report is not None]
    links = [str(s.report.relative_to(out_dir)) for s in done]
    return write_text(out_dir / "report.md",
                      suite_markdown(name, [s.result for s in done], links, meta))
