"""Best-so-far histories of a task's tuning, from its database records."""
from __future__ import annotations

import math
from typing import Iterable

from ..db.records import TuningRecord
from ..errors import MissingDependencyError


def measured_records(db, task, runner_kind: str) -> list[TuningRecord]:
    """The task's measured records whose runner is of ``runner_kind`` (``tsim``, ``fsim``),
    in the order they were measured."""
    recs = [r for r in db.records(workload_key=task.key, hw=task.hw.name, source="measured")
            if r.runner.split("/")[0] == runner_kind]
    return sorted(recs, key=lambda r: r.timestamp)


def best_so_far(records: Iterable[TuningRecord], flops: float) -> list[tuple[int, float]]:
    """``(measurement number, best GOPS so far)`` for records in measurement order."""
    best, curve = math.inf, []
    for i, r in enumerate(records, 1):
        if r.error_no == 0:
            best = min(best, r.mean_cost)
        curve.append((i, flops / best / 1e9 if best < math.inf else 0.0))
    return curve


def plot_curve(curve: list[tuple[int, float]], path: str, title: str) -> None:
    """Write the curve as a step plot (PNG); matplotlib is the ``viz`` extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'vtatune[viz]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step([c[0] for c in curve], [c[1] for c in curve], where="post")
    ax.set_xlabel("measurements")
    ax.set_ylabel("best GOPS so far")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
