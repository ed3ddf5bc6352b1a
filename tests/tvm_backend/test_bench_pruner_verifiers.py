"""The pure summary functions of scripts/bench_pruner_verifiers.py (no tuning here)."""
from __future__ import annotations

import importlib.util
import math
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_pruner_verifiers.py"
_spec = importlib.util.spec_from_file_location("bench_pruner_verifiers", _PATH)
bpv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bpv)


def test_ranking_perfect_and_reversed():
    assert bpv.ranking([3.0, 2.0, 1.0], [1e-6, 2e-6, 3e-6]) == {"pairs": 3, "tau": 1.0,
                                                                "acc": 1.0}
    assert bpv.ranking([1.0, 2.0, 3.0], [1e-6, 2e-6, 3e-6]) == {"pairs": 3, "tau": -1.0,
                                                                "acc": 0.0}


def test_ranking_failure_and_score_tie_by_hand():
    # latencies 10, failed, 20, 30: the 6 pairs are (0,1) (0,2) (0,3) (1,2) (1,3) (2,3);
    # the faster one has the higher score in 5; (2,3) has equal scores 0.5 / 0.5
    r = bpv.ranking([0.9, 0.1, 0.5, 0.5], [10.0, None, 20.0, 30.0])
    assert r["pairs"] == 6
    assert r["tau"] == pytest.approx(5 / 6)
    assert r["acc"] == pytest.approx(5.5 / 6)


def test_ranking_leaves_out_two_failures_and_unknown_scores():
    # two failures are not a pair; the other two pairs are concordant
    assert bpv.ranking([1.0, 2.0, 3.0], [None, None, 1.0]) == {"pairs": 2, "tau": 1.0,
                                                               "acc": 1.0}
    # candidate 0 has no score: only (1, 2) counts, and it is discordant
    assert bpv.ranking([None, 1.0, 2.0], [1.0, 2.0, 3.0]) == {"pairs": 1, "tau": -1.0,
                                                              "acc": 0.0}
    assert bpv.ranking([1.0, 2.0], [5.0, 5.0]) == {"pairs": 0, "tau": None, "acc": None}


def test_ranking_equals_scipy_kendall_without_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        lat = rng.permutation(9) + 1.0
        score = rng.normal(size=9)
        # higher score = predicted faster, so tau is against -latency
        want = stats.kendalltau(score, -lat).statistic
        assert bpv.ranking(list(score), list(lat))["tau"] == pytest.approx(want)


def test_ranking_summary_skips_first_batch():
    batches = [{"scores": [1.0, 2.0], "latencies": [1.0, 2.0]},      # tau -1 (skipped)
               {"scores": [2.0, 1.0], "latencies": [1.0, 2.0]},      # tau 1
               {"scores": [1.0, 1.0], "latencies": [1.0, 2.0]},      # tau 0, acc 0.5
               {"scores": [1.0, 2.0], "latencies": [3.0, 3.0]}]      # no pair
    s = bpv.ranking_summary(batches)
    assert s == {"batches": 2, "tau": 0.5, "acc": 0.75}
    assert bpv.ranking_summary(batches[:1], 0) == {"batches": 1, "tau": -1.0, "acc": 0.0}
    assert bpv.ranking_summary(batches[:1]) == {"batches": 0, "tau": None, "acc": None}


def test_best_at_and_time_to():
    curve = [(10.0, 8, 5e-5), (20.0, 16, 4e-5), (35.0, 24, 4e-5), (50.0, 32, 2e-5)]
    assert bpv.best_at(curve, 8) == 5e-5
    assert bpv.best_at(curve, 30) == 4e-5
    assert bpv.best_at(curve, 4) == math.inf
    assert bpv.time_to(curve, 4e-5) == 20.0
    assert bpv.time_to(curve, 1e-5) is None
    # a stored curve whose first batch all failed has best null (JSON of +inf)
    stored = [(10.0, 8, None), (20.0, 16, 3e-5)]
    assert bpv.best_at(stored, 8) == math.inf
    assert bpv.time_to(stored, 4e-5) == 20.0


def _run(phase, kernel, method, seed, best, curve, batches=()):
    return {"phase": phase, "kernel": kernel, "method": method, "seed": seed, "trials": 16,
            "best_s": best, "curve": curve, "wall_s": curve[-1][0],
            "learned_calls_per_round": [500, 498], "verifier_predict_s": 1.0,
            "verifier_update_s": 2.5, "batches": list(batches)}


def test_compare_equal_trials():
    b = [{"scores": [1.0, 2.0], "latencies": [1.0, 2.0]},
         {"scores": [2.0, 1.0], "latencies": [1.0, 2.0]}]
    runs = [_run("B", "mm", "xgb", 0, 4e-5, [(10.0, 8, 6e-5), (30.0, 16, 4e-5)]),
            _run("B", "mm", "moa", 0, 2e-5, [(12.0, 8, 3e-5), (25.0, 16, 2e-5)], b),
            _run("B", "mm", "scratch", 0, None, [(12.0, 8, math.inf), (25.0, 16, math.inf)]),
            _run("A", "mm", "mlp", 0, 1e-5, [(5.0, 16, 1e-5)]),       # other phase: ignored
            _run("B", "mm", "moa", 1, 2e-5, [(12.0, 16, 2e-5)])]      # no xgb for seed 1
    rows = bpv.compare(runs, "B", "xgb")
    assert len(rows) == 1
    m = rows[0]["methods"]
    assert set(m) == {"xgb", "moa", "scratch"}
    assert m["moa"]["best_us"] == pytest.approx(20.0)
    assert m["moa"]["ratio_to_ref"] == pytest.approx(0.5)
    assert m["moa"]["time_to_ref_best_s"] == 12.0      # 3e-5 ≤ 4e-5 at the first stamp
    assert m["xgb"]["time_to_ref_best_s"] == 30.0
    assert m["scratch"]["best_us"] == math.inf and m["scratch"]["time_to_ref_best_s"] is None
    assert m["moa"]["learned_per_round"] == 499
    assert m["moa"]["verifier_s"] == 3.5
    assert m["moa"]["ranking_after_first"] == {"batches": 1, "tau": 1.0, "acc": 1.0}
    assert m["moa"]["ranking_first"] == {"batches": 1, "tau": -1.0, "acc": 0.0}


def test_geomean_and_run_key():
    assert bpv.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert bpv.geomean([None, math.inf]) is None
    assert bpv.run_key("A", "mm", "mlp", 1) == "A-mm-mlp-s1"
