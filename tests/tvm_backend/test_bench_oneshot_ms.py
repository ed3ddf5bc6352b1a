"""The figures of scripts/bench_oneshot_ms.py on hand-computed curves (no tuning)."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_oneshot_ms",
                                                  ROOT / "scripts" / "bench_oneshot_ms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_top_k_ratio(bench):
    label = np.array([0.2, 1.0, 0.5, 0.8, 0.0])
    pred = np.array([5.0, 1.0, 4.0, 3.0, 2.0])      # predicted order: 0, 2, 3, 4, 1
    assert bench.top_k_ratio(pred, label, 1) == pytest.approx(0.2)
    assert bench.top_k_ratio(pred, label, 3) == pytest.approx(0.8)
    assert bench.top_k_ratio(pred, label, 5) == pytest.approx(1.0)


def test_speedup_figures_and_budget_prefixes(bench):
    # MetaSchedule: best-so-far after each batch of 32 (seconds, best, trials)
    curve = [(40.0, 9e-5, 32), (80.0, 6e-5, 64), (120.0, 6e-5, 96), (160.0, 5e-5, 128)]
    assert bench.prefix(curve, 64) == curve[:2]
    fig = bench.speedup_figures(curve, 5e-5, 10.0, 5.2e-5)
    assert fig["ms_time_to_final_s"] == 160.0 and fig["speedup"] == pytest.approx(16.0)
    assert fig["latency_ratio"] == pytest.approx(1.04)
    assert fig["time_to_match_s"] == 160.0            # 6e-5 > 5.2e-5 until the last batch
    assert fig["goal_met"] is True                     # 16x at 4 % loss
    # re-measured latencies replace the runner's in the ratio: 6 % loss misses the goal
    fig = bench.speedup_figures(curve, 5e-5, 10.0, 5.2e-5, 5e-5, 5.3e-5)
    assert fig["latency_ratio"] == pytest.approx(1.06) and fig["goal_met"] is False
    # at the 64-trial budget MetaSchedule's final is 6e-5, reached at 80 s; one-shot is faster
    fig = bench.speedup_figures(bench.prefix(curve, 64), 6e-5, 10.0, 5.2e-5)
    assert fig["speedup"] == pytest.approx(8.0) and fig["latency_ratio"] < 1
    assert fig["time_to_match_s"] is None and fig["goal_met"] is False


def test_summarize_rows_per_budget(bench):
    runs = [{"spec": "m", "kernel": "k", "seed": 0, "strategy": "evolutionary", "k": None,
             "trials": 128, "best_s": 5e-5, "time_s": 170.0, "remeasured_s": 5.1e-5,
             "curve": [[40.0, 9e-5, 32], [80.0, 6e-5, 64], [120.0, 6e-5, 96],
                       [160.0, 5e-5, 128]]},
            {"spec": "m", "kernel": "k", "seed": 0, "strategy": "oneshot", "k": 16,
             "trials": 16, "best_s": 5.5e-5, "time_s": 20.0, "remeasured_s": 5.61e-5}]
    rows = bench.summarize(runs, budgets=(64,))
    assert [r["ms_trials"] for r in rows] == [64, 128]
    assert rows[0]["speedup"] == pytest.approx(4.0) and rows[0]["ms_remeasured_us"] is None
    assert rows[0]["latency_ratio"] == pytest.approx(5.5 / 6)
    assert rows[1]["speedup"] == pytest.approx(8.0)
    assert rows[1]["latency_ratio"] == pytest.approx(1.1)      # re-measured: 5.61 / 5.1
